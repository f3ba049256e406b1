"""One training loop for classifiers on in-memory data: ``train`` (any optimiser, schedule and
per-epoch callback, stops on a non-finite loss) and ``fine_tune`` built on it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

__all__ = ["FineTuneResult", "TrainResult", "evaluate_accuracy", "fine_tune", "train"]


@dataclass(frozen=True)
class FineTuneResult:
    """Accuracy (%) on the evaluation data before and after, and the mean loss of each epoch."""

    accuracy_before: float
    accuracy_after: float
    losses: tuple[float, ...]


@dataclass(frozen=True)
class TrainResult:
    """What [`train`][tnlayers.training.train] did.

    Attributes
    ----------
    losses
        Mean training loss of each completed epoch.
    steps
        Optimiser steps taken.
    diverged
        Whether training stopped on a non-finite loss (the model is then left as it was before
        that step).
    """

    losses: tuple[float, ...]
    steps: int
    diverged: bool


def train(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int = 1,
    batch: int = 64,
    max_steps: int | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    generator: torch.Generator | None = None,
    on_epoch: Callable[[int], None] | None = None,
    progress: bool = False,
    desc: str = "training",
) -> TrainResult:
    """Train a classifier with cross-entropy: shuffled minibatches, epoch after epoch.

    The loop the examples and [`fine_tune`][tnlayers.training.fine_tune] share, so a
    reproduction differs from another only in what it passes: each epoch draws one permutation
    from ``generator`` and takes the minibatches in order; ``scheduler.step()`` follows every
    optimiser step; a non-finite loss stops training before its step (``diverged``).

    Parameters
    ----------
    model
        Returns logits ``(batch, classes)`` for inputs ``x[idx]``.
    x, y
        Inputs ``(N, ...)`` and integer labels ``(N,)``.
    optimizer
        Any optimiser over the model's parameters.
    epochs, batch
        Passes over the data and minibatch size (the last one may be smaller).
    max_steps
        Stop after this many optimiser steps (within an epoch too).
    scheduler
        Stepped after every optimiser step.
    generator
        For the shuffling.
    on_epoch
        Called with the epoch number (from 1) after each completed epoch: evaluate, keep the
        best state, advance an outer progress bar.
    progress, desc
        Show a progress bar over the steps, with this label.
    """
    per_epoch = -(-len(x) // batch)
    total = epochs * per_epoch if max_steps is None else min(max_steps, epochs * per_epoch)
    losses: list[float] = []
    steps = 0
    model.train()
    with tqdm(total=total, desc=desc, disable=not progress, leave=False) as bar:
        for epoch in range(1, epochs + 1):
            order = torch.randperm(len(x), generator=generator)
            seen = 0.0
            for start in range(0, len(x), batch):
                if max_steps is not None and steps >= max_steps:
                    return TrainResult(tuple(losses), steps, False)
                idx = order[start : start + batch]
                optimizer.zero_grad()
                loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
                if not torch.isfinite(loss):
                    return TrainResult(tuple(losses), steps, True)
                loss.backward()
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                steps += 1
                seen += loss.item() * len(idx)
                bar.update()
            losses.append(seen / len(x))
            bar.set_postfix_str(f"loss {losses[-1]:.4f}")
            if on_epoch is not None:
                on_epoch(epoch)
    return TrainResult(tuple(losses), steps, False)


@torch.no_grad()
def evaluate_accuracy(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 512
) -> float:
    """Accuracy in percent, in eval mode (the training mode is restored)."""
    was_training = model.training
    model.eval()
    try:
        correct = sum(
            int((model(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum())
            for i in range(0, len(x), batch)
        )
    finally:
        model.train(was_training)
    return 100.0 * correct / len(x)


def fine_tune(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    x_eval: torch.Tensor,
    y_eval: torch.Tensor,
    *,
    epochs: int = 5,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    batch: int = 128,
    generator: torch.Generator | None = None,
    progress: bool = True,
) -> FineTuneResult:
    """Train ``model`` in place with Adam and cross-entropy ([`train`][tnlayers.training.train]);
    report accuracy before and after.

    Pruning masks (``torch.nn.utils.prune``) stay applied throughout: the optimiser updates the
    underlying ``weight_orig`` and the mask is re-applied on every forward pass.

    Parameters
    ----------
    model
        A classifier returning logits.
    x, y
        Training inputs and integer labels.
    x_eval, y_eval
        Data for the before/after accuracy.
    epochs, lr, weight_decay, batch
        Adam settings (QIANets: lr 1e-3, weight decay 1e-4).
    generator
        For the shuffling.
    progress
        Show a progress bar over the steps.
    """
    before = evaluate_accuracy(model, x_eval, y_eval)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    result = train(
        model, x, y, optimizer, epochs=epochs, batch=batch, generator=generator,
        progress=progress, desc="fine-tune",
    )  # fmt: skip
    return FineTuneResult(before, evaluate_accuracy(model, x_eval, y_eval), result.losses)
