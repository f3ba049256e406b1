"""Seeded generators of random networks, for tests (ours and users')."""

from __future__ import annotations

import random

from ._core.network import Network

__all__ = ["random_network"]


def random_network(
    seed: int,
    *,
    max_tensors: int = 4,
    max_size: int = 4,
    hyperedges: bool = True,
    passthrough: bool = True,
) -> Network:
    """A random connected network with at least one input and one output leg.

    The tensors are joined by a random spanning tree of bonds, then possibly extra bonds (cycles),
    a hyperedge over three or more tensors, and open legs spread over the tensors and sides; leg
    order inside each tensor is shuffled. The same seed always gives the same network.

    Parameters
    ----------
    seed
        Random seed.
    max_tensors
        Largest number of tensors.
    max_size
        Largest index size.
    hyperedges
        Allow a hyperedge (and an open leg shared by two tensors).
    passthrough
        Allow a pass-through leg (listed as an input and an output, carried by one or two
        tensors): a block-diagonal weight.
    """
    rng = random.Random(seed)
    count = rng.randint(1, max_tensors)
    legs: list[dict[str, int]] = [{} for _ in range(count)]
    serial = 0

    def new_index(prefix: str) -> tuple[str, int]:
        nonlocal serial
        serial += 1
        return f"{prefix}{serial}", rng.randint(1, max_size)

    for t in range(1, count):  # spanning tree keeps the network connected
        name, size = new_index("b")
        legs[t][name] = size
        legs[rng.randrange(t)][name] = size
    if count >= 3 and rng.random() < 0.4:  # a cycle
        a, b = rng.sample(range(count), 2)
        name, size = new_index("c")
        legs[a][name] = size
        legs[b][name] = size
    if hyperedges and count >= 3 and rng.random() < 0.5:
        name, size = new_index("h")
        for t in rng.sample(range(count), rng.randint(3, count)):
            legs[t][name] = size
    inputs: list[str] = []
    outputs: list[str] = []
    n_open = rng.randint(2, 4)
    for k in range(n_open):
        side = inputs if k == 0 else outputs if k == 1 else rng.choice([inputs, outputs])
        name, size = new_index("i" if side is inputs else "o")
        owners = [rng.randrange(count)]
        if hyperedges and count >= 2 and rng.random() < 0.15:
            owners = rng.sample(range(count), 2)  # an open leg carried by two tensors
        for t in owners:
            legs[t][name] = size
        side.append(name)
    if passthrough and rng.random() < 0.2:
        name, size = new_index("p")
        for t in rng.sample(range(count), min(count, rng.randint(1, 2))):
            legs[t][name] = size
        inputs.insert(rng.randint(0, len(inputs)), name)
        outputs.insert(rng.randint(0, len(outputs)), name)
    # Names in random order, so code that relies on sorted names (as ParameterDict sorts) fails.
    names = [f"T{k}" for k in rng.sample(range(10 * count), count)]
    tensors = []
    for t, tensor_legs in enumerate(legs):
        if not tensor_legs:  # a lone tensor with nothing attached gets an output leg
            name, size = new_index("o")
            tensor_legs[name] = size
            outputs.append(name)
        items = list(tensor_legs.items())
        rng.shuffle(items)
        tensors.append((names[t], items))
    rng.shuffle(inputs)
    rng.shuffle(outputs)
    return Network(tensors, inputs, outputs)
