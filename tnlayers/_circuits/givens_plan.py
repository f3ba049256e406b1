"""Plan: how a Givens circuit runs, and what it costs.

A two-level rotation touches two coordinates, so a circuit of m gates on a batch of B vectors is
only ``8·m·B`` FLOPs. What costs on a CPU is the *depth*: Chen et al.'s V layer is a chain of
2n − 3 dependent gates, and one torch call per gate (~5 µs each) would dominate. Three
strategies trade calls for FLOPs:

``layered``
    Gates grouped into layers of disjoint rotations; one vectorised call per layer on the batch.
    ``depth`` sequential steps, ``8·m·B`` FLOPs. Best for shallow circuits (Clements).
``blocked``
    Consecutive gates fused into *segments* of at most ``L`` gates: each segment's small dense
    matrix (on the coordinates it touches) is built from the identity for all segments at once,
    then the segments are applied one after another to the batch by small matmuls. About
    ``L + m/L`` sequential steps instead of ``m``; the V layer at n = 784 takes ~80.
``materialize``
    The segments applied to the identity build the n × n matrix, then one matmul: best when the
    batch is much larger than n.
``tiled``
    For circuits of neighbouring planes (Reck, Clements, V): the gates are tiled along their
    light cones into dense ``2r × 2r`` blocks (see [`TilePlan`][tnlayers.circuits.TilePlan]),
    all blocks built at once from identities, then one batched matmul per *stage* of disjoint
    tiles — about ``n / r`` calls on the batch instead of one per layer.

The cost model is the one the contraction planner uses
([`MachineModel`][tnlayers.contraction.MachineModel]): calls × overhead + FLOPs / throughput +
bytes / bandwidth. Nothing here knows torch."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import chain
from typing import Literal

import numpy as np

from .._core.cost import CostReport, StrategyCost
from .._core.errors import OptionError
from .._core.plan import MachineModel
from .declare import GivensCircuit

__all__ = ["GivensPlan", "Segment", "TilePlan", "givens_plan", "givens_report", "tile_plan"]

GivensStrategy = Literal["layered", "blocked", "materialize", "tiled"]
# Every strategy; "tiled" only where a plan has tiles (``GivensPlan.strategies``).
STRATEGIES: tuple[GivensStrategy, ...] = ("layered", "blocked", "materialize", "tiled")
# Backward of a rotation step: two gathers/scatters and two small products per forward call.
_BACKWARD_CALLS = 5 / 3
_CALL_SHARE = 0.3
_PASS_SHARE = 0.1
_SEGMENT_GATES = (4, 8, 16, 32, 64, 128)


@dataclass(frozen=True)
class Segment:
    """Consecutive gates ``start … stop−1`` fused into one dense block on ``support``.

    ``support`` lists the touched coordinates in ascending order; ``span`` is set when they are
    a contiguous range ``span[0] … span[1]−1`` (then the block is applied to a slice, no gather).
    ``kind`` is ``"ascending"`` or ``"descending"`` for a staircase of neighbouring planes
    ``(p, p+1), (p+1, p+2), …`` or ``(p, p+1), (p−1, p), …`` (its block has a closed form:
    products of the gate entries, one vectorised cumulative product for all such segments), and
    ``"general"`` otherwise (its block is built by applying its gates to the identity).
    """

    start: int
    stop: int
    support: tuple[int, ...]
    kind: str = "general"

    @property
    def span(self) -> tuple[int, int] | None:
        lo, hi = self.support[0], self.support[-1] + 1
        return (lo, hi) if hi - lo == len(self.support) else None


@dataclass(frozen=True, eq=False)
class TilePlan:
    r"""A light-cone tiling of a circuit of neighbouring planes into dense blocks.

    Gate ``(i, i+1)`` in layer ``t`` sits at ``u = i + t``, ``v = i − t``; each of its
    predecessors has ``u' ≤ u`` and ``v' ≥ v``. So squares of side ``2r`` in ``(u, v + 1)``
    are tiles whose gates touch exactly ``2r`` consecutive coordinates, and tiles with the same
    ``I − J`` (a *stage*) are disjoint and independent: applying the stages in order, each tile's
    gates in circuit order, applies the circuit. A stage is one batched matmul on the zero-padded
    state viewed as ``(K, 2r, columns)`` (shifted by ``r`` rows between stages of different
    parity); windows without gates get the identity.

    Attributes
    ----------
    radius
        ``r``: tiles are ``2r`` coordinates wide.
    rows
        Rows of the padded state (a multiple of ``2r``, at least ``n + 3r``: ``r`` in front, and
        a window may end ``3r − 2`` rows past the last coordinate).
    stages
        Per stage: the first padded row of its windows (``0`` or ``r``) and how many windows
        (``K``, always ``rows / 2r``: the windows tile the state shifted by that first row).
    slots
        Blocks in all stages together (stage ``s``'s block ``k`` is at ``sum(K before s) + k``).
    tiles
        Tiles that hold gates (their blocks are built; every other slot is the identity).
    place
        For each built tile, its slot.
    build_layers
        For building the tiles' blocks from stacked ``2r × 2r`` identities: per level, the row
        pairs interleaved and each pair's gate index (as ``GivensPlan.build_layers``).
    """

    radius: int
    rows: int
    stages: tuple[tuple[int, int], ...]
    slots: int
    tiles: int
    place: tuple[int, ...]
    build_layers: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]

    @property
    def width(self) -> int:
        """Side of the tiles' blocks, ``2r``."""
        return 2 * self.radius


@lru_cache(maxsize=64)
def tile_plan(circuit: GivensCircuit, radius: int) -> TilePlan | None:
    """The light-cone tiling of ``circuit`` with tiles ``2·radius`` wide, or ``None`` when some
    gate joins planes that are not neighbours (the tiling needs ``(i, i+1)`` gates)."""
    pairs, layer_time = _gate_arrays(circuit)
    if np.any(np.abs(pairs[:, 0] - pairs[:, 1]) != 1):
        return None
    # Vectorised over the gates (a circuit of n = 784 has 306,936): a loop over them took
    # 0.4–0.6 s per radius, three radii per plan.
    width = 2 * radius
    low = pairs.min(axis=1)
    across, along = (low + layer_time) // width, (low - layer_time + 1) // width  # I and J
    stage, level_sum = across - along, across + along
    # Tiles numbered in (stage, level sum) order; each gate's tile.
    span = int(level_sum.max() - level_sum.min()) + 1
    keys, tile_of = np.unique(
        (stage - stage.min()) * span + (level_sum - level_sum.min()), return_inverse=True
    )
    tile_stage = keys // span + stage.min()
    tile_start = radius * (keys % span + level_sum.min())  # first coordinate of the window
    # A window reaches at most 3r − 2 rows past the last coordinate (padded by r in front).
    rows = -(-(circuit.n + 3 * radius) // width) * width
    stage_ids = np.unique(tile_stage)
    # Windows of stage I − J start at coordinate r·(I + J); I + J has the parity of the stage,
    # so in padded rows (coordinate + r) they start at 0 or r modulo 2r. Every stage has
    # rows / 2r windows: the executor shifts the state by r rows between parities, so that each
    # stage's windows tile the whole buffer (the rows shifted out are padding).
    count = rows // width
    offset = radius * ((tile_stage + 1) % 2)
    base = np.searchsorted(stage_ids, tile_stage) * count
    place = base + (tile_start + radius - offset) // width
    # Each gate's level in its tile's own schedule (as early as the tile's earlier gates on its
    # planes allow): the circuit's layers are a topological order whose gates touch disjoint
    # planes, so one vectorised update per layer schedules every tile at once.
    local = pairs - tile_start[tile_of][:, None]
    ready = np.zeros((len(keys), width), dtype=np.int64)
    level = np.empty(len(pairs), dtype=np.int64)
    by_layer = np.argsort(layer_time, kind="stable")
    for gates in np.split(by_layer, np.flatnonzero(np.diff(layer_time[by_layer])) + 1):
        tiles, p, q = tile_of[gates], local[gates, 0], local[gates, 1]
        at = np.maximum(ready[tiles, p], ready[tiles, q])
        level[gates] = at
        ready[tiles, p] = ready[tiles, q] = at + 1
    # Per level: tiles in number order, each tile's gates in circuit order.
    order = np.lexsort((np.arange(len(pairs)), tile_of, level))
    rows_of = (tile_of * width)[:, None] + local  # the gate's two rows in the stacked blocks
    cuts = np.flatnonzero(np.diff(level[order])) + 1
    build = tuple(
        (tuple(rows_of[chunk].reshape(-1).tolist()), tuple(chunk.tolist()))
        for chunk in np.split(order, cuts)
    )
    offsets = radius * ((stage_ids + 1) % 2)
    stages = tuple((int(o), count) for o in offsets.tolist())
    slots = count * len(stage_ids)
    return TilePlan(radius, rows, stages, slots, len(keys), tuple(place.tolist()), build)


@lru_cache(maxsize=64)
def _gate_arrays(circuit: GivensCircuit) -> tuple[np.ndarray, np.ndarray]:
    """The gates' planes ``(gates, 2)`` and layers ``(gates,)`` as arrays (once per circuit:
    converting 300,000 tuples takes 50 ms, and each tile radius needs them)."""
    pairs = np.asarray(circuit.pairs, dtype=np.int64).reshape(-1, 2)
    return pairs, np.asarray(_layer_of(circuit), dtype=np.int64)


@lru_cache(maxsize=64)
def _layer_of(circuit: GivensCircuit) -> tuple[int, ...]:
    """Each gate's layer in the circuit (the same for every tile radius)."""
    layer_of = [0] * circuit.num_gates
    for t, layer in enumerate(circuit.layers):
        for g in layer:
            layer_of[g] = t
    return tuple(layer_of)


# Compared and hashed by identity: plans are cached per (circuit, segment length), and the
# executor caches device tensors per plan, which must not hash hundreds of thousands of pairs.
@dataclass(frozen=True, eq=False)
class GivensPlan:
    """The execution schedule of one circuit.

    Attributes
    ----------
    circuit
        The circuit.
    segment_gates
        Most gates per segment (``L``).
    segments
        The segments, in application order.
    width
        Side ``w`` of the segment blocks: ``L + 1`` for staircases, at least the largest
        support of a general segment.
    staircases
        Positions (in ``segments``) of the staircase segments.
    stair_gates, stair_swap, stair_descending
        For the staircases' closed form: per staircase ``L`` gate indices in build order (``-1``
        for identity padding), whether each gate's block is read with rows swapped, and whether
        the staircase descends (its block is then built reversed and flipped back).
    generals
        Positions of the general segments.
    build_layers
        For building the general segments' blocks from stacked identities (``G·w`` rows): per
        layer, the row pairs ``(g·w + p, g·w + q)`` interleaved, and the gate index of each pair.
    rotate_layers
        For the ``layered`` strategy: per layer of the circuit, the coordinate pairs interleaved
        and the gate indices.
    tiles
        The light-cone tiling of the ``tiled`` strategy; ``None`` where it does not apply (a
        gate joins planes that are not neighbours).
    build
        How *materialize* builds ``U``: the strategy that applies the circuit to the
        identity's ``n`` columns fastest (``"blocked"``: the segments; ``"tiled"`` wins for
        Reck and Clements circuits from n ≈ 100 on).
    """

    circuit: GivensCircuit
    segment_gates: int
    segments: tuple[Segment, ...]
    width: int
    staircases: tuple[int, ...]
    stair_gates: tuple[tuple[int, ...], ...]
    stair_swap: tuple[tuple[bool, ...], ...]
    stair_descending: tuple[bool, ...]
    generals: tuple[int, ...]
    build_layers: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]
    rotate_layers: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]
    tiles: TilePlan | None = None
    build: GivensStrategy = "blocked"

    @property
    def strategies(self) -> tuple[GivensStrategy, ...]:
        """The strategies this plan can run (``tiled`` only with tiles)."""
        return STRATEGIES if self.tiles is not None else STRATEGIES[:3]

    def calls(self, strategy: GivensStrategy) -> int:
        """Sequential torch calls of one forward pass."""
        if strategy == "layered":
            return 3 * len(self.rotate_layers)
        if strategy == "tiled":
            tiles = self.tiling()
            return 3 * len(tiles.build_layers) + 2 * len(tiles.stages) + 6
        if strategy == "materialize":  # U from the identity, then one GEMM
            return self.calls(self.build) + 1
        # The staircases' closed form is about twenty vectorised calls, whatever their number.
        build = 3 * len(self.build_layers) + (20 if self.staircases else 0) + 1
        return build + sum(2 if s.span else 3 for s in self.segments)

    def tiling(self) -> TilePlan:
        """The light-cone tiling; an ``OptionError`` where it does not apply."""
        if self.tiles is None:
            raise OptionError(
                f"the tiled strategy needs gates on neighbouring planes (i, i+1); this "
                f"{self.circuit.layout} circuit has others: use 'layered', 'blocked' or "
                "'materialize'"
            )
        return self.tiles

    def flops(self, strategy: GivensStrategy, batch: int) -> int:
        """FLOPs of one forward pass on ``batch`` vectors."""
        gates, n = self.circuit.num_gates, self.circuit.n
        if strategy == "layered":
            return 8 * gates * batch
        if strategy == "tiled":
            tiles = self.tiling()
            w = tiles.width
            return 8 * gates * w + sum(2 * count * w * w * batch for _, count in tiles.stages)
        if strategy == "materialize":
            return self.flops(self.build, n) + 2 * batch * n * n
        build = 8 * gates * self.width
        return build + sum(2 * len(s.support) ** 2 * batch for s in self.segments)

    def moved(self, strategy: GivensStrategy, batch: int) -> int:
        """Elements read and written by one forward pass."""
        n = self.circuit.n
        if strategy == "layered":
            return 4 * self.circuit.num_gates * batch  # two rows read and written per gate
        if strategy == "tiled":
            # Building: two rows of 2r read and written per gate, the identities and the slots'
            # copy; applying: each stage reads its windows and writes the whole padded state.
            tiles = self.tiling()
            w = tiles.width
            build = 4 * self.circuit.num_gates * w + 2 * tiles.tiles * w * w + tiles.slots * w * w
            return build + sum((2 * count * w + tiles.rows) * batch for _, count in tiles.stages)
        if strategy == "materialize":  # U from the identity; the GEMM reads x and U
            return self.moved(self.build, n) + batch * n + n * n
        # The staircases' closed form makes about sixteen elementwise passes over its blocks.
        stairs = 16 * len(self.staircases) * (self.segment_gates + 1) ** 2
        general = 4 * 2 * sum(self.segments[i].stop - self.segments[i].start for i in self.generals)
        apply = sum(3 * len(s.support) * batch for s in self.segments)
        return stairs + general * self.width + apply

    def time(
        self,
        strategy: GivensStrategy,
        batch: int,
        training: bool,
        model: MachineModel,
        itemsize: int,
        *,
        cached: bool = False,
    ) -> float:
        """Predicted seconds of a forward pass (and backward, if ``training``).

        Calls cost ``_CALL_SHARE`` of the planner's per-step overhead (they are single small
        kernels, not permute–reshape–matmul steps); the small block products run at the
        planner's GEMM efficiency for their size; elementwise passes at ``_PASS_SHARE`` of its
        bandwidth. Both shares were fitted to `benchmarks/bench_givens.py` on the project CPU.

        *materialize* is its build (``build`` applied to the identity's ``n`` columns) plus
        one full-size GEMM. ``cached``: a forward pass of *materialize* reuses ``U`` built by an
        earlier call (a layer's inference cache), so it is the GEMM alone.
        """
        if strategy == "materialize":
            n = self.circuit.n
            gemm = 2 * batch * n * n
            if cached and not training:
                return model.op_overhead * _CALL_SHARE + gemm / model.peak_flops
            scale = 3 if training else 1
            gemm_calls = 1 + _BACKWARD_CALLS if training else 1
            gemm_moved = (batch * n + n * n) * itemsize * scale
            return (
                self.time(self.build, n, training, model, itemsize)
                + gemm_calls * model.op_overhead * _CALL_SHARE
                + gemm_moved / (model.bandwidth * _PASS_SHARE)
                + gemm * scale / model.peak_flops
            )
        calls: float = self.calls(strategy)
        flops = self.flops(strategy, batch)
        moved = self.moved(strategy, batch) * itemsize
        if training:
            calls, flops, moved = calls * (1 + _BACKWARD_CALLS), flops * 3, moved * 3
        if strategy == "layered":  # 2 × 2 products: bound by moving the rows, not by FLOPs
            return calls * model.op_overhead * _CALL_SHARE + moved / (model.bandwidth * _PASS_SHARE)
        side = self.tiling().width if strategy == "tiled" else self.width
        eff = (side / (side + model.half_dim)) ** 2
        return (
            calls * model.op_overhead * _CALL_SHARE
            + flops / (model.peak_flops * eff)
            + moved / (model.bandwidth * _PASS_SHARE)
        )

    def choose(
        self, batch: int, training: bool, model: MachineModel, itemsize: int = 4
    ) -> GivensStrategy:
        """The strategy with the least predicted time."""
        return min(self.strategies, key=lambda s: self.time(s, batch, training, model, itemsize))


