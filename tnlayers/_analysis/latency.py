"""Analyse: inference latency per image, measured honestly (the QIANets latency, done properly).

Every model runs in eval mode under ``no_grad`` with a fixed thread count, after warm-up
passes, and the models are timed in interleaved rounds (so that a shared machine's drift hits
them alike); the figure is the median over rounds, divided by the batch size.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .._core.table import format_table

__all__ = ["LatencyReport", "measure_latency"]


@dataclass(frozen=True)
class LatencyReport:
    """Median seconds per image, per model and batch size.

    Attributes
    ----------
    seconds
        ``{model: {batch: seconds per image}}``.
    nonzero, weights
        ``{model: count}`` of non-zero and of all weights (parameters named ``weight*``, after
        pruning masks are applied).
    threads, repeats
        The measurement settings.
    """

    seconds: dict[str, dict[int, float]]
    nonzero: dict[str, int]
    weights: dict[str, int]
    threads: int
    repeats: int

    def __str__(self) -> str:
        names = list(self.seconds)
        batches = list(self.seconds[names[0]])
        base = names[0]
        header = ["model", "weights (non-zero)"] + [f"batch {b}: s/image" for b in batches]
        rows = [header]
        for name in names:
            times = self.seconds[name]
            cells = [f"{times[b]:.3g} ({times[b] / self.seconds[base][b]:.2f}×)" for b in batches]
            rows.append([name, f"{self.weights[name]:,} ({self.nonzero[name]:,})", *cells])
        note = (
            f"median of {self.repeats} interleaved rounds, {self.threads} thread(s), eval mode, "
            f"no_grad; ratios to {base!r}. Zeros left by pruning masks are still stored and "
            "multiplied by the dense kernels: they lower the non-zero count, not the time. Only "
            "removing them structurally (fewer channels, smaller factors) or a sparse kernel "
            "would."
        )
        return format_table(rows) + "\n" + note


def _weights(model: nn.Module) -> tuple[int, int]:
    """All and non-zero weights (every parameter but biases; pruned ones with their mask)."""
    total = nonzero = 0
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if name == "bias":
                continue
            # torch.nn.utils.prune keeps `weight_orig`; the masked `weight` is what runs.
            value = getattr(module, name.removesuffix("_orig")) if name.endswith("_orig") else param
            total += value.numel()
            nonzero += int(torch.count_nonzero(value.detach()))
    return total, nonzero


def measure_latency(
    models: Mapping[str, nn.Module],
    inputs: torch.Tensor,
    *,
    batch_sizes: Sequence[int] = (1, 256),
    threads: int = 2,
    warmup: int = 3,
    repeats: int = 10,
) -> LatencyReport:
    """Time ``models`` side by side on the same inputs; seconds per image at each batch size.

    Parameters
    ----------
    models
        ``{name: model}``; the first is the reference of the ratios.
    inputs
        ``(N, ...)`` inputs; a batch of ``b`` uses the first ``b`` (repeated if ``N < b``).
    batch_sizes
        Batch sizes to time.
    threads
        ``torch.set_num_threads`` during the measurement (restored afterwards).
    warmup, repeats
        Untimed passes per model and batch size, then timed interleaved rounds.
    """
    previous = torch.get_num_threads()
    modes = {name: m.training for name, m in models.items()}
    seconds: dict[str, dict[int, float]] = {name: {} for name in models}
    torch.set_num_threads(threads)
    try:
        for model in models.values():
            model.eval()
        with torch.no_grad():
            for b in batch_sizes:
                reps = -(-b // len(inputs))
                x = inputs.repeat(reps, *([1] * (inputs.dim() - 1)))[:b] if reps > 1 else inputs[:b]
                for model in models.values():
                    for _ in range(warmup):
                        model(x)
                samples: dict[str, list[float]] = {name: [] for name in models}
                for _ in range(repeats):
                    for name, model in models.items():
                        start = time.perf_counter()
                        model(x)
                        samples[name].append(time.perf_counter() - start)
                for name in models:
                    seconds[name][b] = statistics.median(samples[name]) / b
    finally:
        torch.set_num_threads(previous)
        for name, model in models.items():
            model.train(modes[name])
    counts = {name: _weights(m) for name, m in models.items()}
    return LatencyReport(
        seconds,
        {name: c[1] for name, c in counts.items()},
        {name: c[0] for name, c in counts.items()},
        threads,
        repeats,
    )
