"""Side-by-side speed of ``MPOConv2d`` against ``nn.Conv2d`` at LeNet-5's sizes, batch 256.

Rows: LeNet-5's two convolutions (1→6, 5×5, same padding, 28×28; 6→16, 5×5, 14×14) with the
kernel as an MPO of bond D. For each: ``nn.Conv2d`` (the reference), ``MPOConv2d`` with its
automatic strategy, and with each strategy forced (*materialize*: ``F.conv2d`` on the contracted
kernel; *sequential*: the MPO applied to the unfolded input). Forward is timed in eval mode under
``no_grad`` (the kernel is cached there), forward+backward in training mode.

    python benchmarks/bench_conv.py [--quick] [--passes 2] [--device cuda]
"""

from __future__ import annotations

import torch
from _common import best_of_passes, machine_line, timing_arguments
from torch import nn

import tnlayers

CASES = [
    ("conv1 1→6 5×5 28² D=2", dict(in_channels=1, out_channels=6, padding="same"), 28, 2),
    ("conv2 6→16 5×5 14² D=2", dict(in_channels=6, out_channels=16, padding=0), 14, 2),
    ("conv2 6→16 5×5 14² D=4", dict(in_channels=6, out_channels=16, padding=0), 14, 4),
    ("conv2 6→16 5×5 14² D=8", dict(in_channels=6, out_channels=16, padding=0), 14, 8),
]


def run(passes: int, budget: float, batch: int, device: str) -> list[str]:
    lines = []
    for label, geometry, size, bond in CASES:
        x = torch.randn(batch, geometry["in_channels"], size, size, device=device)
        dense = nn.Conv2d(kernel_size=5, **geometry).to(device)
        layers = {"dense": dense}
        for strategy in ("auto", "materialize", "sequential"):
            layers[strategy] = tnlayers.MPOConv2d(
                kernel_size=5, bond=bond, strategy=strategy, cores=2, device=device, **geometry
            )
        for backward in (False, True):
            best = best_of_passes(layers, x, backward, passes, budget, device)
            chosen = layers["auto"].chosen_strategy(
                batch * layers["auto"].output_size((size, size))[0] ** 2, training=backward
            )
            cells = " | ".join(
                f"{name[:4]} {best[name] / best['dense']:5.2f}×"
                for name in layers
                if name != "dense"
            )
            params = layers["auto"].num_params
            lines.append(
                f"{label:<24} B={batch} {'fwd+bwd' if backward else 'fwd    '} "
                f"dense {best['dense'] * 1e3:7.3f} ms | {cells} | auto={chosen[:3]} "
                f"| params {params} vs {dense.weight.numel()}"
            )
            print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = timing_arguments(__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    budget = 0.05 if args.quick else 0.5
    print(machine_line(args.device))
    run(1 if args.quick else args.passes, budget, 8 if args.quick else args.batch, args.device)


if __name__ == "__main__":
    main()
