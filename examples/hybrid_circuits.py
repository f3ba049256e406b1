"""Reproduce Chen et al. 2024's hybrid quantum-inspired networks: ablation, noise, attacks.

Data (bundled with scikit-learn, no downloads): iris (3 classes, 4 features: n = 4, encoded
directly) and digits restricted to classes 0–3 (8 × 8 images, the substitute for the paper's
4-class image sets), each split 70/30 stratified per seed.

1. Clean ablation: TQFNN / QRFNN / QDFNN / MLP on iris (plus a logistic regression on x/‖x‖,
   which these models equal in capacity: they are linear in x/‖x‖), TQCNN / QRCNN / QDCNN / CNN
   on digits-4.
2. Data noise: the six noisy variants of digits-4 (both splits corrupted).
3. Parameter attacks on digits-4: asymmetric Gaussian noise over a scale sweep, asymmetric mixed
   and symmetric Gaussian at one scale, in form ① (σ(θ + ε), persistent: added to the stored
   parameters after every optimiser step) and form ② (σ(θ) + ε, transient, training and test),
   on both hidden layers: the circuit layers of QRCNN / QDCNN, the hidden blocks of the CNN.

    python examples/hybrid_circuits.py            # the full run (about 6 minutes, one thread)
    python examples/hybrid_circuits.py --quick    # a few steps on tiny data (CI)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from _shared import mean_std
from sklearn.datasets import load_digits, load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from torch import nn
from tqdm.auto import tqdm

import tnlayers
from tnlayers.circuits import Noise, ParameterAttack, corrupt
from tnlayers.models import QDCNN, QDFNN, QRCNN, QRFNN, TQCNN, TQFNN, BaselineCNN, BaselineMLP

PAPER_ABLATION = {
    "iris": {"TQFNN": 87.93, "QRFNN": 89.57, "QDFNN": 92.55},
    "digits-4": {"TQCNN": 90.19, "QRCNN": 92.52, "QDCNN": 93.55},  # paper: FashionMNIST-4
}
# Asymmetric attacks (paper Figs. 6–8): accuracy % (loss), CIFAR100-4 for form 1, FMNIST-4 for 2.
PAPER_ATTACK = {
    ("form 1", "asymmetric mixed"): {"CNN": "25.00 (NaN)", "QRCNN": "73.65", "QDCNN": "78.67"},
    ("form 1", "asymmetric gaussian"): {"CNN": "25.00 (NaN)", "QRCNN": "75.96", "QDCNN": "76.10"},
    ("form 2", "asymmetric mixed"): {"CNN": "25.00 (NaN)", "QRCNN": "91.86", "QDCNN": "93.02"},
    ("form 2", "asymmetric gaussian"): {"CNN": "25.00 (NaN)", "QRCNN": "89.71", "QDCNN": "92.94"},
}
IMAGE_MODELS: dict[str, Callable[[], nn.Module]] = {
    "TQCNN": lambda: TQCNN(1, 8, 4),
    "QRCNN": lambda: QRCNN(1, 8, 4),
    "QDCNN": lambda: QDCNN(1, 8, 4),
    "CNN": lambda: BaselineCNN(1, 8, 4),
}
IRIS_MODELS: dict[str, Callable[[], nn.Module]] = {
    "TQFNN": lambda: TQFNN(4, 3),
    "QRFNN": lambda: QRFNN(4, 3),
    "QDFNN": lambda: QDFNN(4, 3),
    "MLP": lambda: BaselineMLP(4, 3),
}
TARGETS = {"CNN": ["hidden.0", "hidden.1"]}
HYBRID_TARGETS = ["stack.circuits.0", "stack.circuits.1"]

Split = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def iris(seed: int) -> Split:
    x, y = load_iris(return_X_y=True)
    return _split(x.astype(np.float32), y, seed)


def digits4(seed: int, quick: bool = False) -> Split:
    x, y = load_digits(return_X_y=True)
    keep = y < 4
    x = (x[keep] / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    split = _split(x, y[keep], seed)
    return tuple(t[:120] for t in split) if quick else split  # type: ignore[return-value]


def _split(x: np.ndarray, y: np.ndarray, seed: int) -> Split:
    parts = train_test_split(x, y, test_size=0.3, stratify=y, random_state=seed)
    x_train, x_test, y_train, y_test = (torch.from_numpy(np.asarray(p)) for p in parts)
    return x_train, y_train.long(), x_test, y_test.long()


@dataclass
class Attack:
    form: int
    noise: Noise

    @property
    def label(self) -> str:
        return f"form {self.form}, {self.noise.name} {self.noise.scale:g}"


@dataclass
class Settings:
    epochs: int
    lr: float
    batch: int | None  # None: full batch


def train(
    name: str,
    build: Callable[[], nn.Module],
    data: Split,
    settings: Settings,
    seed: int,
    attack: Attack | None = None,
) -> tnlayers.analysis.ClassificationReport:
    """Train one model (Adam, cross-entropy) and report on the test split."""
    torch.manual_seed(seed)
    x_train, y_train, x_test, y_test = data
    model = build()
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    handle = None
    if attack is not None:
        generator = torch.Generator().manual_seed(1000 + seed)
        targets = TARGETS.get(name, HYBRID_TARGETS)
        if attack.form == 1:
            handle = ParameterAttack(
                model, targets, form=1, noise=attack.noise, timing="persistent", generator=generator
            )
            handle.attach(optimizer)
        else:
            handle = ParameterAttack(
                model, targets, form=2, noise=attack.noise, phase="both", generator=generator
            )
    gen = torch.Generator().manual_seed(seed)
    batch = settings.batch or len(x_train)
    # A divergence stops training; the report below says so.
    tnlayers.training.train(
        model, x_train, y_train, optimizer, epochs=settings.epochs, batch=batch, generator=gen
    )
    report = tnlayers.analysis.classification_report(model, x_test, y_test)
    if handle is not None:
        handle.remove()
    return report


def logistic_on_normalised(data: Split) -> float:
    """The capacity check (the models are linear in x/‖x‖): logistic regression on x/‖x‖."""
    x_train, y_train, x_test, y_test = (t.numpy() for t in data)
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    model = LogisticRegression(C=100.0, max_iter=5000).fit(unit(x_train), y_train)
    return 100.0 * model.score(unit(x_test), y_test)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps on tiny data (CI)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--robust-seeds", type=int, default=5, help="seeds for noise and attacks")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(""))
    args = parser.parse_args()
    torch.set_num_threads(1)  # small models: one thread avoids pool overhead
    quick = args.quick
    seeds = range(1 if quick else args.seeds)
    robust_seeds = range(1 if quick else args.robust_seeds)
    iris_settings = Settings(epochs=5 if quick else 400, lr=0.05, batch=None)
    image_settings = Settings(epochs=1 if quick else 15, lr=0.01, batch=32)
    scales = [0.1] if quick else [0.01, 0.03, 0.1, 0.3, 1.0]
    attacks = [Attack(form, Noise("gaussian", False, s)) for form in (1, 2) for s in scales]
    attacks += [
        Attack(form, Noise(kind, symmetric, 0.1))  # type: ignore[arg-type]
        for form in (1, 2)
        for kind, symmetric in (("mixed", False), ("gaussian", True))
    ]
    noisy_data = [dataclasses.replace(n, scale=0.3) for n in tnlayers.circuits.NOISE_VARIANTS]
    robust_models = ["QRCNN", "QDCNN", "CNN"]
    jobs = len(seeds) * (len(IRIS_MODELS) + len(IMAGE_MODELS)) + len(robust_seeds) * len(
        robust_models
    ) * (len(noisy_data) + len(attacks))
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    results: dict[str, dict[str, list[dict]]] = {}

    def record(group: str, name: str, report: tnlayers.analysis.ClassificationReport) -> None:
        results.setdefault(group, {}).setdefault(name, []).append(report.to_dict())
        bar.update()
        bar.set_postfix_str(f"{group} {name}: {100 * report.accuracy:.1f}%")

    logistic = []
    with tqdm(total=jobs, desc="runs", mininterval=1.0) as bar:
        for seed in seeds:
            data = iris(seed)
            logistic.append(logistic_on_normalised(data))
            for name, build in IRIS_MODELS.items():
                record("iris", name, train(name, build, data, iris_settings, seed))
            data = digits4(seed, quick)
            for name, build in IMAGE_MODELS.items():
                record("digits-4", name, train(name, build, data, image_settings, seed))
        for seed in robust_seeds:
            clean = digits4(seed, quick)
            for noise in noisy_data:
                generator = torch.Generator().manual_seed(seed)
                noisy = (
                    corrupt(clean[0], noise, sample_fraction=0.5, feature_fraction=0.3,
                            generator=generator),
                    clean[1],
                    corrupt(clean[2], noise, sample_fraction=0.5, feature_fraction=0.3,
                            generator=generator),
                    clean[3],
                )  # fmt: skip
                for name in robust_models:
                    report = train(name, IMAGE_MODELS[name], noisy, image_settings, seed)
                    record(f"data noise: {noise.name}", name, report)
            for attack in attacks:
                for name in robust_models:
                    report = train(name, IMAGE_MODELS[name], clean, image_settings, seed, attack)
                    record(attack.label, name, report)
    minutes = (time.perf_counter() - start) / 60

    text = write_tables(results, logistic, minutes, len(seeds), len(robust_seeds))
    print(text)
    for group in ("iris", "digits-4"):
        for name, reports in results[group].items():
            accs = [100 * r["accuracy"] for r in reports]
            print(f"{group} {name}: test accuracy {mean_std(accs)} %")
    (args.out / "results.md").write_text(text)
    (args.out / "results.json").write_text(
        json.dumps({"settings": vars(args) | {"out": str(args.out)}, "results": results}, indent=1)
    )
    plot(results, scales, args.out / "hybrid_circuits.png")


def _acc(reports: list[dict]) -> str:
    return mean_std([100 * r["accuracy"] for r in reports])


def _diverged(reports: list[dict]) -> str:
    bad = sum(r["diverged"] for r in reports)
    return f"{bad}/{len(reports)}"


def write_tables(
    results: dict, logistic: list[float], minutes: float, seeds: int, robust: int
) -> str:
    lines = [
        f"{seeds} seeds (ablation), {robust} seeds (noise and attacks); Adam; iris full batch "
        f"400 epochs lr 0.05, digits-4 batch 32, 15 epochs, lr 0.01; {minutes:.1f} min on one "
        "CPU thread.",
        "",
        "**Clean ablation** (test accuracy %, mean ± std over seeds; F1 and areas are means):",
        "",
        "| data | model | accuracy | F1 (mean over classes) | P-R area | ROC area | paper |",
        "|---|---|---|---|---|---|---|",
    ]
    for group in ("iris", "digits-4"):
        for name, reports in results[group].items():
            f1 = statistics.fmean(statistics.fmean(r["f1"]) for r in reports)
            pr = statistics.fmean(r["pr_auc"] for r in reports)
            roc = statistics.fmean(r["roc_auc"] for r in reports)
            paper = PAPER_ABLATION[group].get(name, "")
            cells = f"{_acc(reports)} | {f1:.3f} | {pr:.3f} | {roc:.3f}"
            lines.append(f"| {group} | {name} | {cells} | {paper} |")
    lines.append(
        f"| iris | logistic regression on x/‖x‖ | {mean_std(logistic)} | | | | "
        "(the models are linear in x/‖x‖) |"
    )
    lines += [
        "",
        "**Data noise** (digits-4, both splits: half the images, 30 % of their pixels, scale 0.3; "
        "test accuracy %):",
        "",
        "| noise | QRCNN | QDCNN | CNN |",
        "|---|---|---|---|",
    ]
    for group, by_model in results.items():
        if group.startswith("data noise"):
            cells = " | ".join(_acc(by_model[m]) for m in ("QRCNN", "QDCNN", "CNN"))
            lines.append(f"| {group.removeprefix('data noise: ')} | {cells} |")
    lines += [
        "",
        "**Parameter attacks** on both hidden layers (digits-4; test accuracy %, and runs whose "
        "loss became NaN/inf):",
        "",
        "| attack | QRCNN | QDCNN | CNN | paper (QRCNN / QDCNN / CNN) |",
        "|---|---|---|---|---|",
    ]
    for group, by_model in results.items():
        if group.startswith("form"):
            form, rest = group.split(", ", 1)
            kind = rest.rsplit(" ", 1)[0]
            paper = PAPER_ATTACK.get((form, kind))
            paper_cell = " / ".join(paper[m] for m in ("QRCNN", "QDCNN", "CNN")) if paper else ""
            cells = " | ".join(
                f"{_acc(by_model[m])} (NaN {_diverged(by_model[m])})"
                for m in ("QRCNN", "QDCNN", "CNN")
            )
            lines.append(f"| {group} | {cells} | {paper_cell} |")
    return "\n".join(lines) + "\n"


def plot(results: dict, scales: list[float], path: Path) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    names = [("iris", m) for m in results["iris"]] + [("digits-4", m) for m in results["digits-4"]]
    means = [statistics.fmean(100 * r["accuracy"] for r in results[g][m]) for g, m in names]
    stds = [
        statistics.stdev([100 * r["accuracy"] for r in results[g][m]])
        if len(results[g][m]) > 1
        else 0.0
        for g, m in names
    ]
    colors = ["tab:blue" if g == "iris" else "tab:orange" for g, _ in names]
    axes[0].bar(range(len(names)), means, yerr=stds, color=colors, capsize=3)
    axes[0].set_xticks(range(len(names)), [m for _, m in names], rotation=45)
    axes[0].set_ylim(min(means) - 10, 100)
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].set_title("clean ablation: iris (blue), digits-4 (orange)")
    for ax, form in zip(axes[1:], (1, 2), strict=True):
        for name in ("QRCNN", "QDCNN", "CNN"):
            accs = [
                statistics.fmean(
                    100 * r["accuracy"]
                    for r in results[f"form {form}, asymmetric gaussian {s:g}"][name]
                )
                for s in scales
            ]
            ax.plot(scales, accs, marker="o", label=name)
        ax.axhline(25, color="0.5", ls=":", label="chance (4 classes)")
        ax.set_xscale("log")
        ax.set_xlabel("noise scale s (asymmetric Gaussian |N(0, s²)|)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title("form ① σ(θ + ε), persistent" if form == 1 else "form ② σ(θ) + ε, transient")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
