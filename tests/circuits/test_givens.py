"""Rotation-gate circuits (Chen et al. 2024): Givens layouts, structured execution, the layer."""

from __future__ import annotations

import dataclasses
import pickle

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tnlayers
from tnlayers import GivensCircuit, GivensLinear, QubitCircuit
from tnlayers._circuits import givens_layer
from tnlayers._circuits.declare import asap_layers
from tnlayers._circuits.givens_exec import (
    circuit_matrix,
    givens_forward,
    rotation_blocks,
    staircase_blocks,
)
from tnlayers._circuits.givens_layer import _decide
from tnlayers._circuits.givens_plan import (
    STRATEGIES,
    Segment,
    _segments,
    _staircase_steps,
    givens_plan,
    tile_plan,
)

F64 = torch.float64


def _gate(n: int, p: int, q: int, block: torch.Tensor) -> torch.Tensor:
    """One two-level gate as a dense n × n matrix: identity except rows/columns p, q."""
    gate = torch.eye(n, dtype=block.dtype)
    gate[p, p], gate[p, q], gate[q, p], gate[q, q] = (
        block[0, 0],
        block[0, 1],
        block[1, 0],
        block[1, 1],
    )
    return gate


def _ordered_product(circuit: GivensCircuit, blocks: torch.Tensor) -> torch.Tensor:
    """``G_{m−1} ⋯ G_1 G_0``: gate 0 is applied first."""
    matrix = torch.eye(circuit.n, dtype=blocks.dtype)
    for (p, q), block in zip(circuit.pairs, blocks, strict=True):
        matrix = _gate(circuit.n, p, q, block) @ matrix
    return matrix


def _t_gate(n: int, i: int, theta: torch.Tensor) -> torch.Tensor:
    """The paper's 1-indexed ``T_i(θ)`` (Chen et al. 2024, eq. 3), written out entry by entry."""
    t = torch.eye(n, dtype=theta.dtype)
    t[i - 1, i - 1] = torch.cos(theta)
    t[i - 1, i] = -torch.sin(theta)
    t[i, i - 1] = torch.sin(theta)
    t[i, i] = torch.cos(theta)
    return t


LAYOUTS = {"v": GivensCircuit.v, "reck": GivensCircuit.reck, "clements": GivensCircuit.clements}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("n", [2, 3, 4, 7, 10])
def test_layouts_are_orthogonal_and_equal_the_gate_product(layout: str, n: int) -> None:
    layer = GivensLinear(n, layout=layout, dtype=F64)  # type: ignore[arg-type]
    u = layer.to_dense().detach()
    assert torch.allclose(u.T @ u, torch.eye(n, dtype=F64), atol=1e-10)
    assert torch.linalg.det(u).item() == pytest.approx(1.0, abs=1e-10)
    expected = _ordered_product(layer.circuit, layer.gate_blocks().detach())
    assert torch.allclose(u, expected, atol=1e-12)


@pytest.mark.parametrize("n", [2, 3, 4, 16, 784])
def test_v_layout_has_2n_minus_3_angles(n: int) -> None:
    layer = GivensLinear(n)
    assert layer.num_params == sum(p.numel() for p in layer.parameters()) == 2 * n - 3


def test_reck_and_clements_have_n_choose_2_angles_and_their_depths() -> None:
    assert GivensCircuit.reck(9).num_gates == GivensCircuit.clements(9).num_gates == 36
    assert GivensCircuit.reck(9).depth == 2 * 9 - 3
    assert GivensCircuit.clements(9).depth == 9
    assert GivensCircuit.v(9).depth == 2 * 9 - 3


def test_v_layout_is_the_seeds_equation_5() -> None:
    """U = T_1(θ_0) ⋯ T_{n−1}(θ_{n−2}) · T_{n−2}(θ_{n−1}) ⋯ T_1(θ_{2n−4}) (paper, eqs. 4–5)."""
    n = 6
    layer = GivensLinear(n, dtype=F64)
    theta = layer.angles.detach().flip(0)  # gate t carries the paper's θ_{2n−4−t}
    gate_of = [r + 1 if r <= n - 2 else 2 * n - 3 - r for r in range(2 * n - 3)]  # eq. 4
    expected = torch.eye(n, dtype=F64)
    for r, i in enumerate(gate_of):
        expected = expected @ _t_gate(n, i, theta[r])
    assert torch.allclose(layer.to_dense().detach(), expected, atol=1e-12)
    assert GivensCircuit.v(4).pairs == ((0, 1), (1, 2), (2, 3), (1, 2), (0, 1))


# Circuits of neighbouring planes in any order (what the tiled strategy runs).
neighbour_sequences = st.integers(2, 12).flatmap(
    lambda n: st.tuples(
        st.just(n),
        st.lists(
            st.integers(0, n - 2).flatmap(lambda i: st.sampled_from([(i, i + 1), (i + 1, i)])),
            min_size=1,
            max_size=60,
        ),
    )
)

pair_sequences = st.integers(2, 7).flatmap(
    lambda n: st.tuples(
        st.just(n),
        st.lists(
            st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)).filter(lambda p: p[0] != p[1]),
            min_size=1,
            max_size=25,
        ),
    )
)


