"""Analyse: plot the entanglement entropy per bond of every MPO layer of a model."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from torch import nn

from .._core.draw import figure_on, save_figure
from .._layers.mpo import MPOLayerBase

__all__ = ["plot_entanglement"]


def plot_entanglement(model: nn.Module, path: str | Path | None = None, *, ax: Any = None) -> Any:
    r"""Entanglement entropy at each bond of every MPO layer in ``model``, one line per layer.

    Each line is a layer's
    [`entanglement_entropy`][tnlayers.compression.MPO.entanglement_entropy]; its bound ``ln D_k``
    is marked with the same colour, dotted.

    Parameters
    ----------
    model
        A model containing [`MPOLinear`][tnlayers.MPOLinear] or
        [`MPOConv2d`][tnlayers.MPOConv2d] layers (or one such layer).
    path
        Save the figure there (PNG, SVG, ... by suffix).
    ax
        Matplotlib axes to draw into (default: a new figure).

    Returns
    -------
    matplotlib.figure.Figure
    """
    layers = [
        (name or "layer", m) for name, m in model.named_modules() if isinstance(m, MPOLayerBase)
    ]
    if not layers:
        raise ValueError(f"{type(model).__name__} has no MPO layer to plot")
    fig, ax = figure_on(ax, path, (6, 4))
    for name, layer in layers:
        entropy = layer.entanglement_entropy().tolist()
        bonds = range(1, len(entropy) + 1)
        (line,) = ax.plot(bonds, entropy, marker="o", label=name)
        sizes = layer.mpo().bonds
        ax.plot(bonds, [math.log(d) for d in sizes], ls=":", color=line.get_color())
    ax.set_xlabel("bond k")
    ax.set_ylabel("entanglement entropy $S_k$ (nats); dotted: $\\ln D_k$")
    ax.legend(fontsize=8)
    save_figure(fig, path)
    return fig
