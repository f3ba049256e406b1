"""Side-by-side speed of QiMLP's ``KronLinear`` against ``nn.Linear(784, 784)``.

Rows: 2-, 3- and 4-body 784→784 layers (QiMLP's factors (28, 28), (7, 7, 16), (4, 4, 7, 7)),
K ∈ {1, 4} Kronecker terms, batch 64 and 1024. For each: ``nn.Linear`` (the reference),
``KronLinear`` with its automatic strategy, and with each strategy forced (*sequential*: one mode
product per body, never forming W; *materialize*: W then one GEMM). Forward is timed in eval mode
under ``no_grad`` (W cached), forward+backward in training mode. "auto/best" divides the automatic
layer's time by the faster forced one.

A second table puts the 2-body layers beside ``TwoGemmKron``: the hand-written form a user could
type — reshape, then two GEMMs with the K terms folded into one of their dimensions, and the
same Kronecker bias as the layer's default (an outer product of two vectors).

    python benchmarks/bench_kron.py [--quick] [--passes 2] [--device cuda]
"""

from __future__ import annotations

import torch
from _common import best_of_passes, machine_line, strategy_cells, timing_arguments
from torch import nn

import tnlayers

BODIES = (2, 3, 4)
TERMS = (1, 4)
BATCHES = (64, 1024)


def run(passes: int, budget: float, batches: tuple[int, ...], device: str) -> None:
    for bodies in BODIES:
        for terms in TERMS:
            layers: dict[str, nn.Module] = {"dense": nn.Linear(784, 784).to(device)}
            for strategy in ("auto", "sequential", "materialize"):
                layers[strategy] = tnlayers.KronLinear(
                    784, 784, bodies=bodies, terms=terms, strategy=strategy, device=device
                )
            dims = layers["auto"].network.in_dims
            for batch in batches:
                x = torch.randn(batch, 784, device=device)
                for backward in (False, True):
                    row = strategy_cells(layers, x, backward, passes, budget, device)
                    print(f"{bodies}-body {dims!s:<14} K={terms} B={batch:<5} {row}", flush=True)


class TwoGemmKron(nn.Module):
    """``y = Σ_k (A_k ⊗ B_k) x`` for two bodies as two GEMMs, the K terms folded in.

    ``x (batch, p1·p2)`` → ``(batch·p1, p2) @ (p2, K·q2)`` → permute to ``(batch·q2, K·p1)``
    → ``@ (K·p1, q1)`` → ``(batch, q1·q2)``; the weight is never formed. The bias is dense, or
    with ``kron_bias`` the outer product of two vectors (QiMLP's eq. 3, ``KronLinear``'s
    default), so that each comparison is between the same structure.
    """

    def __init__(
        self, ins: tuple[int, int], outs: tuple[int, int], terms: int, kron_bias: bool = False
    ) -> None:
        super().__init__()
        (p1, p2), (q1, q2) = ins, outs
        self.dims = (p1, p2, q1, q2, terms)
        self.first = nn.Parameter(torch.randn(terms * p1, q1) / (terms * p1) ** 0.5)
        self.second = nn.Parameter(torch.randn(p2, terms * q2) / p2**0.5)
        if kron_bias:
            self.bias_first = nn.Parameter(torch.randn(q1) * 0.1)
            self.bias_second = nn.Parameter(torch.randn(q2) * 0.1)
        else:
            self.bias = nn.Parameter(torch.zeros(q1 * q2))
        self.kron_bias = kron_bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p1, p2, q1, q2, terms = self.dims
        batch = x.shape[0]
        t = (x.reshape(batch * p1, p2) @ self.second).reshape(batch, p1, terms, q2)
        t = t.permute(0, 3, 2, 1).reshape(batch * q2, terms * p1)
        y = (t @ self.first).reshape(batch, q2, q1).transpose(1, 2)
        if self.kron_bias:
            bias = torch.outer(self.bias_first, self.bias_second).view(-1)
            return y.reshape(batch, q1 * q2) + bias
        return y.reshape(batch, q1 * q2) + self.bias


def run_two_gemm(passes: int, budget: float, batches: tuple[int, ...], device: str) -> None:
    """2-body KronLinear (automatic strategy) against the hand-written two-GEMM form."""
    for terms in TERMS:
        layer = tnlayers.KronLinear(784, 784, bodies=2, terms=terms, device=device)
        ins, outs = layer.network.in_dims, layer.network.out_dims
        layers: dict[str, nn.Module] = {
            "dense": nn.Linear(784, 784).to(device),
            "tnlayers": layer,
            "2-GEMM": TwoGemmKron((ins[0], ins[1]), (outs[0], outs[1]), terms, kron_bias=True).to(
                device
            ),
        }
        for batch in batches:
            x = torch.randn(batch, 784, device=device)
            for backward in (False, True):
                best = best_of_passes(layers, x, backward, passes, budget, device)
                print(
                    f"2-body K={terms} B={batch:<5} {'fwd+bwd' if backward else 'fwd    '} "
                    f"dense {best['dense'] * 1e3:7.3f} ms | tnlayers "
                    f"{best['tnlayers'] / best['dense']:5.2f}× | 2-GEMM "
                    f"{best['2-GEMM'] / best['dense']:5.2f}× | tnlayers / 2-GEMM "
                    f"{best['tnlayers'] / best['2-GEMM']:4.2f} | "
                    f"chosen={layer.chosen_strategy(batch, training=backward)[:3]}",
                    flush=True,
                )


def main() -> None:
    args = timing_arguments(__doc__.splitlines()[0]).parse_args()
    print(machine_line(args.device))
    budget = 0.05 if args.quick else 0.4
    passes, batches = (1, (8,)) if args.quick else (args.passes, BATCHES)
    run(passes, budget, batches, args.device)
    run_two_gemm(passes, budget, batches, args.device)


if __name__ == "__main__":
    main()