@settings(max_examples=40, deadline=None)
@given(
    spec=pair_sequences,
    strategy=st.sampled_from(STRATEGIES),
    segment_gates=st.sampled_from([1, 2, 3, 5, None]),
    batch=st.integers(1, 5),
)
def test_random_circuits_match_x_times_u_transpose(
    spec: tuple[int, list[tuple[int, int]]], strategy: str, segment_gates: int | None, batch: int
) -> None:
    n, pairs = spec
    circuit = GivensCircuit.from_pairs(n, pairs)
    layer = GivensLinear(circuit, strategy=strategy, segment_gates=segment_gates, dtype=F64)
    x = torch.randn(batch, n, dtype=F64)
    u = _ordered_product(circuit, layer.gate_blocks().detach())
    if strategy == "tiled" and any(abs(p - q) != 1 for p, q in pairs):
        with pytest.raises(tnlayers.OptionError, match="neighbouring planes"):
            layer(x)
        return
    assert torch.allclose(layer(x), x @ u.T, atol=1e-12)
    assert torch.allclose(layer.to_dense(), u, atol=1e-12)
    assert torch.allclose(u.T @ u, torch.eye(n, dtype=F64), atol=1e-10)


@settings(max_examples=60, deadline=None)
@given(spec=neighbour_sequences, radius=st.sampled_from([1, 2, 3, 4, 8]), batch=st.integers(1, 4))
def test_light_cone_tiles_apply_any_circuit_of_neighbouring_planes(spec, radius, batch) -> None:
    n, pairs = spec
    circuit = GivensCircuit.from_pairs(n, pairs)
    tiles = tile_plan(circuit, radius)
    # Every gate in exactly one tile; every tile in a window of its stage, inside the padding.
    assert sum(len(ids) for _, ids in tiles.build_layers) == len(pairs)
    assert sorted(g for _, ids in tiles.build_layers for g in ids) == list(range(len(pairs)))
    assert len(set(tiles.place)) == tiles.tiles and max(tiles.place) < tiles.slots
    assert all(c * tiles.width == tiles.rows and o in (0, radius) for o, c in tiles.stages)
    plan = dataclasses.replace(givens_plan(circuit, batch), tiles=tiles)
    blocks = torch.randn(len(pairs), 2, 2, dtype=F64, requires_grad=True)  # any 2 × 2 blocks
    x = torch.randn(batch, n, dtype=F64, requires_grad=True)
    u = _ordered_product(circuit, blocks.detach())
    y = givens_forward(x, blocks, plan, "tiled")
    assert torch.allclose(y, x @ u.T, atol=1e-10)
    reference = givens_forward(x, blocks, plan, "layered")
    cotangent = torch.randn_like(y)
    want = torch.autograd.grad(reference, (x, blocks), cotangent)
    # materialize with U built by these tiles: the same values and gradients.
    built = givens_forward(x, blocks, dataclasses.replace(plan, build="tiled"), "materialize")
    assert torch.allclose(built, x @ u.T, atol=1e-10)
    for output in (y, built):
        got = torch.autograd.grad(output, (x, blocks), cotangent)
        for a, b in zip(got, want, strict=True):
            assert torch.allclose(a, b, atol=1e-10)


