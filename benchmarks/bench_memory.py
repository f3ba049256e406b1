"""Peak memory of one training step: tensor-network layers against ``nn.Linear``, side by side.

Each measurement runs in a fresh process (``python bench_memory.py --one NAME``) so that no
allocator cache or earlier run is counted: it builds the layer and its input, resets the
process's peak resident set (Linux ``VmHWM``) to the current one, runs one forward + backward +
AdamW step, and reports how far the peak rose. Parameters and input are in the baseline, so the
number is what the step adds: activations kept for backward, the materialized weight and its
gradient, the gradients and the optimiser state.

    python benchmarks/bench_memory.py            # MPO 4096² D=16 and 1024² D=8, batch 256
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

import tnlayers

BATCH = 256
CASES = {
    "dense 4096²": lambda: nn.Linear(4096, 4096),
    "MPO 4096² D=16 auto": lambda: tnlayers.MPOLinear(4096, 4096, bond=16),
    "MPO 4096² D=16 sequential": lambda: tnlayers.MPOLinear(4096, 4096, bond=16,
                                                             strategy="sequential"),
    "MPO 4096² D=16 materialize": lambda: tnlayers.MPOLinear(4096, 4096, bond=16,
                                                              strategy="materialize"),
    "dense 1024²": lambda: nn.Linear(1024, 1024),
    "MPO 1024² D=8 auto": lambda: tnlayers.MPOLinear(1024, 1024, bond=8),
}  # fmt: skip


def _status_kib(field: str) -> int:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``) in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status (Linux only)")


def one(name: str) -> None:
    """Measure ``name`` in this process and print the step's peak growth in MiB."""
    torch.set_num_threads(2)
    torch.manual_seed(0)
    layer = CASES[name]()
    features = 4096 if "4096" in name else 1024
    x = torch.randn(BATCH, features)
    optimizer = torch.optim.AdamW(layer.parameters(), lr=1e-3)
    strategy = (
        layer.chosen_strategy(BATCH, training=True) if hasattr(layer, "chosen_strategy") else "-"
    )
    # Reset the peak to the current resident set (Linux: "5" > clear_refs), then measure.
    Path("/proc/self/clear_refs").write_text("5")
    baseline = _status_kib("VmRSS")
    layer(x).square().mean().backward()
    optimizer.step()
    peak = _status_kib("VmHWM")
    params = sum(p.numel() for p in layer.parameters()) * 4 / 2**20
    print(f"{(peak - baseline) / 1024:.1f} {params:.2f} {strategy}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args.one)
        return
    print(f"# torch {torch.__version__}, {platform.machine()}, batch {BATCH}, one training step "
          "(forward, backward, AdamW), peak RSS growth over the built layer and input")  # fmt: skip
    results = {}
    for name in CASES:
        out = subprocess.run(
            [sys.executable, __file__, "--one", name], capture_output=True, text=True, check=True
        ).stdout.split()
        results[name] = (float(out[0]), float(out[1]), out[2])
    for name, (mib, params, strategy) in results.items():
        dense = results["dense 4096²" if "4096" in name else "dense 1024²"][0]
        print(f"{name:<28} step peak {mib:8.1f} MiB ({mib / dense:4.2f}× dense) | "
              f"parameters {params:7.2f} MiB | strategy {strategy}")  # fmt: skip


if __name__ == "__main__":
    main()
