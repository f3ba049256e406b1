"""Analyse: cost reports, model summaries and ρ, correlation and entanglement of trained layers,
latency, and classification metrics with confidence intervals.
"""

from __future__ import annotations

from ._analysis.correlation import Correlation as Correlation
from ._analysis.correlation import correlation_report as correlation_report
from ._analysis.correlation import plot_correlation as plot_correlation
from ._analysis.correlation import strong_correlation as strong_correlation
from ._analysis.correlation import von_neumann_entropy as von_neumann_entropy
from ._analysis.entropy_plot import plot_entanglement as plot_entanglement
from ._analysis.latency import LatencyReport as LatencyReport
from ._analysis.latency import measure_latency as measure_latency
from ._analysis.metrics import ClassificationReport as ClassificationReport
from ._analysis.metrics import classification_report as classification_report
from ._analysis.path_plot import plot_path as plot_path
from ._analysis.summary import compression_ratio as compression_ratio
from ._analysis.summary import summary as summary
from ._core.cost import CostReport as CostReport
from ._core.cost import StrategyCost as StrategyCost
from ._core.cost import cost as cost
from ._core.fans import TensorFan as TensorFan
from ._core.fans import tensor_fans as tensor_fans

__all__ = [
    "ClassificationReport",
    "Correlation",
    "CostReport",
    "LatencyReport",
    "StrategyCost",
    "TensorFan",
    "classification_report",
    "compression_ratio",
    "correlation_report",
    "cost",
    "measure_latency",
    "plot_correlation",
    "plot_entanglement",
    "plot_path",
    "strong_correlation",
    "summary",
    "tensor_fans",
    "von_neumann_entropy",
]