def _tiles_gate_by_gate(circuit: GivensCircuit, radius: int) -> tuple:
    """The light-cone tiling written gate by gate, as the definition reads: the reference
    ``tile_plan``'s vectorised form must reproduce exactly (same tiles, order and levels)."""
    width = 2 * radius
    time_of = {g: t for t, layer in enumerate(circuit.layers) for g in layer}
    tiles: dict[tuple[int, int], list[int]] = {}
    for g, (p, q) in enumerate(circuit.pairs):
        i, t = min(p, q), time_of[g]
        across, along = (i + t) // width, (i - t + 1) // width
        tiles.setdefault((across - along, across + along), []).append(g)
    rows = -(-(circuit.n + 3 * radius) // width) * width
    stage_ids = sorted({stage for stage, _ in tiles})
    count = rows // width
    offset = {stage: radius * ((stage + 1) % 2) for stage in stage_ids}
    base = {stage: k * count for k, stage in enumerate(stage_ids)}
    place, by_level = [], {}
    for number, ((stage, level_sum), gates) in enumerate(sorted(tiles.items())):
        start = radius * level_sum
        place.append(base[stage] + (start + radius - offset[stage]) // width)
        ready = [0] * width
        for g in gates:  # each gate as early as the tile's earlier gates on its planes allow
            p, q = (c - start for c in circuit.pairs[g])
            level = max(ready[p], ready[q])
            ready[p] = ready[q] = level + 1
            rows_, ids = by_level.setdefault(level, ([], []))
            rows_ += [number * width + p, number * width + q]
            ids.append(g)
    build = tuple((tuple(by_level[k][0]), tuple(by_level[k][1])) for k in sorted(by_level))
    stages = tuple((offset[stage], count) for stage in stage_ids)
    return rows, stages, count * len(stage_ids), len(tiles), tuple(place), build


@settings(max_examples=60, deadline=None)
@given(spec=neighbour_sequences, radius=st.sampled_from([1, 2, 3, 4, 8, 16]))
def test_the_vectorised_tiling_is_the_gate_by_gate_one(spec, radius) -> None:
    n, pairs = spec
    circuit = GivensCircuit.from_pairs(n, pairs)
    tiles = tile_plan(circuit, radius)
    got = (tiles.rows, tiles.stages, tiles.slots, tiles.tiles, tiles.place, tiles.build_layers)
    assert got == _tiles_gate_by_gate(circuit, radius)


@pytest.mark.parametrize("layout", ["clements", "reck"])
@pytest.mark.parametrize(("n", "radius"), [(64, 4), (100, 8), (256, 16)])
def test_the_vectorised_tiling_of_reck_and_clements(layout, n, radius) -> None:
    circuit = getattr(GivensCircuit, layout)(n)
    tiles = tile_plan(circuit, radius)
    got = (tiles.rows, tiles.stages, tiles.slots, tiles.tiles, tiles.place, tiles.build_layers)
    assert got == _tiles_gate_by_gate(circuit, radius)


@settings(max_examples=60, deadline=None)
@given(spec=st.one_of(pair_sequences, neighbour_sequences))
def test_staircase_steps_continue_only_staircases_of_neighbouring_planes(spec) -> None:
    n, pairs = spec
    circuit = GivensCircuit.from_pairs(n, pairs)
    expected: list[int | None] = [None]
    for previous, pair in zip(circuit.pairs[:-1], circuit.pairs[1:], strict=True):
        lo, hi = sorted(pair)
        before, after = sorted(previous)
        continues = hi == lo + 1 and after == before + 1 and abs(lo - before) == 1
        expected.append(lo - before if continues else None)
    assert _staircase_steps(circuit) == tuple(expected)


def _segments_gate_by_gate(circuit: GivensCircuit, max_gates: int) -> tuple[Segment, ...]:
    """The greedy segmentation's definition, one gate at a time: a segment takes gates while it
    has fewer than ``max_gates`` and touches at most ``2 · max_gates`` coordinates; a staircase
    (its second gate continues its first, up or down) ends where a gate does not continue it;
    a one-gate segment is a staircase when its planes are neighbours."""
    steps = _staircase_steps(circuit)
    segments: list[Segment] = []
    start, support, direction = 0, set(circuit.pairs[0]), None

    def close(stop: int) -> None:
        lo, hi = sorted(circuit.pairs[start])
        if stop - start == 1:
            kind = "ascending" if hi == lo + 1 else "general"
        else:
            kind = {1: "ascending", -1: "descending"}.get(direction, "general")
        segments.append(Segment(start, stop, tuple(sorted(support)), kind))

    for t in range(1, circuit.num_gates):
        if t - start == 1:
            direction = steps[t] if steps[t] is not None else 0
        p, q = circuit.pairs[t]
        grown = support | {p, q}
        breaks = direction in (1, -1) and steps[t] != direction
        if t - start >= max_gates or len(grown) > 2 * max_gates or breaks:
            close(t)
            start, support, direction = t, {p, q}, None
        else:
            support = grown
    close(circuit.num_gates)
    return tuple(segments)


plane_walks = st.integers(2, 10).flatmap(
    lambda n: st.tuples(
        st.just(n),
        st.integers(0, n - 2),
        st.lists(st.tuples(st.sampled_from([-1, 0, 1]), st.booleans()), min_size=0, max_size=60),
    )
)


@settings(max_examples=80, deadline=None)
@given(
    spec=st.one_of(pair_sequences, neighbour_sequences, plane_walks),
    max_gates=st.sampled_from([1, 2, 3, 4, 7, 128]),
)
def test_the_vectorised_segmentation_is_the_gate_by_gate_one(spec, max_gates) -> None:
    # Plane walks: long staircases up and down (a step of 0 repeats a plane and breaks one).
    if len(spec) == 3:
        n, plane, moves = spec
        pairs = [(plane, plane + 1)]
        for move, flip in moves:
            plane = min(max(plane + move, 0), n - 2)
            pairs.append((plane + 1, plane) if flip else (plane, plane + 1))
    else:
        n, pairs = spec
    circuit = GivensCircuit.from_pairs(n, pairs)
    assert _segments(circuit, max_gates) == _segments_gate_by_gate(circuit, max_gates)


@pytest.mark.parametrize("layout", ["v", "reck", "clements"])
@pytest.mark.parametrize("max_gates", [4, 64])
def test_the_vectorised_segmentation_of_the_layouts(layout, max_gates) -> None:
    circuit = getattr(GivensCircuit, layout)(40)
    assert _segments(circuit, max_gates) == _segments_gate_by_gate(circuit, max_gates)


def _build_layers_segment_by_segment(plan) -> tuple:
    """The general segments' build schedule by its definition: each segment scheduled alone
    (`asap_layers` in its own coordinates), the segments' levels then joined side by side."""
    by_level: dict[int, tuple[list[int], list[int]]] = {}
    for g, i in enumerate(plan.generals):
        seg = plan.segments[i]
        local = {c: k for k, c in enumerate(seg.support)}
        pairs = [(local[p], local[q]) for p, q in plan.circuit.pairs[seg.start : seg.stop]]
        for level, layer in enumerate(asap_layers(pairs, len(seg.support))):
            rows, ids = by_level.setdefault(level, ([], []))
            for t in layer:
                rows += [g * plan.width + pairs[t][0], g * plan.width + pairs[t][1]]
                ids.append(seg.start + t)
    return tuple((tuple(rows), tuple(ids)) for rows, ids in (by_level[k] for k in sorted(by_level)))


@settings(max_examples=60, deadline=None)
@given(
    spec=st.one_of(pair_sequences, neighbour_sequences),
    max_gates=st.sampled_from([1, 2, 3, 5, 8]),
)
def test_the_vectorised_build_schedule_is_the_segment_by_segment_one(spec, max_gates) -> None:
    n, pairs = spec
    plan = givens_plan(GivensCircuit.from_pairs(n, pairs), 8, segment_gates=max_gates)
    assert plan.build_layers == _build_layers_segment_by_segment(plan)


@pytest.mark.parametrize("layout", ["v", "reck", "clements"])
@pytest.mark.parametrize("max_gates", [4, 32])
def test_the_vectorised_build_schedule_of_the_layouts(layout, max_gates) -> None:
    plan = givens_plan(getattr(GivensCircuit, layout)(40), 8, segment_gates=max_gates)
    assert plan.build_layers == _build_layers_segment_by_segment(plan)


def test_circuits_hash_once_and_alike_in_every_process() -> None:
    # The planner's caches are keyed by circuits: equal circuits must hash alike, also after a
    # round trip through pickle (spawned workers), and the hash must not depend on str hashing.
    circuit = GivensCircuit.clements(12)
    twin = GivensCircuit.from_pairs(12, circuit.pairs)
    assert hash(circuit) == hash(twin) == hash((12, circuit.pairs))
    restored = pickle.loads(pickle.dumps(circuit))
    assert restored == circuit and hash(restored) == hash(circuit)
    assert circuit != twin  # the layout name is part of equality, not of the hash


def test_tiled_is_offered_only_for_neighbouring_planes() -> None:
    assert "tiled" in givens_plan(GivensCircuit.clements(16), 64).strategies
    plan = givens_plan(GivensCircuit.from_pairs(4, [(0, 2), (1, 3)]), 64)
    assert plan.tiles is None and "tiled" not in plan.strategies
    layer = GivensLinear(GivensCircuit.from_pairs(4, [(0, 2), (1, 3)]), strategy="tiled")
    with pytest.raises(tnlayers.OptionError, match="neighbouring planes"):
        layer(torch.randn(2, 4))
    auto = GivensLinear(GivensCircuit.from_pairs(4, [(0, 2), (1, 3)]))
    assert auto.chosen_strategy(64) != "tiled"
    assert "tiled" not in auto.cost(64).strategies


@settings(max_examples=20, deadline=None)
@given(spec=pair_sequences, segment_gates=st.sampled_from([1, 2, 4, None]))
def test_general_2x2_blocks_as_in_attack_form_2(
    spec: tuple[int, list[tuple[int, int]]], segment_gates: int | None
) -> None:
    """Blocks that are not rotations (noise on the gate entries) run through the same code."""
    n, pairs = spec
    circuit = GivensCircuit.from_pairs(n, pairs)
    plan = givens_plan(circuit, 3, segment_gates=segment_gates)
    blocks = torch.randn(len(pairs), 2, 2, dtype=F64)
    x = torch.randn(3, n, dtype=F64)
    u = _ordered_product(circuit, blocks)
    for strategy in plan.strategies:
        assert torch.allclose(givens_forward(x, blocks, plan, strategy), x @ u.T, atol=1e-10)
        if strategy != "materialize":
            assert torch.allclose(circuit_matrix(blocks, plan, strategy), u, atol=1e-10)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("layout", ["v", "clements", "reck"])
def test_gradcheck_float64(strategy: str, layout: str) -> None:
    circuit = LAYOUTS[layout](5)
    plan = givens_plan(circuit, 3, segment_gates=3)
    angles = (torch.rand(circuit.num_gates, dtype=F64) * 6 - 3).requires_grad_()
    blocks = torch.randn(circuit.num_gates, 2, 2, dtype=F64, requires_grad=True)
    x = torch.randn(3, 5, dtype=F64, requires_grad=True)

    def through_angles(a: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        return givens_forward(
            inputs, tnlayers._circuits.givens_exec.rotation_blocks(a), plan, strategy
        )

    assert torch.autograd.gradcheck(through_angles, (angles, x))
    assert torch.autograd.gradcheck(lambda b, v: givens_forward(v, b, plan, strategy), (blocks, x))


def test_layer_gradients_reach_angles_and_input_for_every_strategy() -> None:
    x = torch.randn(4, 6, dtype=F64, requires_grad=True)
    grads = []
    for strategy in STRATEGIES:
        torch.manual_seed(0)
        layer = GivensLinear(6, strategy=strategy, dtype=F64)
        layer(x).pow(3).sum().backward()
        grads.append((layer.angles.grad.clone(), x.grad.clone()))
        x.grad = None
    for angle_grad, input_grad in grads[1:]:
        assert torch.allclose(angle_grad, grads[0][0], atol=1e-12)
        assert torch.allclose(input_grad, grads[0][1], atol=1e-12)


def test_double_backward_is_refused_not_wrong() -> None:
    layer = GivensLinear(4, strategy="blocked", dtype=F64)
    x = torch.randn(2, 4, dtype=F64, requires_grad=True)
    (g,) = torch.autograd.grad(layer(x).pow(2).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match=r"once_differentiable|twice"):
        g.sum().backward()


def test_naive_gate_by_gate_network_equals_the_layer() -> None:
    layer = GivensLinear(5, dtype=F64)
    naive = tnlayers.TNLinear.from_tensors(
        layer.circuit.network(),
        {k: v.detach() for k, v in layer.gate_tensors().items()},
        strategy="sequential",
    )
    x = torch.randn(3, 5, dtype=F64)
    assert torch.allclose(naive(x), layer(x), atol=1e-12)
    assert layer.circuit.network().num_params == (2 * 5 - 3) * 25  # dense gates: n² each


def test_probabilities_output_sums_to_squared_norm() -> None:
    layer = GivensLinear(8, output="probabilities", dtype=F64)
    x = torch.randn(5, 8, dtype=F64)
    probs = layer(x)
    assert (probs >= 0).all()
    assert torch.allclose(probs.sum(-1), x.pow(2).sum(-1))


def test_leading_dimensions_and_state_dict_round_trip() -> None:
    layer = GivensLinear(6, layout="reck")
    x = torch.randn(2, 3, 6)
    other = GivensLinear(6, layout="reck")
    other.load_state_dict(layer.state_dict())
    assert list(layer.state_dict()) == ["angles"]
    assert torch.equal(other(x), layer(x))
    assert layer(x).shape == (2, 3, 6)


def test_cost_counts_structured_work_and_chooses_blocked_for_the_v_layer() -> None:
    cost = GivensLinear(784).cost(256)
    data = cost.to_dict()
    assert data["gates"] == 1565 and data["depth"] == 1565
    assert data["strategies"]["layered"]["flops"] == 8 * 1565 * 256
    assert data["strategy"] == "blocked" and cost.strategy == "blocked"
    assert data["strategies"]["blocked"]["calls"] < data["strategies"]["layered"]["calls"] / 10
    assert "gate-by-gate dense products" in str(cost)


def test_bad_input_messages_name_sizes() -> None:
    with pytest.raises(tnlayers.ShapeError, match=r"expects \(\.\.\., 5\).*n = 5"):
        GivensLinear(5)(torch.randn(2, 4))
    with pytest.raises(tnlayers.NetworkSpecError, match=r"gate 1 acts on coordinates \(2, 2\)"):
        GivensCircuit.from_pairs(3, [(0, 1), (2, 2)])
    with pytest.raises(tnlayers.NetworkSpecError, match=r"0\.\.2"):
        GivensCircuit.from_pairs(3, [(0, 3)])
    with pytest.raises(tnlayers.NetworkSpecError, match="n ≥ 2"):
        GivensCircuit.v(1)
    with pytest.raises(tnlayers.OptionError, match="layout"):
        GivensLinear(4, layout="diamond")  # type: ignore[arg-type]
    with pytest.raises(tnlayers.OptionError, match="strategy"):
        GivensLinear(4, strategy="fast")
    with pytest.raises(tnlayers.ShapeError, match="dtype"):
        GivensLinear(4)(torch.randn(2, 4, dtype=F64))


# ---------------------------------------------------------------------- qubit circuit declarations
def test_qubit_circuit_network_structure() -> None:
    circuit = QubitCircuit(3).ry(0).ry(1).ry(2).cnot(0, 1).cnot(1, 2).rzz(0, 2)
    net = circuit.network()
    assert circuit.num_params == 4 and not circuit.is_real
    assert net.inputs == ("q0_0", "q1_0", "q2_0")
    assert net.outputs == ("q0_3", "q1_3", "q2_3")
    assert net.legs("g3") == ("q0_2", "q1_2", "q0_1", "q1_1")
    assert net.in_features == net.out_features == 8
    assert circuit.layers == ((0, 1, 2), (3,), (4,), (5,))


def test_product_circuit_is_joined_by_a_size_one_link() -> None:
    net = QubitCircuit(2).ry(0).ry(1).network()
    assert net.sizes["link"] == 1
    assert "link" in net.legs("g0") and "link" in net.legs("g1")


def test_qubit_circuit_errors() -> None:
    with pytest.raises(tnlayers.NetworkSpecError, match="qubit 3"):
        QubitCircuit(2).rx(3)
    with pytest.raises(tnlayers.NetworkSpecError, match="different qubits"):
        QubitCircuit(2).cnot(1, 1)
    with pytest.raises(tnlayers.OptionError, match="unknown gate"):
        QubitCircuit(2).add("toffoli", 0)
    with pytest.raises(tnlayers.NetworkSpecError, match=r"qubit\(s\) \[1\] have no gate"):
        QubitCircuit(2).rx(0).network()


# ---------------------------------------------------------------------- qubit circuit layers
def _textbook(kind: str, theta: float) -> torch.Tensor:
    """Gate matrices written out from their textbook definitions (basis |q_a q_b⟩, a first)."""
    c, s = torch.cos(torch.tensor(theta / 2)), torch.sin(torch.tensor(theta / 2))
    e, ec = torch.exp(torch.tensor(-0.5j * theta)), torch.exp(torch.tensor(0.5j * theta))
    r = 2**-0.5
    table = {
        "rx": [[c, -1j * s], [-1j * s, c]],
        "ry": [[c, -s], [s, c]],
        "rz": [[e, 0], [0, ec]],
        "h": [[r, r], [r, -r]],
        "x": [[0, 1], [1, 0]],
        "cnot": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]],
        "cz": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, -1]],
        "swap": [[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]],
        "rxx": [[c, 0, 0, -1j * s], [0, c, -1j * s, 0], [0, -1j * s, c, 0], [-1j * s, 0, 0, c]],
        "ryy": [[c, 0, 0, 1j * s], [0, c, -1j * s, 0], [0, -1j * s, c, 0], [1j * s, 0, 0, c]],
        "rzz": [[e, 0, 0, 0], [0, ec, 0, 0], [0, 0, ec, 0], [0, 0, 0, e]],
    }
    return torch.tensor([[complex(v) for v in row] for row in table[kind]], dtype=torch.complex128)