def _saved_and_largest(plan: GivensPlan, strategy: GivensStrategy, batch: int) -> tuple[int, int]:
    """Elements the executor saves for backward, and its largest tensor, for ``batch`` rows.

    Read off ``_givens_exec``: the layered pass keeps the two rows each gate read; the segment
    passes keep their blocks and one zero-padded copy of each segment's input rows.
    """
    n, gates = plan.circuit.n, plan.circuit.num_gates
    if strategy == "layered":
        return 2 * gates * batch + 4 * gates, n * batch
    if strategy == "tiled":
        # The build keeps the rows each gate read; each stage keeps its input (the padded
        # state) for the batched matmul's backward, and the slots' blocks.
        tiles = plan.tiling()
        w = tiles.width
        stages = len(tiles.stages)
        saved = 2 * gates * w + tiles.slots * w * w + stages * tiles.rows * batch
        return saved, max(tiles.rows * batch, tiles.slots * w * w)
    if strategy == "materialize":  # the build on n columns, and U for the GEMM's backward
        saved, largest = _saved_and_largest(plan, plan.build, n)
        return saved + n * n, max(largest, batch * n)
    count, w = len(plan.segments), plan.width
    return count * w * w + count * w * batch, max(n * batch, count * w * batch)


def givens_report(
    plan: GivensPlan,
    batch: int,
    mode: Literal["training", "inference"],
    strategy: str,
    reason: str,
    basis: Literal["model", "forced", "timed", "untimed"],
    model: MachineModel,
    itemsize: int,
    measured_s: dict[str, float] | None = None,
    *,
    cached: bool = False,
) -> CostReport:
    """The cost report of a Givens circuit run by ``plan``: its strategies and the choice.

    ``flops`` and ``calls`` count the real work of the structure (two coordinates per rotation),
    not the dense ``n × n`` products of the gate-node network. ``cached``: the layer keeps ``U``
    between inference calls, so *materialize*'s forward pass is its GEMM.
    """
    c = plan.circuit
    strategies: dict[str, StrategyCost] = {}
    for name in plan.strategies:
        saved, largest = _saved_and_largest(plan, name, batch)
        flops = plan.flops(name, batch)
        strategies[name] = StrategyCost(
            name=name,
            flops=flops,
            training_flops=3 * flops,
            calls=plan.calls(name),
            largest_intermediate=largest,
            saved_for_backward=saved,
            predicted_time_s=plan.time(name, batch, False, model, itemsize, cached=cached),
            predicted_training_time_s=plan.time(name, batch, True, model, itemsize),
            forms_dense_weight=name == "materialize",
            cached_flops=2 * batch * c.n**2 if cached and name == "materialize" else None,
        )
    naive = 2 * c.num_gates * c.n**2 * batch
    return CostReport(
        subject=f"Givens circuit ({c.layout}), n = {c.n}",
        batch=batch,
        itemsize=itemsize,
        mode=mode,
        in_features=c.n,
        out_features=c.n,
        params=c.num_gates,
        dense_params=c.n * c.n,
        strategies=strategies,
        strategy=strategy,
        reason=reason,
        basis=basis,
        measured_s=measured_s,
        details=(
            f"circuit      {c.num_gates} rotations, depth {c.depth}; {len(plan.segments)} "
            f"segments of ≤ {plan.segment_gates} gates (width {plan.width})",
            f"materialize  builds U by the {plan.build} strategy on the identity's {c.n} columns",
        ),
        notes=(f"gate-by-gate dense products would take {naive:,} FLOPs per forward pass",),
        facts={
            "layout": c.layout,
            "n": c.n,
            "gates": c.num_gates,
            "depth": c.depth,
            "segments": len(plan.segments),
            "segment_gates": plan.segment_gates,
            "gate_by_gate_flops": naive,
        },
        plan=plan,
    )


