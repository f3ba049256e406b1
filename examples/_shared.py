"""Helpers shared by the example scripts (not an example itself)."""

from __future__ import annotations

import statistics

import torch
from torch import nn


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Test accuracy in percent, in eval mode (training mode restored)."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        correct = (model(x).argmax(1) == y).float().mean().item()
    model.train(was_training)
    return 100.0 * correct


def mean_std(values: list[float], digits: int = 2) -> str:
    """``mean ± sample std``, or the value alone for one run."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"