def _state_vector_matrix(circuit: QubitCircuit, angles: torch.Tensor) -> torch.Tensor:
    """U by simulating each basis state gate by gate on a [2]*N state tensor."""
    n = circuit.num_qubits
    columns = []
    for basis in range(2**n):
        psi = torch.zeros(2**n, dtype=torch.complex128)
        psi[basis] = 1
        psi = psi.reshape((2,) * n)
        k = 0
        for gate in circuit.gates:
            theta = float(angles[k]) if gate.parameterized else 0.0
            k += gate.parameterized
            m = len(gate.qubits)
            op = _textbook(gate.kind, theta).reshape((2,) * (2 * m))
            psi = torch.tensordot(op, psi, dims=(list(range(m, 2 * m)), list(gate.qubits)))
            psi = torch.movedim(psi, list(range(m)), list(gate.qubits))
        columns.append(psi.reshape(-1))
    return torch.stack(columns, dim=1)


GATE_KINDS = ["rx", "ry", "rz", "h", "x", "cnot", "cz", "swap", "rxx", "ryy", "rzz"]
random_circuits = st.integers(1, 4).flatmap(
    lambda n: st.tuples(
        st.just(n),
        st.lists(
            st.tuples(
                st.sampled_from(GATE_KINDS if n > 1 else GATE_KINDS[:5]),
                st.permutations(list(range(n))),
            ),
            min_size=1,
            max_size=12,
        ),
    )
)