def _segments(circuit: GivensCircuit, max_gates: int) -> tuple[Segment, ...]:
    """Greedy segmentation: at most ``max_gates`` gates each (so at most ``2·max_gates``
    coordinates); a staircase ends where the next gate does not continue it (so that its closed
    form applies), a general segment only at the length limit.

    The boundaries are found segment by segment, everything else vectorised over the gates: a
    loop over the gates took ~0.2 s per segment length at n = 784 (306,936 gates), and a plan
    weighs six lengths.
    """
    pairs, _ = _gate_arrays(circuit)
    m = len(pairs)
    steps, run_end, neighbours = _step_runs(circuit)
    starts: list[int] = []
    directions: list[int] = []
    start = 0
    while start < m:
        starts.append(start)
        direction = steps[start + 1] if start + 1 < m else 0
        directions.append(direction)
        start = min(start + max_gates, run_end[start + 1] if direction else m)
    bounds = np.array([*starts, m])
    lengths = np.diff(bounds)
    # The support of each segment: its gates' coordinates, sorted and deduplicated.
    segment_of = np.repeat(np.arange(len(starts)), 2 * lengths)
    # Sorted, then deduplicated by hand: np.unique's hash path took 0.3 s on 600,000 keys.
    keys = np.sort(segment_of * circuit.n + pairs.reshape(-1))
    keys = keys[np.append(True, keys[1:] != keys[:-1])]
    cuts = np.searchsorted(keys // circuit.n, np.arange(len(starts) + 1)).tolist()
    coords = (keys % circuit.n).tolist()
    kinds = {1: "ascending", -1: "descending", 0: "general"}
    return tuple(
        Segment(
            first,
            first + length,
            tuple(coords[cuts[i] : cuts[i + 1]]),
            kinds[directions[i]]
            if length > 1
            else ("ascending" if neighbours[first] else "general"),
        )
        for i, (first, length) in enumerate(zip(starts, lengths.tolist(), strict=True))
    )


@lru_cache(maxsize=64)
def _step_runs(circuit: GivensCircuit) -> tuple[list[int], list[int], list[bool]]:
    """Per gate, as lists (the same for every segment length, so computed once per circuit):
    its staircase step (`_staircase_steps`, ``0`` for none), the first later gate whose step
    differs, and whether it joins neighbouring planes."""
    pairs, _ = _gate_arrays(circuit)
    steps = np.array([step or 0 for step in _staircase_steps(circuit)], dtype=np.int64)
    changes = np.flatnonzero(np.diff(steps)) + 1
    run_end = np.append(changes, len(steps))[
        np.searchsorted(changes, np.arange(len(steps)), side="right")
    ]
    neighbours = pairs.max(axis=1) == pairs.min(axis=1) + 1
    return steps.tolist(), run_end.tolist(), neighbours.tolist()


@lru_cache(maxsize=64)
def _staircase_steps(circuit: GivensCircuit) -> tuple[int | None, ...]:
    """Per gate, +1 / −1 where it continues a staircase of neighbouring planes from its
    predecessor (both join neighbours, the lower plane one up or down), else ``None`` (and for
    the first gate). The same for every segment length, so computed once per circuit."""
    pairs, _ = _gate_arrays(circuit)
    low, high = pairs.min(axis=1), pairs.max(axis=1)
    neighbours = high == low + 1
    step = low[1:] - low[:-1]
    continues = neighbours[1:] & neighbours[:-1] & (np.abs(step) == 1)
    return (
        None,
        *(int(d) if ok else None for ok, d in zip(continues.tolist(), step.tolist(), strict=True)),
    )


def _interleave(
    pairs: list[tuple[int, int]], gates: list[int]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    return tuple(r for pair in pairs for r in pair), tuple(gates)


@lru_cache(maxsize=256)
def _sketch(circuit: GivensCircuit, max_gates: int) -> GivensPlan:
    """The plan's segments without the blocks' build schedule: its predicted *blocked* time is
    a lower bound of the full plan's (it misses only the build layers' calls), at a third of
    the planning work, so the segment length can be chosen without planning every candidate."""
    segments = _segments(circuit, max_gates)
    staircases = tuple(i for i, seg in enumerate(segments) if seg.kind != "general")
    generals = tuple(i for i, seg in enumerate(segments) if seg.kind == "general")
    width = max([max_gates + 1 if staircases else 0] + [len(segments[i].support) for i in generals])
    return GivensPlan(circuit, max_gates, segments, width, staircases, (), (), (), generals, (), ())


@lru_cache(maxsize=256)
def _plan_with(circuit: GivensCircuit, max_gates: int) -> GivensPlan:
    sketch = _sketch(circuit, max_gates)
    segments, staircases, generals = sketch.segments, sketch.staircases, sketch.generals
    width = sketch.width
    stair_gates, stair_swap = [], []
    for i in staircases:
        seg = segments[i]
        gates = list(range(seg.start, seg.stop))
        descending = seg.kind == "descending"
        # Slot t of the closed form is the plane (t, t+1); a descending staircase is built in
        # reversed coordinates, where its gates ascend and sit at the end of the slots.
        pad = [-1] * (max_gates - len(gates))
        stair_gates.append(tuple(pad + gates if descending else gates + pad))
        flips = [(circuit.pairs[g][0] > circuit.pairs[g][1]) != descending for g in gates]
        stair_swap.append(
            tuple([False] * len(pad) + flips if descending else flips + [False] * len(pad))
        )
    return replace(
        sketch,
        stair_gates=tuple(stair_gates),
        stair_swap=tuple(stair_swap),
        stair_descending=tuple(segments[i].kind == "descending" for i in staircases),
        build_layers=_general_build_layers(circuit, [segments[i] for i in generals], width),
        rotate_layers=_rotate_layers(circuit),
    )


def _general_build_layers(
    circuit: GivensCircuit, generals: list[Segment], width: int
) -> tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]:
    """The general segments' gates in levels of disjoint rotations, all segments side by side:
    per level, the row pairs ``(g·w + p, g·w + q)`` (segment ``g``'s block starts at row
    ``g·w``; ``p, q`` are the gate's coordinates' places in the segment's support) interleaved,
    and the gate indices, segment by segment in circuit order.

    Each gate's level is the earliest its segment's earlier gates allow (as `asap_layers` on the
    segment alone), found for all segments at once by one vectorised update per layer of the
    circuit (gates of one layer touch disjoint coordinates, and a later gate on a coordinate is
    in a later layer): a loop per segment took ~0.4 s for the 9,600 segments of Clements
    n = 784 at length 32.
    """
    if not generals:
        return ()
    pairs, layer_time = _gate_arrays(circuit)
    n = circuit.n
    starts = np.array([seg.start for seg in generals])
    lengths = np.array([seg.stop - seg.start for seg in generals])
    segment_of = np.repeat(np.arange(len(generals)), lengths)
    gates = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    gates += np.repeat(starts, lengths)
    # Places in the supports: each support sorted, the segments in order, so one search.
    sizes = np.array([len(seg.support) for seg in generals])
    coords = chain.from_iterable(seg.support for seg in generals)
    support_keys = np.repeat(np.arange(len(generals)) * n, sizes) + np.fromiter(
        coords, dtype=np.int64, count=int(sizes.sum())
    )
    first = np.cumsum(sizes) - sizes
    local = (
        np.searchsorted(support_keys, segment_of[:, None] * n + pairs[gates])
        - first[segment_of][:, None]
    )
    ready = np.zeros((len(generals), width), dtype=np.int64)
    level = np.empty(len(gates), dtype=np.int64)
    by_layer = np.argsort(layer_time[gates], kind="stable")
    cuts = np.flatnonzero(np.diff(layer_time[gates][by_layer])) + 1
    for chunk in np.split(by_layer, cuts):
        seg, p, q = segment_of[chunk], local[chunk, 0], local[chunk, 1]
        at = np.maximum(ready[seg, p], ready[seg, q])
        level[chunk] = at
        ready[seg, p] = ready[seg, q] = at + 1
    order = np.lexsort((gates, level))
    rows = segment_of[:, None] * width + local
    return tuple(
        (tuple(rows[chunk].reshape(-1).tolist()), tuple(gates[chunk].tolist()))
        for chunk in np.split(order, np.flatnonzero(np.diff(level[order])) + 1)
    )


@lru_cache(maxsize=64)
def _rotate_layers(
    circuit: GivensCircuit,
) -> tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]:
    """The layered strategy's layers: the same for every segment length, so built once."""
    return tuple(
        _interleave([circuit.pairs[t] for t in layer], list(layer)) for layer in circuit.layers
    )


