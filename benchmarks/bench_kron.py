"""Side-by-side speed of QiMLP's ``KronLinear`` against ``nn.Linear(784, 784)``.

Rows: 2-, 3- and 4-body 784→784 layers (QiMLP's factors (28, 28), (7, 7, 16), (4, 4, 7, 7)),
K ∈ {1, 4} Kronecker terms, batch 64 and 1024. For each: ``nn.Linear`` (the reference),
``KronLinear`` with its automatic strategy, and with each strategy forced (*sequential*: one mode
product per body, never forming W; *materialize*: W then one GEMM). Forward is timed in eval mode
under ``no_grad`` (W cached), forward+backward in training mode. "auto/best" divides the automatic
layer's time by the faster forced one.

    python benchmarks/bench_kron.py [--quick] [--passes 2] [--device cuda]
"""

from __future__ import annotations

import torch
from _common import machine_line, strategy_cells, timing_arguments
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


def main() -> None:
    args = timing_arguments(__doc__.splitlines()[0]).parse_args()
    print(machine_line(args.device))
    budget = 0.05 if args.quick else 0.4
    run(1 if args.quick else args.passes, budget, (8,) if args.quick else BATCHES, args.device)


if __name__ == "__main__":
    main()