def _build(n: int, gates: list[tuple[str, list[int]]]) -> QubitCircuit:
    circuit = QubitCircuit(n)
    for kind, order in gates:
        arity = 2 if kind in ("cnot", "cz", "swap", "rxx", "ryy", "rzz") else 1
        circuit = circuit.add(kind, *order[:arity])
    for q in range(n):  # every qubit needs a gate
        circuit = circuit.ry(q)
    return circuit


@settings(max_examples=30, deadline=None)
@given(spec=random_circuits, strategy=st.sampled_from(["sequential", "materialize"]))
def test_random_qubit_circuits_are_unitary_and_equal_the_gate_product(
    spec: tuple[int, list[tuple[str, list[int]]]], strategy: str
) -> None:
    circuit = _build(*spec)
    layer = tnlayers.QubitCircuitLinear(circuit, strategy=strategy, dtype=F64)
    u = layer.to_dense().detach().to(torch.complex128)
    eye = torch.eye(circuit.dim, dtype=torch.complex128)
    assert torch.allclose(u.conj().T @ u, eye, atol=1e-10)
    assert torch.allclose(u, _state_vector_matrix(circuit, layer.angles.detach()), atol=1e-10)
    x = torch.randn(3, circuit.dim, dtype=F64)
    assert torch.allclose(layer(x).to(torch.complex128), x.to(torch.complex128) @ u.T, atol=1e-10)
    assert layer.num_params == circuit.num_params == sum(p.numel() for p in layer.parameters())