def givens_plan(
    circuit: GivensCircuit,
    batch: int = 256,
    *,
    training: bool = True,
    segment_gates: int | None = None,
    model: MachineModel | None = None,
) -> GivensPlan:
    """The schedule of ``circuit``, with the segment length chosen by the cost model.

    Parameters
    ----------
    circuit
        The circuit.
    batch, training
        The workload the segment length is tuned for.
    segment_gates
        Fix the most gates per segment instead of choosing it.
    model
        The machine model; the CPU default if not given.
    """
    if segment_gates is not None and (
        not isinstance(segment_gates, int) or isinstance(segment_gates, bool) or segment_gates < 1
    ):
        raise OptionError(f"segment_gates must be a positive integer, got {segment_gates!r}")
    model = model or MachineModel()
    if segment_gates is not None:
        base = _plan_with(circuit, segment_gates)
    else:
        lengths = [
            g for g in _SEGMENT_GATES if g == _SEGMENT_GATES[0] or g <= 2 * circuit.num_gates
        ]
        base = _fastest_segments(circuit, tuple(lengths), batch, training, model)
    radii = [r for r in _TILE_RADII if r == _TILE_RADII[0] or 2 * r <= circuit.n]
    tiled = [_with_tiles(base, r) for r in radii]
    chosen = base
    if tiled[0].tiles is not None:  # a circuit of neighbouring planes
        chosen = min(tiled, key=lambda p: p.time("tiled", batch, training, model, 4))
    builds = [s for s in chosen.strategies if s != "materialize"]
    n = circuit.n
    return _with_build(chosen, min(builds, key=lambda s: chosen.time(s, n, training, model, 4)))


