"""Plan: tnlayers' default path optimiser, ``"best"`` — deterministic and never poor.

opt_einsum's ``"auto-hq"`` switches to a randomised greedy search above 15 operands whose result
depends on ``PYTHONHASHSEED`` (three processes, three plans), and for long chains it can be 5×
worse than a plain left-to-right sweep. ``"best"`` instead takes the cheapest (by opt_einsum's
own FLOP count; ties go to the earlier candidate) of deterministic candidates:

* up to ``DP_OPERANDS`` operands (``DP_OPERANDS_CHAIN`` for chains and rings), opt_einsum's
  dynamic programming over connected sub-networks (and, up to 8 operands — 6 when an index
  joins three or more of them — its exhaustive ``"optimal"`` search, which also tries outer
  products);
* for a network whose tensors form a chain or a ring (an MPO / tensor train / tensor ring,
  whatever its length) an interval dynamic programme: every sub-network it considers is a run of
  neighbouring tensors, with or without the input, so it is exact over that family in O(n³)
  steps;
* the left-to-right and right-to-left sweeps of the input through the tensors, and
  opt_einsum's deterministic ``"greedy"`` and ``"branch-1"``.

The dynamic programme over all connected sub-networks grows exponentially once the input touches
every tensor (3 s at 24 operands here, and 30 s at 16 for an MPO with bond 1), which is why the
chain programme takes over above ``DP_OPERANDS_CHAIN``.

``grouped_paths`` offers the planner, for a layer's *sequential* contraction of a chain, a ring
or a tree, the paths that join groups of neighbouring tensors before the input meets them; the
planner keeps one of them instead of the FLOP-optimal path where its machine model predicts it
faster.
This module knows nothing about torch.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, NamedTuple

import opt_einsum
from opt_einsum.paths import ssa_to_linear

if TYPE_CHECKING:  # imported where used: networkx is slow to import
    import networkx as nx

__all__ = ["DP_OPERANDS", "PathStep", "best_path", "grouped_paths", "path_flops", "walk_path"]

# Above this many operands opt_einsum's dp can take seconds to minutes (the input connects every
# tensor: 16 operands of an MPO with bond 1 took 30 s here). Chains and rings have the interval
# programme, which matched dp wherever both ran, so they use dp only when it is surely quick.
DP_OPERANDS = 12
DP_OPERANDS_CHAIN = 10
# Chains and rings of up to this many tensors offer every split into runs of neighbours to
# ``grouped_paths``; longer ones only the splits into two runs (splits grow as 2^n).
GROUPED_ALL_SPLITS = 6
# Up to this many operands the exhaustive search is cheap...
OPTIMAL_OPERANDS = 8
# ...unless one index joins three or more of them (a CP rank, a Kronecker term index): then
# every pair is contractible and the search grows factorially (8 CP factors: 2.8 s, 9: 15 s).
OPTIMAL_OPERANDS_HYPEREDGE = 6

Legs = tuple[str, ...]
Path = list[tuple[int, ...]]


class PathStep(NamedTuple):
    """One step of a path walked by ``walk_path``."""

    positions: tuple[int, ...]  # in the current operand list, ascending
    picked: tuple[Legs, ...]  # legs of the operands contracted
    union: tuple[str, ...]  # every leg they carry, first appearance first
    kept: Legs  # legs of the result
    flops: int  # counted as opt_einsum's PathInfo.opt_cost counts them


def walk_path(
    operands: Sequence[Legs], output: Legs, sizes: Mapping[str, int], path: Path
) -> Iterator[PathStep]:
    """The steps of ``path`` (opt_einsum's linear format: contracted operands are removed and
    the result appended), with the legs each result keeps and its FLOPs."""
    current = [tuple(legs) for legs in operands]
    for raw in path:
        positions = tuple(sorted(raw))
        picked = tuple(current[p] for p in positions)
        for p in reversed(positions):
            current.pop(p)
        remaining = {leg for legs in current for leg in legs} | set(output)
        union = tuple(dict.fromkeys(leg for legs in picked for leg in legs))
        kept = tuple(leg for leg in union if leg in remaining) if current else output
        removed = any(leg not in kept for leg in union)
        flops = math.prod(sizes[leg] for leg in union) * (max(1, len(picked) - 1) + removed)
        current.append(kept)
        yield PathStep(positions, picked, union, kept, flops)


def path_flops(operands: Sequence[Legs], output: Legs, sizes: Mapping[str, int], path: Path) -> int:
    """FLOPs of ``path`` (linear format) counted as opt_einsum's ``PathInfo.opt_cost``."""
    return sum(step.flops for step in walk_path(operands, output, sizes, path))


