"""Analyse: a cost report's contraction path as a figure, one bar per step, sized by FLOPs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, cast

from .._core.cost import CostReport, cost
from .._core.draw import figure_on, save_figure
from .._core.errors import OptionError
from .._core.network import Network
from .._core.plan import BATCH, Contraction, Plan, Strategy

__all__ = ["path_steps", "plot_path"]


def path_steps(contraction: Contraction) -> list[tuple[str, str, int, int, bool]]:
    """``(operands met, result, FLOPs, result elements, carries the batch)`` for each step.

    Operands are named as the contraction names them (``x``, ``core1``, ``W``); the result of
    step ``k`` is named ``t{k}`` where later steps meet it.
    """
    stack = list(contraction.names)
    rows = []
    for number, step in enumerate(contraction.steps, start=1):
        met = [stack[p] for p in step.operands]
        for p in reversed(step.operands):
            stack.pop(p)
        result = f"t{number}" if number < len(contraction.steps) else "out"
        stack.append(result)
        rows.append((" · ".join(met), result, step.flops, step.size, BATCH in step.output))
    return rows


def plot_path(
    subject: Network | CostReport,
    batch: int = 64,
    *,
    strategy: str | None = None,
    mode: Literal["training", "inference"] = "training",
    path: str | Path | None = None,
    ax: Any = None,
) -> Any:
    """Draw the contraction path of a strategy: which tensors meet at each step, and its FLOPs.

    One horizontal bar per step, top to bottom in execution order, its length the step's FLOPs
    (log scale), labelled ``core1 · core2 → t1`` with the size of what it creates; steps among
    the tensors alone (their cost does not grow with the batch) in orange, steps carrying the
    batch in blue. A *materialize* strategy shows the weight build, then the GEMM. Needs
    matplotlib (``pip install "tnlayers[plot]"``).

    Parameters
    ----------
    subject
        A network (costed at ``batch`` in ``mode``) or a cost report from
        [`cost`][tnlayers.cost] or a layer's ``cost()``.
    batch, mode
        The workload, when ``subject`` is a network.
    strategy
        ``"sequential"`` or ``"materialize"`` (default: the strategy the report chose).
    path
        Save the figure there (PNG, SVG, ... by suffix).
    ax
        Matplotlib axes to draw into (default: a new figure).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import tnlayers
    >>> from tnlayers.analysis import plot_path
    >>> fig = plot_path(tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), 4), batch=64)
    """
    report = cost(subject, batch, mode=mode) if isinstance(subject, Network) else subject
    if not isinstance(report, CostReport) or not isinstance(report.plan, Plan):
        raise OptionError(
            "plot_path needs a tensor network or its cost report (Givens circuits have no "
            f"contraction path), got {type(subject).__name__}"
        )
    name = strategy or report.strategy
    if name not in report.plan.strategies:
        raise OptionError(
            f"unknown strategy {name!r}; this report has {sorted(report.plan.strategies)}"
        )
    contractions = report.plan.strategies[cast(Strategy, name)].contractions
    rows = []
    builds_weight = len(contractions) > 1
    for part, contraction in enumerate(contractions):
        for met, result, flops, size, batched in path_steps(contraction):
            if builds_weight and part == 0 and result == "out":
                result = "W"
            rows.append((f"{met} → {result}", flops, size, batched))
    fig, ax = figure_on(ax, path, (8, 0.45 * len(rows) + 1.4))
    positions = list(range(len(rows)))[::-1]
    widths = [max(r[1], 1) for r in rows]
    colours = ["tab:blue" if r[3] else "tab:orange" for r in rows]
    bars = ax.barh(positions, widths, color=colours, alpha=0.8)
    for bar, (_, step_flops, size, _) in zip(bars, rows, strict=True):
        ax.annotate(
            f" {step_flops:.3g} FLOPs, creates {size:,} elements",
            (bar.get_width(), bar.get_y() + bar.get_height() / 2),
            va="center",
            fontsize=8,
        )
    ax.set_yticks(positions, [r[0] for r in rows], fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(right=max(widths) * 200)
    ax.set_xlabel("FLOPs of the step (forward, log scale)")
    total = sum(r[1] for r in rows)
    ax.set_title(
        f"{name} path at batch {report.batch}: {len(rows)} steps, {total:.3g} FLOPs",
        fontsize=10,
        pad=22,
    )
    from matplotlib.patches import Patch  # present: figure_on imported matplotlib

    legend = [Patch(color=c, alpha=0.8) for c in ("tab:orange", "tab:blue")]
    ax.legend(
        legend,
        ["tensors only (no batch)", "carries the batch"],
        fontsize=8,
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncol=2,
        frameon=False,
    )
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    save_figure(fig, path)
    return fig
