"""Training helpers: structure-aware learning rates (``param_groups``) for any model, and for
classifiers on in-memory data one loop (``train``) the examples and the paper reproductions
share, fine-tuning after compression, and accuracy."""

from __future__ import annotations

from ._learning_rates import LearningRate as LearningRate
from ._learning_rates import learning_rates as learning_rates
from ._learning_rates import param_groups as param_groups
from ._training import FineTuneResult as FineTuneResult
from ._training import TrainResult as TrainResult
from ._training import evaluate_accuracy as evaluate_accuracy
from ._training import fine_tune as fine_tune
from ._training import train as train

__all__ = [
    "FineTuneResult",
    "LearningRate",
    "TrainResult",
    "evaluate_accuracy",
    "fine_tune",
    "learning_rates",
    "param_groups",
    "train",
]
