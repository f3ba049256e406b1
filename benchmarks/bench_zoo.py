"""Side-by-side speed of the classic topologies (tensor ring, CP, Tucker, binary tree) against
``nn.Linear(784, 256)``, with MPO and the dense layer as references; then Monarch and BTT at
n = 1024 and 4096 against the hand-written two-``bmm`` form the papers ship.

Rows: one 784 → 256 layer per structure, legs (4, 7, 7, 4) → (4, 4, 4, 4) (Tucker on
(28, 28) → (16, 16)), at batch 64 and 1024. For each: ``nn.Linear``, ``TNLinear`` with its
automatic strategy, and with each strategy forced. Forward is timed in eval mode under
``no_grad`` (the materialized weight cached), forward+backward in training mode; ratios to
``nn.Linear``. "chosen" is the strategy the automatic layer runs; "auto/best" divides its time by
the faster forced one.

    python benchmarks/bench_zoo.py [--quick] [--passes 2] [--device cuda]
"""

from __future__ import annotations

import torch
from _common import best_of_passes, machine_line, strategy_cells, timing_arguments
from torch import nn

import tnlayers

IN, OUT = (4, 7, 7, 4), (4, 4, 4, 4)


class TwoBmmBTT(nn.Module):
    """The hand-written Block Tensor-Train the papers ship: two batched matmuls.

    ``A[i1, i2, j1, r]``, ``B[j1, i1, r, j2]``; ``y = bmm_j1(bmm_i1(x, A), B)``.
    """

    def __init__(self, ins: tuple[int, int], outs: tuple[int, int], rank: int) -> None:
        super().__init__()
        (i1, i2), (j1, j2) = ins, outs
        self.dims = (i1, i2, j1, j2, rank)
        self.a = nn.Parameter(torch.randn(i1, i2, j1 * rank) / i2**0.5)
        self.b = nn.Parameter(torch.randn(j1, i1 * rank, j2) / (i1 * rank) ** 0.5)
        self.bias = nn.Parameter(torch.zeros(j1 * j2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        i1, i2, j1, j2, rank = self.dims
        batch = x.shape[0]
        t = torch.bmm(x.reshape(batch, i1, i2).transpose(0, 1), self.a)  # (i1, B, j1·r)
        t = t.reshape(i1, batch, j1, rank).permute(2, 1, 0, 3).reshape(j1, batch, i1 * rank)
        y = torch.bmm(t, self.b)  # (j1, B, j2)
        return y.transpose(0, 1).reshape(batch, j1 * j2) + self.bias


def run_btt(passes: int, budget: float, batches: tuple[int, ...], device: str) -> None:
    """Monarch and BTT at n = 1024 and 4096 against the two-bmm form and nn.Linear."""
    for n, rank in ((1024, 1), (1024, 4), (4096, 1), (4096, 4)):
        net = tnlayers.btt(n, n, rank)
        ins, outs = net.in_dims, net.out_dims
        layers: dict[str, nn.Module] = {
            "dense": nn.Linear(n, n).to(device),
            "auto": tnlayers.TNLinear(net, device=device),
            "two-bmm": TwoBmmBTT((ins[0], ins[1]), (outs[0], outs[1]), rank).to(device),
        }
        for batch in batches:
            x = torch.randn(batch, n, device=device)
            for backward in (False, True):
                best = best_of_passes(layers, x, backward, passes, budget, device)
                chosen = layers["auto"].chosen_strategy(batch, training=backward)
                print(
                    f"{'Monarch' if rank == 1 else f'BTT r={rank}':<8} n={n:<5} B={batch:<5} "
                    f"{'fwd+bwd' if backward else 'fwd    '} dense {best['dense'] * 1e3:7.3f} ms"
                    f" | tnlayers {best['auto'] / best['dense']:5.2f}× | two-bmm "
                    f"{best['two-bmm'] / best['dense']:5.2f}× | tnlayers / two-bmm "
                    f"{best['auto'] / best['two-bmm']:4.2f} | chosen={chosen[:3]}",
                    flush=True,
                )


CASES = {
    "MPO D=8": lambda: tnlayers.mpo(IN, OUT, 8),
    "ring D=4": lambda: tnlayers.tensor_ring(IN, OUT, 4),
    "ring D=8": lambda: tnlayers.tensor_ring(IN, OUT, 8),
    "CP R=32": lambda: tnlayers.cp(IN, OUT, 32),
    "Tucker r=8": lambda: tnlayers.tucker((28, 28), (16, 16), 8),
    "tree D=8": lambda: tnlayers.tree(IN, OUT, 8),
}


def run(passes: int, budget: float, batches: tuple[int, ...], device: str) -> None:
    for name, build in CASES.items():
        net = build()
        layers: dict[str, nn.Module] = {"dense": nn.Linear(784, 256).to(device)}
        for strategy in ("auto", "sequential", "materialize"):
            layers[strategy] = tnlayers.TNLinear(net, strategy=strategy, device=device)
        for batch in batches:
            x = torch.randn(batch, 784, device=device)
            for backward in (False, True):
                row = strategy_cells(layers, x, backward, passes, budget, device)
                print(f"{name:<11} params {net.num_params:>6,} B={batch:<5} {row}", flush=True)


def main() -> None:
    args = timing_arguments(__doc__.splitlines()[0]).parse_args()
    print(machine_line(args.device))
    budget = 0.05 if args.quick else 0.4
    passes = 1 if args.quick else args.passes
    run(passes, budget, (8,) if args.quick else (64, 1024), args.device)
    run_btt(passes, budget, (8,) if args.quick else (256, 1024), args.device)


if __name__ == "__main__":
    main()