def test_real_qubit_circuit_is_orthogonal_and_real() -> None:
    circuit = QubitCircuit(3).ry(0).ry(1).ry(2).cnot(0, 1).cz(1, 2).h(2).swap(0, 2)
    layer = tnlayers.QubitCircuitLinear(circuit, dtype=F64)
    u = layer.to_dense().detach()
    assert u.dtype == F64 and circuit.is_real
    assert torch.allclose(u.T @ u, torch.eye(8, dtype=F64), atol=1e-10)


def test_qubit_layer_gradcheck_and_probabilities() -> None:
    circuit = QubitCircuit(2).rx(0).ry(1).cnot(0, 1).rzz(0, 1).rz(1)
    layer = tnlayers.QubitCircuitLinear(circuit, output="probabilities", dtype=F64)
    x = torch.randn(3, 4, dtype=F64)
    probs = layer(x)
    assert probs.dtype == F64 and torch.allclose(probs.sum(-1), x.pow(2).sum(-1))

    def run(angles: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(layer, {"angles": angles}, (inputs,))

    angles = torch.randn(circuit.num_params, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(run, (angles, x.clone().requires_grad_()))
    layer.angles.grad = None
    layer(x).sum().backward()
    assert layer.angles.grad is not None and layer.angles.grad.abs().sum() > 0


def test_qubit_layer_bad_input() -> None:
    layer = tnlayers.QubitCircuitLinear(QubitCircuit(2).ry(0).cnot(0, 1))
    with pytest.raises(tnlayers.ShapeError, match=r"2-qubit circuit expects \(\.\.\., 4\)"):
        layer(torch.randn(2, 3))
    with pytest.raises(tnlayers.ArgumentTypeError, match="QubitCircuit"):
        tnlayers.QubitCircuitLinear(GivensCircuit.v(4))  # type: ignore[arg-type]


def test_amplitude_encoding_normalises_and_pads() -> None:
    x = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0]], dtype=F64)
    psi = tnlayers.circuits.amplitude_encode(x, 4)
    assert torch.allclose(psi[0], torch.tensor([0.6, 0.8, 0.0, 0.0], dtype=F64))
    assert torch.equal(psi[1], torch.zeros(4, dtype=F64))  # no NaN for a zero input
    assert torch.equal(tnlayers.circuits.AmplitudeEncoding(4)(x), psi)
    with pytest.raises(tnlayers.ShapeError, match="cannot encode 3 features into 2 amplitudes"):
        tnlayers.circuits.amplitude_encode(x, 2)


staircase_walks = st.integers(3, 9).flatmap(
    lambda n: st.tuples(
        st.just(n),
        st.lists(
            st.tuples(st.integers(0, n - 2), st.booleans()),
            min_size=1,
            max_size=30,
        ),
    )
)


@settings(max_examples=40, deadline=None)
@given(spec=staircase_walks, segment_gates=st.sampled_from([1, 2, 3, 6]))
def test_staircase_closed_form_matches_the_gate_product(
    spec: tuple[int, list[tuple[int, bool]]], segment_gates: int
) -> None:
    """Neighbouring planes in either orientation: staircases up, down and broken ones."""
    n, steps = spec
    pairs = [(p + 1, p) if flip else (p, p + 1) for p, flip in steps]
    circuit = GivensCircuit.from_pairs(n, pairs)
    plan = givens_plan(circuit, 2, segment_gates=segment_gates)
    blocks = torch.randn(len(pairs), 2, 2, dtype=F64)
    assert torch.allclose(
        circuit_matrix(blocks, plan, "blocked"), _ordered_product(circuit, blocks), atol=1e-10
    )


@settings(max_examples=25, deadline=None)
@given(spec=staircase_walks, segment_gates=st.sampled_from([1, 2, 3, 6]), zeros=st.booleans())
def test_staircase_blocks_have_exact_gradients_also_at_zero_entries(
    spec: tuple[int, list[tuple[int, bool]]], segment_gates: int, zeros: bool
) -> None:
    # The closed form's backward is derived by hand; a gate of angle 0 has sin = 0 in the
    # products it differentiates, which a division-based cumprod gradient gets wrong.
    n, steps = spec
    pairs = [(p + 1, p) if flip else (p, p + 1) for p, flip in steps]
    circuit = GivensCircuit.from_pairs(n, pairs)
    plan = givens_plan(circuit, 2, segment_gates=segment_gates)
    assume(plan.staircases)
    blocks = torch.randn(len(pairs), 2, 2, dtype=F64)
    if zeros:
        blocks[::2, 1, 0] = 0.0
        blocks[1::3, 0, 1] = 0.0
    blocks.requires_grad_()
    assert torch.autograd.gradcheck(lambda b: staircase_blocks(plan, b), (blocks,))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_refuses_a_second_derivative(strategy: str) -> None:
    # The circuits page says so: a gradient penalty through a Givens layer raises, whichever
    # strategy runs, instead of returning a second derivative that misses terms.
    layer = GivensLinear(GivensCircuit.v(6), strategy=strategy, dtype=F64)
    (grad,) = torch.autograd.grad(
        layer(torch.randn(3, 6, dtype=F64)).square().sum(), layer.angles, create_graph=True
    )
    with pytest.raises(RuntimeError, match=r"once_differentiable|double backward"):
        grad.sum().backward()


