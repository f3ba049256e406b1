"""Latency per image of the QIANets reproduction models, dense and compressed, side by side.

Rows: `SmallResNet` and `SmallDenseNet` (the models of `examples/qianets_compression.py`, here
with their initial weights: latency does not depend on the values), and for each the pruned
model (α = 0.3779, p_entangle 0.5, 5 stages), the truncated-SVD model deployed as factorised
convolutions at several ranks, at batch 1 and 256, 2 threads. Ratios are to the dense model.

    python benchmarks/bench_compression.py [--quick]
"""

from __future__ import annotations

import argparse
import copy
import platform

import torch
from torch import nn

import tnlayers
from tnlayers.models import SmallDenseNet, SmallResNet

RANKS = {"ResNet": (4, 10, 20), "DenseNet": (2, 4, 6)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(f"# torch {torch.__version__}, 2 threads, {platform.machine()}, CPU")
    torch.manual_seed(0)
    inputs = torch.randn(256, 1, 28, 28)
    builds = {"ResNet": SmallResNet, "DenseNet": lambda: SmallDenseNet(growth=8, blocks=(3, 3))}
    for name, build in builds.items():
        dense = build().eval()
        models = {"dense": dense}
        pruned = copy.deepcopy(dense)
        tnlayers.compression.qianets_prune(
            pruned, 0.3779, generator=torch.Generator().manual_seed(0)
        )
        models["pruned"] = pruned
        for rank in RANKS[name][:1] if args.quick else RANKS[name]:
            models[f"SVD r={rank}"], _ = tnlayers.compress(
                dense, rank=rank, types=(nn.Conv2d,), only_if_smaller=True
            )
        report = tnlayers.analysis.measure_latency(
            models,
            inputs[:8] if args.quick else inputs,
            batch_sizes=(1, 8) if args.quick else (1, 256),
            threads=2,
            repeats=2 if args.quick else 20,
        )
        print(f"\n{name}\n{report}")


if __name__ == "__main__":
    main()
