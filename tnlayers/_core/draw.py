"""Analyse: draw a network (matplotlib via networkx), legs labelled with their sizes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .network import Network

if TYPE_CHECKING:  # imported where used: networkx is slow to import
    import networkx as nx

__all__ = ["draw", "figure_on", "pyplot", "save_figure"]


def pyplot(headless: bool) -> Any:
    """``matplotlib.pyplot``, with the non-interactive backend when only saving to a file."""
    try:
        import matplotlib

        if headless:
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError('plotting needs matplotlib: pip install "tnlayers[plot]"') from err
    return plt


def figure_on(ax: Any, path: str | Path | None, figsize: tuple[float, float]) -> tuple[Any, Any]:
    """``(figure, axes)`` for a plotting function: ``ax`` and its figure if given, else a new
    figure of ``figsize`` (with the non-interactive backend when it is only saved)."""
    if ax is not None:
        return ax.figure, ax
    return pyplot(headless=path is not None).subplots(figsize=figsize)


def save_figure(fig: Any, path: str | Path | None) -> None:
    """Save ``fig`` to ``path`` (any format matplotlib knows, by suffix), if a path is given."""
    if path is not None:
        fig.savefig(path, bbox_inches="tight", dpi=120)


def _display_graph(network: Network) -> nx.Graph:
    """Tensors as nodes; bonds as edges; hyperedges as dot nodes; open legs as end nodes."""
    import networkx as nx

    graph = nx.Graph()
    for name in network.tensor_names:
        graph.add_node(("tensor", name), kind="tensor", label=name)
    for leg, size in network.sizes.items():
        owners = [t for t in network.tensor_names if leg in network.legs(t)]
        label = f"{leg} ({size})"
        side = network.side(leg)
        if len(owners) == 2 and side is None:
            graph.add_edge(("tensor", owners[0]), ("tensor", owners[1]), label=label)
            continue
        hub = ("index", leg)
        graph.add_node(hub, kind=side or "hyper", label=label if side else "")
        for owner in owners:
            graph.add_edge(("tensor", owner), hub, label="" if side else label)
    return graph


def draw(
    network: Network,
    path: str | Path | None = None,
    *,
    ax: Any = None,
    seed: int = 0,
    title: str | None = None,
) -> Any:
    """Draw ``network``: tensors as circles, bonds labelled ``leg (size)``, open legs coloured.

    Input legs are blue, output legs orange, pass-through legs (on both sides) green, hyperedges
    small black dots. Needs matplotlib
    (``pip install "tnlayers[plot]"``).

    Parameters
    ----------
    network
        The network.
    path
        Where to save the figure (any format matplotlib knows, by extension). ``None``: don't save.
    ax
        A matplotlib axes to draw into (default: a new figure).
    seed
        Seed of the layout.
    title
        Figure title (default: the network's summary line).

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn into.
    """
    import networkx as nx

    graph = _display_graph(network)
    size = max(5.0, 1.6 * len(network.tensor_names) + 3)
    fig, ax = figure_on(ax, path, (size, 0.7 * size))
    pos = nx.kamada_kawai_layout(graph) if len(graph) > 2 else nx.spring_layout(graph, seed=seed)
    colours = {
        "tensor": "#d9e6f2",
        "input": "#3b75af",
        "output": "#ef8636",
        "both": "#4c9a2a",
        "hyper": "black",
    }
    sizes = {"tensor": 1600, "input": 120, "output": 120, "both": 120, "hyper": 60}
    for kind in colours:
        nodes = [n for n, data in graph.nodes(data=True) if data["kind"] == kind]
        nx.draw_networkx_nodes(
            graph,
            pos,
            nodelist=nodes,
            node_color=colours[kind],
            node_size=sizes[kind],
            ax=ax,
            edgecolors="#333333" if kind == "tensor" else None,
        )
    nx.draw_networkx_edges(graph, pos, ax=ax, width=1.5)
    nx.draw_networkx_labels(
        graph,
        pos,
        {n: d["label"] for n, d in graph.nodes(data=True) if d["kind"] == "tensor"},
        font_size=9,
        ax=ax,
    )
    open_labels = {
        n: d["label"] for n, d in graph.nodes(data=True) if d["kind"] in ("input", "output", "both")
    }
    nx.draw_networkx_labels(
        graph,
        {n: (x, y - 0.08) for n, (x, y) in pos.items()},
        open_labels,
        font_size=8,
        ax=ax,
    )
    nx.draw_networkx_edge_labels(
        graph,
        pos,
        nx.get_edge_attributes(graph, "label"),
        font_size=8,
        ax=ax,
    )
    ax.set_title(
        title
        or f"{network.in_features} → {network.out_features}, "
        f"{network.num_params:,} parameters (inputs blue, outputs orange"
        + (", pass-through green)" if network.passthrough else ")"),
        fontsize=10,
    )
    ax.set_axis_off()
    save_figure(fig, path)
    return fig
