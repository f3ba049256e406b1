"""Fans: each tensor of a network seen as one dense map in a forward pass, for learning rates.

A layer ``y = W x`` with a tensor-network ``W`` is a composition of small dense maps: absorbing
the tensors into ``x`` one at a time, tensor ``t`` sums some legs of the activation away (its
*fan-in*), adds legs of its own (its *fan-out*) and carries others through unchanged (a *batch*
of independent maps: shared open legs, pass-through legs, a hyperedge still to be met). The
maximal-update rule for Adam (Yang et al. 2022, "Tensor Programs V"; applied to structured
layers factor by factor by Qiu et al. 2024, "Compute Better Spent") scales each map's learning
rate as ``1 / fan_in``. This module finds those fans from the legs alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .network import Network

__all__ = ["TensorFan", "tensor_fans"]


@dataclass(frozen=True)
class TensorFan:
    """One tensor of a network as a dense map of the forward pass.

    Attributes
    ----------
    position
        When it meets the activation (0 first).
    fan_in
        Elements summed per output element: the product of the legs it contracts away.
    fan_out
        Product of the legs it adds to the activation.
    batch
        Product of the legs it shares with the activation but keeps (independent maps).
    """

    position: int
    fan_in: int
    fan_out: int
    batch: int


def absorption_order(network: Network) -> tuple[str, ...]:
    """The order in which the input absorbs the tensors: those carrying input legs first (in
    declaration order), then each next one that shares a leg with the activation.

    For the built-in families this is the order their papers draw: an MPO or ring left to right,
    a Tucker network's input factors, core, output factors; a BTT's ``A`` then ``B``.
    """
    inputs = set(network.inputs)
    first = [t for t in network.tensor_names if inputs & set(network.legs(t))]
    order = list(first)
    reached = {leg for t in first for leg in network.legs(t)} | inputs
    remaining = [t for t in network.tensor_names if t not in first]
    while remaining:
        # The network is connected, so some remaining tensor touches what was absorbed.
        nxt = next(t for t in remaining if reached & set(network.legs(t)))
        order.append(nxt)
        reached |= set(network.legs(nxt))
        remaining.remove(nxt)
    return tuple(order)


def tensor_fans(network: Network) -> dict[str, TensorFan]:
    """Fan-in, fan-out and batch of every tensor as the input absorbs them in turn.

    Parameters
    ----------
    network
        Any network.

    Returns
    -------
    dict
        ``{tensor name: TensorFan}`` in the network's tensor order.

    Examples
    --------
    >>> from tnlayers import btt
    >>> fans = tensor_fans(btt((16, 16), (16, 16), 2))
    >>> fans["A"].fan_in, fans["B"].fan_in  # A sums i2; B sums i1 and the rank
    (16, 32)
    """
    sizes = network.sizes
    order = absorption_order(network)
    activation = set(network.inputs)
    outputs = set(network.outputs)
    fans: dict[str, TensorFan] = {}
    for position, name in enumerate(order):
        legs = set(network.legs(name))
        later = outputs.union(*(network.legs(t) for t in order[position + 1 :]))
        shared = legs & activation
        summed = {leg for leg in shared if leg not in later}
        added = legs - activation
        fans[name] = TensorFan(
            position=position,
            fan_in=math.prod(sizes[leg] for leg in summed),
            fan_out=math.prod(sizes[leg] for leg in added),
            batch=math.prod(sizes[leg] for leg in shared - summed),
        )
        activation = (activation - summed) | added
    return {name: fans[name] for name in network.tensor_names}