def input_copy(
    operands: Sequence[Legs],
    output: Legs,
    sizes: Mapping[str, int],
    path: Path,
    input_operand: int | None,
) -> int:
    """Elements of the layer input that ``path``'s first step on it must copy (0 or all).

    The input arrives as ``(batch, *inputs)``; a step that sums its *trailing* legs reads it as
    a ``(rows, summed)`` matrix in place, any other order must transpose it first (and the
    input's gradient back, in training). Used to break ties between equally cheap paths.
    """
    if input_operand is None:
        return 0
    legs = tuple(operands[input_operand])
    where = input_operand
    for step in walk_path(operands, output, sizes, path):
        if where in step.positions:
            summed = {leg for leg in legs if leg not in step.kept}
            if not summed or set(legs[len(legs) - len(summed) :]) == summed:
                return 0
            return math.prod(sizes[leg] for leg in legs)
        where -= sum(1 for p in step.positions if p < where)
    return 0


def best_path(
    operands: Sequence[Legs], output: Legs, sizes: Mapping[str, int], input_operand: int | None
) -> Path:
    """The cheapest deterministic path (linear format) for contracting ``operands``.

    Parameters
    ----------
    operands
        Legs of each operand.
    output
        Legs of the result.
    sizes
        Size of every leg.
    input_operand
        Position of the layer input among the operands (``None`` when there is none, as in
        the contraction of the weight): the chain programme treats it apart.
    """
    return list(
        _best_path(
            tuple(tuple(legs) for legs in operands),
            tuple(output),
            tuple(sorted(sizes.items())),
            input_operand,
        )
    )


@lru_cache(maxsize=1024)
def _best_path(
    operands: tuple[Legs, ...],
    output: Legs,
    size_items: tuple[tuple[str, int], ...],
    input_operand: int | None,
) -> tuple[tuple[int, ...], ...]:
    sizes = dict(size_items)
    if len(operands) == 1:
        return ((0,),)
    candidates: list[Path] = []
    found = _chain_order(operands, input_operand)
    if found is not None:
        chain, ring = found
        candidates.append(_chain_path(operands, output, sizes, input_operand, chain, ring))
    if len(operands) <= (DP_OPERANDS if found is None else DP_OPERANDS_CHAIN):
        candidates.append(_opt_einsum_path(operands, output, sizes, "dp"))
        if len(operands) <= _optimal_limit(operands):
            candidates.append(_opt_einsum_path(operands, output, sizes, "optimal"))
    if input_operand is not None:
        others = [k for k in range(len(operands)) if k != input_operand]
        candidates.append(_sweep(input_operand, others))
        candidates.append(_sweep(input_operand, others[::-1]))
    candidates.append(_opt_einsum_path(operands, output, sizes, "greedy"))
    candidates.append(_opt_einsum_path(operands, output, sizes, "branch-1"))
    # Fewest FLOPs; among equally cheap paths, one that reads the input in place.
    best = min(
        candidates,
        key=lambda path: (
            path_flops(operands, output, sizes, path),
            input_copy(operands, output, sizes, path, input_operand),
        ),
    )
    return tuple(tuple(step) for step in best)


def grouped_paths(operands: Sequence[Legs], input_operand: int) -> list[Path]:
    """Paths that contract runs of neighbouring tensors among themselves first, then sweep the
    input through the runs, from either end (linear format). For other tensors joined as a tree
    (a binary tree, a Tucker star), the two parts left by removing each edge; empty for any
    other graph.

    Fewest FLOPs is not fastest: for an MPO of bond 2, going core by core through the batch is
    the FLOP minimum but takes four thin contractions over large intermediates, where joining
    the cores in two halves first (a few hundred elements each, no batch leg) leaves two
    well-shaped GEMMs on the batch — 40 % more FLOPs, a third of the time. The planner ranks
    these candidates with its machine model beside the FLOP-optimal path.
    """
    graph = _tensor_graph(operands, input_operand)
    found = _chain_in(graph)
    if found is None:
        return _tree_splits(graph, len(operands), input_operand)
    chain, ring = found
    n = len(chain)
    # Cut sets between one run (the whole weight: what *materialize* does) and every tensor
    # alone (the plain sweep, already a candidate). A chain is cut between neighbours; a ring
    # needs two cuts at least, anywhere round it.
    if ring:
        counts = range(2, n) if n <= GROUPED_ALL_SPLITS else range(2, 3)
        cut_sets = [cuts for r in counts for cuts in itertools.combinations(range(n), r)]
    elif n <= GROUPED_ALL_SPLITS:
        cut_sets = [
            cuts for r in range(1, n - 1) for cuts in itertools.combinations(range(1, n), r)
        ]
    else:
        cut_sets = [(cut,) for cut in range(1, n)]
    paths: list[Path] = []
    for cuts in cut_sets:
        if ring:
            runs = [
                [chain[(start + j) % n] for j in range((end - start) % n)]
                for start, end in zip(cuts, (*cuts[1:], cuts[0]), strict=True)
            ]
        else:
            runs = [chain[a:b] for a, b in itertools.pairwise((0, *cuts, n))]
        paths.extend(_groups_then_input(runs, len(operands), input_operand))
    return paths