def _fastest_segments(
    circuit: GivensCircuit,
    lengths: tuple[int, ...],
    batch: int,
    training: bool,
    model: MachineModel,
) -> GivensPlan:
    """The full plan of the segment length with the least predicted *blocked* time (the first
    such length on ties), planning only as far as needed to be sure of it.

    Each length's time has two lower bounds: the calls of its fewest possible segments (free:
    ``⌈m / L⌉`` segments of at least two calls each) and its sketch (the segments without their
    build schedule). Best first: the length with the least bound so far is refined (floor →
    sketch → full plan) until a full plan is the least, which no other length can beat. A
    circuit of n = 784 has 306,936 gates; segmenting it at length 4 alone takes ~0.3 s.
    """

    def blocked(plan: GivensPlan) -> float:
        return plan.time("blocked", batch, training, model, 4)

    # (bound, rank, refinement done: 0 floor, 1 sketch, 2 full plan)
    queue = [(_calls_floor(circuit, g, training, model), rank, 0) for rank, g in enumerate(lengths)]
    heapq.heapify(queue)
    while True:
        _, rank, done = heapq.heappop(queue)
        g = lengths[rank]
        if done == 2:
            return _plan_with(circuit, g)
        plan = _sketch(circuit, g) if done == 0 else _plan_with(circuit, g)
        heapq.heappush(queue, (blocked(plan), rank, done + 1))


def _calls_floor(
    circuit: GivensCircuit, max_gates: int, training: bool, model: MachineModel
) -> float:
    """A lower bound of the predicted *blocked* time at segment length ``max_gates``, without
    segmenting: the calls of ``⌈m / L⌉`` segments (two each) and the blocks' build (one)."""
    calls = 2 * -(-circuit.num_gates // max_gates) + 1
    scale = 1 + _BACKWARD_CALLS if training else 1
    return calls * scale * model.op_overhead * _CALL_SHARE


_TILE_RADII = (4, 8, 16)


@lru_cache(maxsize=256)
def _with_build(plan: GivensPlan, build: GivensStrategy) -> GivensPlan:
    """``plan`` with *materialize* building ``U`` by ``build`` (the same object per build)."""
    return plan if plan.build == build else replace(plan, build=build)


@lru_cache(maxsize=256)
def _with_tiles(plan: GivensPlan, radius: int) -> GivensPlan:
    """``plan`` with the light-cone tiling of radius ``radius`` (the same object per radius)."""
    tiles = tile_plan(plan.circuit, radius)
    return plan if tiles is None else replace(plan, tiles=tiles)
