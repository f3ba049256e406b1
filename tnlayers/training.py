"""Training helpers for classifiers on in-memory data: one loop (``train``) the examples and the
paper reproductions share, fine-tuning after compression, and accuracy."""

from __future__ import annotations

from ._training import FineTuneResult as FineTuneResult
from ._training import TrainResult as TrainResult
from ._training import evaluate_accuracy as evaluate_accuracy
from ._training import fine_tune as fine_tune
from ._training import train as train

__all__ = ["FineTuneResult", "TrainResult", "evaluate_accuracy", "fine_tune", "train"]
