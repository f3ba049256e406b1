"""What the benchmark scripts share: the timing helpers, the layer cases of the tables, and the
command line and header line of the timing scripts.

Timing: warm-up, then the median of repeated calls filling a time budget; several passes are
interleaved so that a shared machine's drift hits every implementation alike.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable, Collection, Mapping

import torch
from torch import nn

import tnlayers

CASES: list[tuple[str, Callable[[], tnlayers.Network], dict | None]] = [
    ("MPO 784→256 D=2", lambda: tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), 2), {"rank": 2}),
    ("MPO 784→256 D=8", lambda: tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), 8), {"rank": 8}),
    ("MPO 784→256 D=16", lambda: tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), 16), {"rank": 16}),
    ("MPO 1024² D=8", lambda: tnlayers.mpo((4, 8, 8, 4), (4, 8, 8, 4), 8), {"rank": 8}),
    ("MPO 1024² D=32", lambda: tnlayers.mpo((4, 8, 8, 4), (4, 8, 8, 4), 32), {"rank": 32}),
    ("Kron 784² K=1", lambda: tnlayers.kronecker((28, 28), (28, 28), 1), None),
    ("Kron 784² K=4", lambda: tnlayers.kronecker((28, 28), (28, 28), 4), None),
]


def median_time(fn: Callable[[], object], budget: float) -> float:
    """Median seconds of ``fn`` over repeats filling about ``budget`` seconds."""
    for _ in range(3):
        fn()
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-6)
    repeats = int(min(200, max(5, budget / once)))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def synced(fn: Callable[[], object], device: str) -> Callable[[], object]:
    """``fn`` followed by a device synchronisation on CUDA, so timings include the kernels."""
    if device != "cuda":
        return fn

    def run() -> None:
        fn()
        torch.cuda.synchronize()

    return run


def step(module: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, backward: bool):
    def run() -> None:
        if backward:
            module(x).sum().backward()
        else:
            with torch.no_grad():
                module(x)

    return run


def once(fn: Callable[[], object]) -> float:
    """Seconds of a single call (for cases that take seconds per call)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def best_of_passes(
    layers: Mapping[str, nn.Module],
    x: torch.Tensor,
    backward: bool,
    passes: int,
    budget: float,
    device: str,
    single: Collection[str] = (),
    make_step: Callable[[nn.Module], Callable[[], object]] | None = None,
) -> dict[str, float]:
    """Min over ``passes`` interleaved passes of each layer's median step time, in seconds.

    Interleaving lets a shared machine's drift hit every layer alike. Layers run in training
    mode for forward+backward and in eval mode for forward. Those named in ``single`` take
    seconds per call and are timed by one call, once. ``make_step`` builds the timed call for a
    layer (default: ``step(layer, x, backward)``).
    """
    best: dict[str, float] = {}
    for _ in range(passes):
        for name, layer in layers.items():
            layer.train(backward)
            timed = make_step(layer) if make_step else step(layer, x, backward)
            run = synced(timed, device)
            if name in single:
                t = best.get(name) or once(run)
            else:
                t = median_time(run, budget)
            best[name] = min(best.get(name, t), t)
    return best


def strategy_cells(
    layers: Mapping[str, nn.Module],
    x: torch.Tensor,
    backward: bool,
    passes: int,
    budget: float,
    device: str,
) -> str:
    """One row's timings for layers ``dense``, ``auto``, ``sequential`` and ``materialize``.

    ``dense X ms | auto a× | sequ s× | mate m× | chosen=… auto/best r``: ratios to ``dense``,
    the strategy the automatic layer runs, and its time over the faster forced one.
    """
    best = best_of_passes(layers, x, backward, passes, budget, device)
    forced = min(best["sequential"], best["materialize"])
    auto = layers["auto"]
    chosen = auto.chosen_strategy(x.shape[0], training=backward)  # type: ignore[operator]
    cells = " | ".join(
        f"{name[:4]} {best[name] / best['dense']:5.2f}×"
        for name in ("auto", "sequential", "materialize")
    )
    return (
        f"{'fwd+bwd' if backward else 'fwd    '} dense {best['dense'] * 1e3:7.3f} ms | {cells} | "
        f"chosen={chosen[:3]} auto/best {best['auto'] / forced:4.2f}"
    )


def timing_arguments(description: str) -> argparse.ArgumentParser:
    """The options every timing script takes: ``--quick``, ``--passes``, ``--device``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    return parser


def machine_line(device: str) -> str:
    """The header line that records where a table was measured."""
    return (
        f"# torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}, "
        f"device {device}"
    )
