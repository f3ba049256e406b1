"""Analyse: the classification report of Chen et al. 2024 (accuracy, per-class P/R/F1, P-R and
ROC areas).

A diverged model (NaN or infinite logits or loss) gets a report that says so, with chance-level
metrics where they cannot be computed, instead of an exception from deep inside scikit-learn.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = ["ClassificationReport", "classification_report"]


@dataclass(frozen=True)
class ClassificationReport:
    """Metrics of a classifier on one data set.

    Attributes
    ----------
    accuracy
        Fraction correct.
    precision, recall, f1
        Per class, in class order.
    pr_auc
        Area under the precision–recall curve (average precision), macro over classes
        (one-vs-rest).
    roc_auc
        Area under the ROC curve, macro over classes (one-vs-rest).
    loss
        Mean cross-entropy; ``nan`` when the model diverged.
    diverged
        Whether the loss or any logit is NaN or infinite.
    """

    accuracy: float
    precision: tuple[float, ...]
    recall: tuple[float, ...]
    f1: tuple[float, ...]
    pr_auc: float
    roc_auc: float
    loss: float
    diverged: bool

    @staticmethod
    def _mean_var(values: tuple[float, ...]) -> tuple[float, float]:
        return statistics.fmean(values), statistics.pvariance(values)

    @property
    def f1_mean_var(self) -> tuple[float, float]:
        """Mean and variance of the per-class F1 (Chen et al. 2024 report both)."""
        return self._mean_var(self.f1)

    @property
    def precision_mean_var(self) -> tuple[float, float]:
        """Mean and variance of the per-class precision."""
        return self._mean_var(self.precision)

    @property
    def recall_mean_var(self) -> tuple[float, float]:
        """Mean and variance of the per-class recall."""
        return self._mean_var(self.recall)

    def to_dict(self) -> dict[str, object]:
        """Plain data, for JSON."""
        return {
            "accuracy": self.accuracy,
            "precision": list(self.precision),
            "recall": list(self.recall),
            "f1": list(self.f1),
            "pr_auc": self.pr_auc,
            "roc_auc": self.roc_auc,
            "loss": self.loss,
            "diverged": self.diverged,
        }

    def __str__(self) -> str:
        f1, f1_var = self.f1_mean_var
        loss = "NaN (diverged)" if self.diverged else f"{self.loss:.4f}"
        return (
            f"accuracy {100 * self.accuracy:.2f} %, F1 {f1:.4f} (var {f1_var:.2e}), "
            f"P-R area {self.pr_auc:.4f}, ROC area {self.roc_auc:.4f}, loss {loss}"
        )


@torch.no_grad()
def classification_report(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch: int = 1024
) -> ClassificationReport:
    """Evaluate ``model`` (in eval mode, restored afterwards) on ``(x, y)``.

    Parameters
    ----------
    model
        Returns logits ``(batch, classes)``.
    x, y
        Inputs and integer labels ``(samples,)``.
    batch
        Evaluation batch size.

    Returns
    -------
    ClassificationReport
    """
    try:
        from sklearn.metrics import (
            average_precision_score,
            precision_recall_fscore_support,
            roc_auc_score,
        )
    except ImportError as err:
        raise ImportError(
            'classification_report uses scikit-learn\'s metrics: pip install "tnlayers[data]"'
        ) from err

    was_training = model.training
    model.eval()
    try:
        logits = torch.cat([model(x[i : i + batch]) for i in range(0, len(x), batch)])
    finally:
        model.train(was_training)
    logits = logits.detach().double().cpu()
    labels = y.cpu().numpy()
    classes = logits.shape[1]
    finite = bool(torch.isfinite(logits).all())
    loss = nn.functional.cross_entropy(logits, y.cpu()).item() if finite else math.nan
    diverged = not (finite and math.isfinite(loss))
    # A diverged model predicts nothing sensible: count it as always predicting class 0.
    predicted = logits.argmax(1).numpy() if finite else np.zeros_like(labels)
    precision, recall, f1, _ = precision_recall_fscore_support(
        labels, predicted, labels=list(range(classes)), zero_division=0
    )
    if finite:
        probs = torch.softmax(logits, 1).numpy()
        onehot = np.eye(classes)[labels]
        present = onehot.sum(0) > 0
        pr_auc = float(
            np.mean(
                [
                    average_precision_score(onehot[:, c], probs[:, c])
                    for c in np.flatnonzero(present)
                ]
            )
        )
        roc_auc = float(
            roc_auc_score(labels, probs, multi_class="ovr", labels=list(range(classes)))
            if classes > 2
            else roc_auc_score(labels, probs[:, 1])
        )
    else:
        pr_auc = roc_auc = math.nan
    return ClassificationReport(
        accuracy=float((predicted == labels).mean()),
        precision=tuple(float(v) for v in precision),
        recall=tuple(float(v) for v in recall),
        f1=tuple(float(v) for v in f1),
        pr_auc=pr_auc,
        roc_auc=roc_auc,
        loss=loss,
        diverged=diverged,
    )
