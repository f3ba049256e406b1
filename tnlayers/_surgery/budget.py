"""Split a model-level parameter budget across layers where it costs the least error.

Each layer offers a ladder of options (parameters ↑, relative error ↓). The allocation minimises
the sum of squared relative errors ``Σ_l e_l²`` — every layer's error counted relative to its own
weight, so a layer with a large norm does not crowd out the rest — subject to ``Σ_l p_l ≤
budget``. Greedy steps along each ladder's lower convex hull, largest error drop per parameter
first, solve that exactly at the hull's corners (the marginal-value argument of a knapsack over
concave curves); a last pass spends what is left on any rung that still fits.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from .._core.errors import OptionError
from .decompose import Option

__all__ = ["allocate"]


def _hull(options: Sequence[Option]) -> list[int]:
    """Indices of the lower convex hull of ``(params, error²)``, starting at the smallest."""
    hull: list[int] = []
    for index, option in enumerate(options):
        while len(hull) >= 2:
            a, b = options[hull[-2]], options[hull[-1]]
            # b lies on or above the segment a → option: drop it.
            left = (b.error**2 - a.error**2) * (option.params - a.params)
            right = (option.error**2 - a.error**2) * (b.params - a.params)
            if left >= right:
                hull.pop()
            else:
                break
        if not hull or option.error < options[hull[-1]].error:
            hull.append(index)
    return hull


def allocate(ladders: Sequence[Sequence[Option]], budget: float, names: Sequence[str]) -> list[int]:
    """One rung per layer, minimising ``Σ error²`` within ``budget`` parameters.

    Parameters
    ----------
    ladders
        Per layer, options sorted by parameters (errors known).
    budget
        Parameters the layers may hold together.
    names
        Layer names, for the error message.

    Returns
    -------
    list of int
        The chosen index into each ladder.

    Raises
    ------
    OptionError
        If even the smallest option of every layer exceeds the budget.
    """
    for name, options in zip(names, ladders, strict=True):
        if not options:
            raise OptionError(
                f"layer {name!r} has no replacement with fewer parameters than its weight; "
                "leave it out (names=, min_params=) or choose another method"
            )
    chosen = [0] * len(ladders)
    spent = sum(options[0].params for options in ladders)
    if spent > budget:
        raise OptionError(
            f"the budget leaves {budget:,.0f} parameters for the {len(ladders)} compressed "
            f"layer(s), but their smallest replacements already need {spent:,}: no allocation "
            "meets it (raise the ratio, or compress more layers)"
        )
    hulls = [_hull(options) for options in ladders]
    position = [0] * len(ladders)  # index into each hull
    heap: list[tuple[float, int]] = []

    def push(layer: int) -> None:
        hull = hulls[layer]
        if position[layer] + 1 < len(hull):
            here, there = (
                ladders[layer][hull[position[layer]]],
                ladders[layer][hull[position[layer] + 1]],
            )
            gain = (here.error**2 - there.error**2) / (there.params - here.params)
            heapq.heappush(heap, (-gain, layer))

    for layer in range(len(ladders)):
        push(layer)
    blocked: list[int] = []
    while heap:
        _, layer = heapq.heappop(heap)
        hull = hulls[layer]
        here, there = (
            ladders[layer][hull[position[layer]]],
            ladders[layer][hull[position[layer] + 1]],
        )
        step = there.params - here.params
        if spent + step > budget:
            blocked.append(layer)  # a smaller step elsewhere may still fit
            continue
        spent += step
        position[layer] += 1
        chosen[layer] = hull[position[layer]]
        push(layer)
    # Spend the rest on any rung that fits, best error drop per parameter first.
    improved = True
    while improved:
        improved = False
        best: tuple[float, int, int] | None = None
        for layer, options in enumerate(ladders):
            here = options[chosen[layer]]
            for index in range(chosen[layer] + 1, len(options)):
                there = options[index]
                step = there.params - here.params
                if step <= 0 or spent + step > budget or there.error >= here.error:
                    continue
                gain = (here.error**2 - there.error**2) / step
                if best is None or gain > best[0]:
                    best = (gain, layer, index)
        if best is not None:
            _, layer, index = best
            spent += ladders[layer][index].params - ladders[layer][chosen[layer]].params
            chosen[layer] = index
            improved = True
    return chosen