def test_staircase_blocks_refuse_a_second_derivative() -> None:
    # Differentiable once by design: a double backward must raise, never return a wrong value.
    circuit = GivensCircuit.v(6)
    plan = givens_plan(circuit, 2, segment_gates=4)
    blocks = torch.randn(circuit.num_gates, 2, 2, dtype=F64, requires_grad=True)
    (grad,) = torch.autograd.grad(
        staircase_blocks(plan, blocks).square().sum(), blocks, create_graph=True
    )
    with pytest.raises(RuntimeError, match=r"once_differentiable|double backward"):
        grad.sum().backward()


def test_circuit_networks_work_with_the_generic_tools(tmp_path) -> None:
    """Cost, draw and materialize both kinds of circuit network like any other network."""
    givens = GivensCircuit.v(5).network()
    qubits = QubitCircuit(3).ry(0).cnot(0, 1).ry(2).cz(1, 2).network()
    for net in (givens, qubits):
        report = tnlayers.cost(net, batch=8)
        assert report.params == net.num_params
        assert "sequential" in str(report)
        tnlayers.draw(net, tmp_path / "circuit.png")
        assert (tmp_path / "circuit.png").stat().st_size > 0
    layer = GivensLinear(5, dtype=F64)
    values = {k: v.detach() for k, v in layer.gate_tensors().items()}
    weight = tnlayers.contraction.contract_weight(givens, values)
    assert torch.allclose(weight, layer.to_dense().detach(), atol=1e-12)


def test_strategy_options_mean_what_they_mean_for_tnlinear(monkeypatch):
    import tnlayers._circuits.givens_layer as module

    timed: list[int] = []
    real = module.time_strategies

    def counting(runs, device):
        timed.append(len(runs))
        return real(runs, device)

    monkeypatch.setattr(module, "time_strategies", counting)
    x = torch.randn(32, 16)
    for option in ("model", "layered", "blocked", "materialize", "tiled"):
        layer = GivensLinear(16, strategy=option)
        layer(x).sum().backward()
        assert timed == [] and layer.cost(32).basis in ("model", "forced")
    tuned = GivensLinear(16, strategy="autotune")
    assert tuned.cost(32).basis == "untimed" and tuned.chosen_strategy(32) and timed == []
    tuned(x).sum().backward()  # the first call at this size times every strategy it has
    assert timed == [4]  # layered, blocked, materialize and tiled (neighbouring planes)
    report = tuned.cost(32)
    assert report.basis == "timed" and set(report.measured_s) == {
        "layered",
        "blocked",
        "materialize",
        "tiled",
    }
    assert report.strategy == min(report.measured_s, key=report.measured_s.__getitem__)
    tuned(x)  # recorded: never timed again at this size
    assert timed == [4]
    fresh = GivensLinear(16, layout="clements", strategy="autotune")
    assert fresh.cost(8, mode="inference", measure=True).basis == "timed" and timed == [4, 4]
    fresh.strategy = "layered"  # reassigning the option takes effect
    assert fresh.chosen_strategy(8, training=False) == "layered"


def test_inference_reuses_u_until_the_angles_change(monkeypatch) -> None:
    layer = GivensLinear(GivensCircuit.clements(8)).eval()
    assert layer.chosen_strategy(16, training=False) == "materialize"  # one GEMM, U cached
    x = torch.randn(16, 8)
    built = []
    original = givens_layer.circuit_matrix
    monkeypatch.setattr(givens_layer, "circuit_matrix", lambda *a: built.append(1) or original(*a))
    with torch.no_grad():
        for _ in range(3):
            torch.testing.assert_close(layer(x), x @ layer.to_dense().T)
        assert len(built) == 1 + 3  # the first call, then to_dense each time
        layer.angles.mul_(-1.0)
        torch.testing.assert_close(layer(x), x @ layer.to_dense().T)
    assert len(built) == 4 + 2
    report = layer.cost(16, mode="inference")
    assert report.call_flops == 2 * 16 * 8 * 8 and "built once and reused" in report.reason
    # Training calls never use the cache: gradients reach the angles.
    layer.train()
    layer(x).sum().backward()
    assert layer.angles.grad is not None and layer.angles.grad.abs().sum() > 0


def test_a_block_transform_is_applied_on_every_inference_call() -> None:
    # The cache cannot check a transform's state, so a layer with one never serves U from it.
    layer = GivensLinear(GivensCircuit.clements(6), strategy="materialize").double().eval()
    x = torch.randn(4, 6, dtype=F64)
    with torch.no_grad():
        layer(x)  # caches U
        for scale in (0.5, 0.25):
            layer.block_transform = lambda blocks, s=scale: s * blocks
            u = _ordered_product(layer.circuit, scale * rotation_blocks(layer.angles))
            torch.testing.assert_close(layer(x), x @ u.T)
        layer.block_transform = None
        torch.testing.assert_close(layer(x), x @ layer.to_dense().T)
    # The cost model weighs U's build on every call when a transform is set, and the report
    # predicts what runs.
    model = GivensLinear(GivensCircuit.reck(64), strategy="model")
    cached = model.cost(256, mode="inference").strategies["materialize"].predicted_time_s
    model.block_transform = lambda blocks: blocks
    report = model.cost(256, mode="inference")
    assert report.strategies["materialize"].predicted_time_s > 10 * cached
    assert "built once" not in report.reason