def _tree_splits(graph: nx.Graph, operand_count: int, input_operand: int) -> list[Path]:
    """For tensors joined as a tree (``graph``: no cycle, some tensor with three neighbours or
    more: a binary tree, a Tucker star), the two parts left by removing each edge, each joined
    first."""
    import networkx as nx

    if graph.number_of_nodes() < 3 or not nx.is_tree(graph):
        return []
    paths: list[Path] = []
    for u, v in graph.edges:
        cut = graph.copy()
        cut.remove_edge(u, v)
        # Depth-first order: each tensor joins one it shares a leg with (no outer products).
        parts = [list(nx.dfs_preorder_nodes(cut, u)), list(nx.dfs_preorder_nodes(cut, v))]
        paths.extend(_groups_then_input(parts, operand_count, input_operand))
    return paths


def _groups_then_input(
    groups: Sequence[Sequence[int]], operand_count: int, input_operand: int
) -> list[Path]:
    """Each group's tensors contracted in the given order, then the input with the groups, in
    the given order and reversed (linear format)."""
    paths: list[Path] = []
    for order in (groups, groups[::-1]):
        ssa: list[tuple[int, int]] = []
        next_id = operand_count
        joined = []
        for group in order:
            current = group[0]
            for tensor in group[1:]:
                ssa.append((current, tensor))
                current, next_id = next_id, next_id + 1
            joined.append(current)
        current = input_operand
        for group_id in joined:
            ssa.append((current, group_id))
            current, next_id = next_id, next_id + 1
        paths.append([tuple(step) for step in ssa_to_linear(ssa)])
    return paths


def _optimal_limit(operands: Sequence[Legs]) -> int:
    """Most operands for the exhaustive search on this network (see the constants above)."""
    counts: dict[str, int] = {}
    for legs in operands:
        for leg in legs:
            counts[leg] = counts.get(leg, 0) + 1
    hyperedge = any(count >= 3 for count in counts.values())
    return OPTIMAL_OPERANDS_HYPEREDGE if hyperedge else OPTIMAL_OPERANDS


def _opt_einsum_path(
    operands: Sequence[Legs], output: Legs, sizes: Mapping[str, int], optimize: str
) -> Path:
    symbols = {leg: opt_einsum.get_symbol(k) for k, leg in enumerate(sizes)}
    equation = (
        ",".join("".join(symbols[leg] for leg in legs) for legs in operands)
        + "->"
        + "".join(symbols[leg] for leg in output)
    )
    shapes = [tuple(sizes[leg] for leg in legs) for legs in operands]
    path, _ = opt_einsum.contract_path(equation, *shapes, shapes=True, optimize=optimize)
    return [tuple(step) for step in path]


def _sweep(start: int, order: Sequence[int]) -> Path:
    """``start`` contracted with each operand of ``order`` in turn."""
    ssa: list[tuple[int, int]] = []
    current = start
    next_id = len(order) + 1
    for operand in order:
        ssa.append((current, operand))
        current = next_id
        next_id += 1
    return [tuple(step) for step in ssa_to_linear(ssa)]


def _tensor_graph(operands: Sequence[Legs], input_operand: int | None) -> nx.Graph:
    """The tensors (all operands but the input) as nodes, joined where they share a leg."""
    import networkx as nx

    tensors = [k for k in range(len(operands)) if k != input_operand]
    graph = nx.Graph()
    graph.add_nodes_from(tensors)
    owners: dict[str, list[int]] = {}
    for k in tensors:
        for leg in operands[k]:
            owners.setdefault(leg, []).append(k)
    for users in owners.values():
        graph.add_edges_from(itertools.combinations(users, 2))
    return graph


