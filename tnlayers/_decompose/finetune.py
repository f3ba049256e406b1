"""Fine-tune a (compressed) model on in-memory data, with a progress bar."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

__all__ = ["FineTuneResult", "evaluate_accuracy", "fine_tune"]


@dataclass(frozen=True)
class FineTuneResult:
    """Accuracy (%) on the evaluation data before and after, and the mean loss of each epoch."""

    accuracy_before: float
    accuracy_after: float
    losses: tuple[float, ...]


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
    """Train ``model`` in place with Adam and cross-entropy; report accuracy before and after.

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
    steps = -(-len(x) // batch)
    losses = []
    model.train()
    with tqdm(total=epochs * steps, desc="fine-tune", disable=not progress, leave=False) as bar:
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=generator)
            total = 0.0
            for start in range(0, len(x), batch):
                idx = order[start : start + batch]
                optimizer.zero_grad()
                loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
                loss.backward()
                optimizer.step()
                total += loss.item() * len(idx)
                bar.update()
            losses.append(total / len(x))
            bar.set_postfix_str(f"loss {losses[-1]:.4f}")
    return FineTuneResult(before, evaluate_accuracy(model, x_eval, y_eval), tuple(losses))
