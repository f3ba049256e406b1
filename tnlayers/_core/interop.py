"""Interoperate with Google's ``tensornetwork`` package (off the hot path)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ArgumentTypeError, NetworkSpecError
from .network import Network

if TYPE_CHECKING:  # imported where used: tensornetwork is slow to import
    import tensornetwork as tn

__all__ = ["from_tensornetwork", "to_tensornetwork"]


def to_tensornetwork(
    network: Network, tensors: Mapping[str, Any]
) -> tuple[dict[str, tn.Node], list[tn.Edge], list[tn.Edge]]:
    """Export a network with values to connected ``tensornetwork`` nodes.

    Bonds become connected edges; a hyperedge becomes a ``CopyNode`` joined to every tensor that
    carries it, and so does a pass-through leg, whose copy node has one dangling edge on each side.
    Axis names are the leg names.

    Parameters
    ----------
    network
        The network.
    tensors
        Values keyed by tensor name: numpy arrays or torch tensors (detached and moved to the CPU
        as numpy arrays), e.g. ``layer.tensors``.

    Returns
    -------
    nodes, input_edges, output_edges
        Nodes keyed by tensor name (copy nodes as ``"copy_<leg>"``), then the dangling input and
        output edges in the network's order.
    """
    import tensornetwork as tn

    nodes: dict[str, tn.Node] = {}
    for name in network.tensor_names:
        value = tensors[name]
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        value = np.asarray(value)
        if value.shape != network.shape(name):
            raise NetworkSpecError(
                f"value of tensor {name!r} has shape {value.shape}, expected {network.shape(name)}"
            )
        nodes[name] = tn.Node(value, name=name, axis_names=list(network.legs(name)))
    inputs: dict[str, tn.Edge] = {}
    outputs: dict[str, tn.Edge] = {}
    for leg, size in network.sizes.items():
        owners = [t for t in network.tensor_names if leg in network.legs(t)]
        sides = [
            side for side, legs in (("in", network.inputs), ("out", network.outputs)) if leg in legs
        ]
        if len(owners) == 1 and len(sides) == 1:
            (inputs if sides == ["in"] else outputs)[leg] = nodes[owners[0]][leg]
        elif len(owners) == 2 and not sides:
            nodes[owners[0]][leg] ^ nodes[owners[1]][leg]
        else:
            # A hyperedge, or a pass-through leg: its input and output edges are two dangling
            # legs of one copy tensor, which is the δ of the block-diagonal weight.
            axis_names = [*owners, *sides]
            dtype = nodes[owners[0]].tensor.dtype
            copy = tn.CopyNode(
                len(axis_names), size, name=f"copy_{leg}", dtype=dtype, axis_names=axis_names
            )
            for owner in owners:
                copy[owner] ^ nodes[owner][leg]
            nodes[f"copy_{leg}"] = copy
            if "in" in sides:
                inputs[leg] = copy["in"]
            if "out" in sides:
                outputs[leg] = copy["out"]
    return (
        nodes,
        [inputs[leg] for leg in network.inputs],
        [outputs[leg] for leg in network.outputs],
    )


def from_tensornetwork(
    nodes: Sequence[tn.Node],
    inputs: Sequence[tn.Edge],
    outputs: Sequence[tn.Edge],
    **network_options: Any,
) -> tuple[Network, dict[str, np.ndarray]]:
    """Import connected ``tensornetwork`` nodes as a network and its values.

    Each edge becomes one index: a connected edge a bond, a dangling edge an open leg (which must
    appear in ``inputs`` or ``outputs``). ``CopyNode``s are absorbed as hyperedges. Tensor names
    are the node names (made unique where needed); leg names are derived from edge names.
    ``network_options`` go to [`Network`][tnlayers.Network] (``in_features``, ``allow_padding``).

    Returns
    -------
    network, values
        The network and the node values keyed by tensor name.
    """
    import tensornetwork as tn

    if not nodes:
        raise NetworkSpecError("no nodes given")
    for node in nodes:
        if not isinstance(node, tn.AbstractNode):
            raise ArgumentTypeError(f"expected tensornetwork nodes, got {type(node).__name__}")
    copies = [n for n in nodes if isinstance(n, tn.CopyNode)]
    plain = [n for n in nodes if not isinstance(n, tn.CopyNode)]
    leg_of: dict[int, str] = {}
    used: set[str] = set()

    def fresh(base: str) -> str:
        base = "".join(c if c.isalnum() or c == "_" else "_" for c in base) or "e"
        if not (base[0].isalpha() or base[0] == "_"):
            base = "e_" + base
        name, k = base, 1
        while name in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        return name

    # One index per copy node: all its edges share it.
    for copy in copies:
        leg = fresh(copy.name or "hyper")
        for edge in copy.edges:
            leg_of[id(edge)] = leg
    for i, edge in enumerate([*inputs, *outputs]):
        if id(edge) not in leg_of:
            leg_of[id(edge)] = fresh(
                edge.name if edge.name and edge.name != "__unnamed_edge__" else f"open{i}"
            )
    names: list[str] = []
    tensors = []
    values: dict[str, np.ndarray] = {}
    for k, node in enumerate(plain):
        name = fresh(node.name if node.name and node.name != "__unnamed_node__" else f"T{k}")
        names.append(name)
        legs = []
        for axis, edge in enumerate(node.edges):
            if id(edge) not in leg_of:
                label = node.axis_names[axis] if edge.is_dangling() else edge.name
                leg_of[id(edge)] = fresh(
                    label if label and label != "__unnamed_edge__" else f"{name}_{axis}"
                )
            legs.append((leg_of[id(edge)], int(node.shape[axis])))
        tensors.append((name, legs))
        values[name] = np.asarray(node.tensor)
    network = Network(
        tensors,
        [leg_of[id(e)] for e in inputs],
        [leg_of[id(e)] for e in outputs],
        **network_options,
    )
    return network, values