def _chain_order(
    operands: Sequence[Legs], input_operand: int | None
) -> tuple[list[int], bool] | None:
    """The tensors (all operands but the input) in chain order if they form a chain or a ring,
    and whether it is a ring."""
    return _chain_in(_tensor_graph(operands, input_operand))


def _chain_in(graph: nx.Graph) -> tuple[list[int], bool] | None:
    """``graph``'s nodes in chain order if it is a chain or a ring, and whether it is a ring."""
    import networkx as nx

    tensors = list(graph.nodes)
    if len(tensors) < 2:
        return None
    if not nx.is_connected(graph) or max(d for _, d in graph.degree()) > 2:
        return None
    edges = graph.number_of_edges()
    if edges == len(tensors) - 1:  # a path
        start = min(k for k, d in graph.degree() if d == 1)
        return list(nx.dfs_preorder_nodes(graph, start)), False
    if edges == len(tensors) and len(tensors) > 2:  # a cycle
        return list(nx.dfs_preorder_nodes(graph, min(tensors))), True
    return None


# A sub-network of the chain programme: (holds the input, first position, number of tensors).
Run = tuple[bool, int, int]


def _chain_path(
    operands: Sequence[Legs],
    output: Legs,
    sizes: Mapping[str, int],
    input_operand: int | None,
    chain: Sequence[int],
    ring: bool,
) -> Path:
    """Interval dynamic programme over runs of neighbouring tensors (wrapping round a ring),
    with or without the input."""
    n = len(chain)
    count: dict[str, int] = {}
    for operand_legs in operands:
        for leg in set(operand_legs):
            count[leg] = count.get(leg, 0) + 1
    out = set(output)
    legs_of: dict[Run, frozenset[str]] = {}
    best: dict[Run, tuple[int, tuple[Run, Run] | None]] = {}

    def canonical(run: Run) -> Run:
        return (run[0], 0, n) if run[2] == n else (run[0], run[1] % n, run[2])

    def legs(run: Run) -> frozenset[str]:
        """Legs a run's result keeps: those also held outside it, or in the output."""
        if run not in legs_of:
            with_input, first, width = run
            members = [chain[(first + i) % n] for i in range(width)]
            if with_input:
                assert input_operand is not None
                members.append(input_operand)
            inside: dict[str, int] = {}
            for k in members:
                for leg in set(operands[k]):
                    inside[leg] = inside.get(leg, 0) + 1
            legs_of[run] = frozenset(
                leg for leg, c in inside.items() if c < count[leg] or leg in out
            )
        return legs_of[run]

    def offer(run: Run, left: Run, right: Run) -> None:
        left, right = canonical(left), canonical(right)
        union = legs(left) | legs(right)
        step = math.prod(sizes[leg] for leg in union) * (1 + bool(union - legs(run)))
        total = best[left][0] + best[right][0] + step
        if run not in best or total < best[run][0]:
            best[run] = (total, (left, right))

    def runs(width: int) -> list[tuple[int, list[int]]]:
        """(first, the firsts that describe the same run) for runs of ``width`` tensors."""
        if width == n:
            return [(0, list(range(n)) if ring else [0])]
        last = n if ring else n - width + 1
        return [(first, [first]) for first in range(last)]

    sides = [False] if input_operand is None else [False, True]
    if input_operand is not None:
        best[(True, 0, 0)] = (0, None)
    for with_input in sides:
        for width in range(1, n + 1):
            for first, firsts in runs(width):
                run = (with_input, first, width)
                if width == 1 and not with_input:
                    best[run] = (0, None)
                    continue
                if with_input:
                    offer(run, (True, 0, 0), (False, first, width))
                for start in firsts:
                    for m in range(1, width):
                        rest = (start + m) % n
                        offer(run, (with_input, start, m), (False, rest, width - m))
                        if with_input:
                            offer(run, (True, rest, width - m), (False, start, m))

    ssa: list[tuple[int, int]] = []
    ids: dict[Run, int] = {(False, i, 1): chain[i] for i in range(n)}
    if input_operand is not None:
        ids[(True, 0, 0)] = input_operand
    next_id = len(operands)

    def emit(run: Run) -> int:
        nonlocal next_id
        if run not in ids:
            split = best[run][1]
            assert split is not None
            a, b = emit(split[0]), emit(split[1])
            ssa.append((a, b))
            ids[run] = next_id
            next_id += 1
        return ids[run]

    emit((input_operand is not None, 0, n))
    return [tuple(step) for step in ssa_to_linear(ssa)]