def test_compiled_inference_decides_without_the_cache() -> None:
    # Graphs keep no cache: rebuilding U per call must be weighed as such, and a timing
    # measured with the cache must not decide for them.
    layer = GivensLinear(GivensCircuit.reck(64))
    cached = _decide(layer._config, 256, False, "cpu", "float32", "model")
    uncached = _decide(layer._config, 256, False, "cpu", "float32", "auto", cached=False)
    assert cached.strategy == "materialize" and uncached.basis == "model"
    assert uncached.predicted_s["materialize"] > 10 * cached.predicted_s["materialize"]
    for strategy in ("layered", "blocked", "tiled"):
        assert uncached.predicted_s[strategy] == cached.predicted_s[strategy]


@pytest.mark.parametrize("layout", ["reck", "clements"])
def test_materialize_builds_u_by_the_fastest_strategy(layout: str) -> None:
    # Reck and Clements build U by their tiles at n = 128 (3× faster than by the segments,
    # measured); values and gradients equal the layered executor's either way.
    circuit = LAYOUTS[layout](128)
    plan = givens_plan(circuit, 2048, training=True)
    assert plan.build == "tiled"
    model = tnlayers.contraction.MachineModel()
    blocked = dataclasses.replace(plan, build="blocked")
    assert plan.time("materialize", 2048, True, model, 4) < blocked.time(
        "materialize", 2048, True, model, 4
    )
    blocks = torch.randn(circuit.num_gates, 2, 2, dtype=F64, requires_grad=True)
    x = torch.randn(3, 128, dtype=F64, requires_grad=True)
    y = givens_forward(x, blocks, plan, "materialize")
    reference = givens_forward(x, blocks, plan, "layered")
    torch.testing.assert_close(y, reference)
    cotangent = torch.randn_like(y)
    got = torch.autograd.grad(y, (x, blocks), cotangent)
    want = torch.autograd.grad(reference, (x, blocks), cotangent)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)


def test_frozen_layers_cache_u_and_pass_gradients_to_the_input() -> None:
    layer = GivensLinear(GivensCircuit.clements(6), strategy="materialize").double()
    layer.requires_grad_(False)
    x = torch.randn(5, 6, dtype=F64, requires_grad=True)
    layer(x).sum().backward()
    assert layer._weight_cache  # U kept although gradients were on
    u = layer.to_dense()
    torch.testing.assert_close(x.grad, u.sum(0).expand_as(x))
    with torch.no_grad():
        layer.angles.mul_(-1.0)
    torch.testing.assert_close(layer(x).detach(), x.detach() @ layer.to_dense().T)


def test_auto_times_only_the_strategies_predicted_close_to_the_best(monkeypatch) -> None:
    timed: list[set[str]] = []
    real = givens_layer.time_strategies

    def recording(runs, device):
        timed.append(set(runs))
        return real(runs, device)

    monkeypatch.setattr(givens_layer, "time_strategies", recording)
    layer = GivensLinear(GivensCircuit.clements(64))
    predicted = layer.cost(256).strategies
    times = {name: cost.predicted_training_time_s for name, cost in predicted.items()}
    close = {name for name, t in times.items() if t <= 1.5 * min(times.values())}
    assert layer.cost(256).basis == "untimed" and 2 <= len(close) < len(times)
    layer(torch.randn(256, 64)).sum().backward()
    assert timed == [close]  # the hopeless ones are not run at all
    assert set(layer.cost(256).measured_s) == close
    # An "autotune" layer of the same circuit still times every strategy.
    tuned = GivensLinear(GivensCircuit.clements(64), strategy="autotune")
    tuned(torch.randn(256, 64)).sum().backward()
    assert timed[-1] == set(times)


@settings(max_examples=40, deadline=None)
@given(
    spec=st.one_of(pair_sequences, neighbour_sequences),
    batch=st.sampled_from([1, 32, 4096]),
    training=st.booleans(),
)
def test_the_pruned_segment_search_finds_the_exhaustive_minimum(spec, batch, training) -> None:
    # The calls floor and the sketch bound each length's predicted time from below, so refining
    # only the lengths that could still win must pick what planning all of them would (the
    # first one on ties).
    from tnlayers._circuits import givens_plan as module

    n, pairs = spec
    circuit = GivensCircuit.from_pairs(n, pairs)
    model = tnlayers.contraction.MachineModel()
    lengths = module._SEGMENT_GATES
    full = [module._plan_with(circuit, g) for g in lengths]
    times = [p.time("blocked", batch, training, model, 4) for p in full]
    for g, time in zip(lengths, times, strict=True):
        sketch = module._sketch(circuit, g).time("blocked", batch, training, model, 4)
        assert module._calls_floor(circuit, g, training, model) <= sketch <= time
    chosen = module._fastest_segments(circuit, lengths, batch, training, model)
    assert chosen is full[times.index(min(times))]


@pytest.mark.parametrize("grad", [True, False])
def test_rotations_keep_the_angles_precision_under_autocast(grad: bool) -> None:
    # Each gate's rounding would compound over a deep circuit: autocast must not reach them.
    layer = GivensLinear(GivensCircuit.reck(16))
    x = torch.randn(8, 16)
    with torch.set_grad_enabled(grad):
        plain = layer(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            cast = layer(x)
    assert cast.dtype == torch.float32
    torch.testing.assert_close(cast, plain, rtol=0, atol=0)
