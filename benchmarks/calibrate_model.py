"""Fit the MachineModel constants to measured strategy times on this machine.

Times both strategies of several networks at several batch sizes (forward and forward+backward),
then grid-searches the model constants that pick the faster strategy most often, breaking ties
by how far the predicted times are from the measured ones (median |log(predicted / measured)|
over both strategies of every row), then by the total time lost. Prints the best constants, how
often each choice is right and the typical error of the predicted times.

    python benchmarks/calibrate_model.py
"""

from __future__ import annotations

import itertools
import math

import torch
from _common import CASES, median_time, step

import tnlayers


def measure(budget: float = 0.1) -> list[tuple[tnlayers.Network, int, bool, dict[str, float]]]:
    data = []
    extra = [
        ("low-rank 784→256 r=16", lambda: tnlayers.low_rank(784, 256, 16), None),
        ("Kron 3b", lambda: tnlayers.kronecker((7, 7, 16), (16, 7, 7), 2), None),
    ]
    for label, build, _ in CASES + extra:
        net = build()
        for batch in (1, 16, 64, 256, 1024):
            x = torch.randn(batch, net.in_features)
            for backward in (False, True):
                times = {}
                for strategy in ("sequential", "materialize"):
                    layer = tnlayers.TNLinear(net, strategy=strategy)
                    times[strategy] = median_time(step(layer, x, backward), budget)
                data.append((net, batch, backward, times))
                print(
                    f"{label:<24} B={batch:<5} {'train' if backward else 'fwd  '} "
                    f"seq {times['sequential'] * 1e3:8.3f} ms  mat "
                    f"{times['materialize'] * 1e3:8.3f} ms",
                    flush=True,
                )
    return data


def score(model: tnlayers.contraction.MachineModel, data) -> tuple[int, float, float]:
    """(choices within 10 % of the faster strategy, median |log(pred/measured)|, time lost)."""
    right, lost, errors = 0, 0.0, []
    for net, batch, training, times in data:
        the_plan = tnlayers.plan(net, batch, model=model)
        choice = the_plan.choose(training)
        best = min(times.values())
        right += times[choice] <= 1.1 * best
        lost += times[choice] / best - 1
        errors += [abs(math.log(the_plan.time(s, training) / t)) for s, t in times.items()]
    return right, sorted(errors)[len(errors) // 2], lost


def main() -> None:
    data = measure()
    grid = itertools.product(
        (8e10, 1.2e11, 1.6e11, 2.0e11),
        (2e10, 3.4e10, 5e10, 1e11),
        (8e-6, 1.2e-5, 2e-5, 3e-5, 5e-5),
        (16.0, 32.0, 64.0),
    )
    results = []
    for peak, bandwidth, overhead, half in grid:
        model = tnlayers.contraction.MachineModel(peak, bandwidth, overhead, half)
        right, error, lost = score(model, data)
        results.append((-right, round(error, 2), lost, model))
    results.sort(key=lambda r: r[:3])
    right, error, lost = score(tnlayers.contraction.MachineModel(), data)
    print(
        f"default model: {right}/{len(data)} within 10 %, predicted times off by "
        f"×{math.exp(error):.2f} (median), time lost {lost:.2f}"
    )
    for neg_right, error, lost, model in results[:5]:
        print(
            f"{-neg_right}/{len(data)} within 10 %, off by ×{math.exp(error):.2f}, "
            f"time lost {lost:.2f}: {model}"
        )
    assert math.isfinite(results[0][2])


if __name__ == "__main__":
    main()
