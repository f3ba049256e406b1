"""The default path optimiser "best": deterministic in every process, never worse than dp."""

import os
import subprocess
import sys

import opt_einsum
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tnlayers
from tnlayers._core.paths import _sweep, best_path, grouped_paths, input_copy, path_flops
from tnlayers._core.plan import BATCH, MachineModel, _contract
from tnlayers.testing import random_network

from ..strategies import mpo_networks, ring_networks, tree_networks


def _ring(n: int, leg: int = 2, bond: int = 3) -> tnlayers.Network:
    cores = ", ".join(f"b{k} i{k} o{k} b{(k + 1) % n}" for k in range(n))
    ins, outs = " ".join(f"i{k}" for k in range(n)), " ".join(f"o{k}" for k in range(n))
    sizes = {
        **{f"{s}{k}": leg for s in "io" for k in range(n)},
        **{f"b{k}": bond for k in range(n)},
    }
    return tnlayers.Network.from_einsum(f"{cores} : {ins} -> {outs}", sizes)


def _sequential(net: tnlayers.Network, batch: int):
    operands = [(BATCH, *net.inputs), *(net.legs(t) for t in net.tensor_names)]
    return operands, (BATCH, *net.outputs), {**net.sizes, BATCH: batch}


def _opt_einsum_flops(operands, output, sizes, optimize) -> int:
    symbols = {leg: opt_einsum.get_symbol(k) for k, leg in enumerate(sizes)}
    equation = ",".join("".join(symbols[leg] for leg in ops) for ops in operands)
    equation += "->" + "".join(symbols[leg] for leg in output)
    shapes = [tuple(sizes[leg] for leg in ops) for ops in operands]
    _, info = opt_einsum.contract_path(equation, *shapes, shapes=True, optimize=optimize)
    return int(info.opt_cost)


_PLANS_SCRIPT = """
import tnlayers
nets = [tnlayers.mpo((2,) * 16, (2,) * 16, 4), tnlayers.mpo((3, 4, 5, 2, 3), (2, 2, 3, 4, 5), 3)]
for net in nets:
    for batch in (1, 64, 1024):
        p = tnlayers.plan(net, batch)
        print([c.path for s in p.strategies.values() for c in s.contractions])
"""


@pytest.mark.slow
def test_the_same_plan_in_every_process():
    outputs = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", _PLANS_SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        outputs.add(done.stdout)
    assert len(outputs) == 1


@pytest.mark.parametrize("batch", [1, 64, 1024])
def test_long_mpo_matches_dp_and_beats_the_sweep(batch):
    # The case where "auto-hq" was 1.3× / 2× / 5.3× the optimum.
    operands, output, sizes = _sequential(tnlayers.mpo((2,) * 16, (2,) * 16, 4), batch)
    ours = path_flops(operands, output, sizes, best_path(operands, output, sizes, 0))
    assert ours <= 1.05 * _opt_einsum_flops(operands, output, sizes, "dp")
    assert ours <= path_flops(operands, output, sizes, _sweep(0, range(1, len(operands))))


@pytest.mark.parametrize("batch", [1, 1024])
def test_ring_matches_dp(batch):
    operands, output, sizes = _sequential(_ring(14), batch)
    ours = path_flops(operands, output, sizes, best_path(operands, output, sizes, 0))
    assert ours <= 1.05 * _opt_einsum_flops(operands, output, sizes, "dp")


@settings(max_examples=12)
@given(
    st.integers(2, 24),
    st.integers(1, 4),
    st.integers(1, 4),
    st.integers(1, 5),
    st.sampled_from([1, 7, 256]),
)
def test_chains_of_up_to_24_tensors_never_lose_to_a_sweep(cores, leg_in, leg_out, bond, batch):
    net = tnlayers.mpo((leg_in,) * cores, (leg_out,) * cores, bond)
    operands, output, sizes = _sequential(net, batch)
    ours = path_flops(operands, output, sizes, best_path(operands, output, sizes, 0))
    for order in (range(1, len(operands)), range(len(operands) - 1, 0, -1)):
        assert ours <= path_flops(operands, output, sizes, _sweep(0, order))


@given(st.integers(0, 2**31 - 1), st.sampled_from([1, 32]))
def test_random_networks_within_5_percent_of_dp_and_optimal(seed, batch):
    net = random_network(seed, max_tensors=6)
    operands, output, sizes = _sequential(net, batch)
    path = best_path(operands, output, sizes, 0)
    ours = path_flops(operands, output, sizes, path)
    assert ours == _opt_einsum_flops(operands, output, sizes, path)  # opt_einsum's own count
    for reference in ("dp", "optimal"):
        assert ours <= 1.05 * _opt_einsum_flops(operands, output, sizes, reference)


def test_other_optimisers_still_pass_through():
    net = tnlayers.mpo((4, 4, 4), (4, 4, 4), 3)
    for optimize in ("greedy", "optimal", "dp", opt_einsum.DynamicProgramming()):
        layer = tnlayers.TNLinear(net, optimize=optimize)
        assert layer.plan(8).strategies["sequential"].flops > 0


@pytest.mark.parametrize("bond", [1, 2])
def test_chains_where_dp_takes_half_a_minute_are_planned_by_the_interval_programme(bond):
    # opt_einsum's dp needed 30-40 s for these 16-operand chains; "best" plans them with the
    # interval programme (no timing asserted: the suite's time shows it).
    net = tnlayers.mpo((2,) * 15, (2,) * 15, bond)
    operands, output, sizes = _sequential(net, 1)
    ours = path_flops(operands, output, sizes, best_path(operands, output, sizes, 0))
    assert ours <= path_flops(operands, output, sizes, _sweep(0, range(1, len(operands))))
    # The layer's plan starts from that path and leaves it only for one predicted faster.
    planned = tnlayers.plan(net, 1).strategies["sequential"].contractions[0]
    assert planned.flops >= ours
    assert planned.time(MachineModel(), 4, True) <= _flop_best(net, 1).time(MachineModel(), 4, True)


def _flop_best(net: tnlayers.Network, batch: int):
    operands, output, sizes = _sequential(net, batch)
    names = ["x", *net.tensor_names]
    grads = [True] * len(names)
    return _contract(names, operands, output, sizes, grads, "best")


@settings(max_examples=60, deadline=None)
@given(
    net=st.one_of(mpo_networks, ring_networks, tree_networks),
    batch=st.sampled_from([1, 3, 64]),
    seed=st.integers(0, 2**16),
)
def test_grouped_paths_contract_to_the_same_values(net, batch, seed):
    # Each candidate that joins runs of neighbouring cores first, compiled and run, against
    # opt_einsum's plain contraction (float64, small batch for the values).
    from tnlayers.contraction import compile_contraction, run_program

    operands, output, sizes = _sequential(net, batch)
    names = ["x", *net.tensor_names]
    generator = torch.Generator().manual_seed(seed)
    for path in grouped_paths(operands, 0):
        contraction = _contract(names, operands, output, sizes, [True] * len(names), "best", path)
        assert path_flops(operands, output, sizes, path) == contraction.flops
        values = [
            torch.randn(shape, dtype=torch.float64, generator=generator)
            for shape in contraction.shapes()
        ]
        want = opt_einsum.contract(contraction.equation(), *values, backend="torch")
        got = run_program(compile_contraction(contraction), values)
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_grouped_paths_for_chains_rings_and_trees():
    for cores, splits in ((2, 0), (4, 6), (6, 30)):
        operands, _, _ = _sequential(tnlayers.mpo((2,) * cores, (2,) * cores, 2), 4)
        # 2^(n−1) cut sets less the two the other candidates cover, each swept from both ends
        assert len(grouped_paths(operands, 0)) == 2 * splits
    operands, _, _ = _sequential(tnlayers.mpo((2,) * 9, (2,) * 9, 2), 4)
    assert len(grouped_paths(operands, 0)) == 2 * 8  # longer chains: two runs only
    # Rings: two cuts or more anywhere round them, fewer than one per tensor.
    for cores, splits in ((3, 3), (4, 10), (7, 21)):
        operands, _, _ = _sequential(_ring(cores), 4)
        assert len(grouped_paths(operands, 0)) == 2 * splits
    # Trees: the two parts left by removing each edge (a binary tree of 4 leaves has 7 tensors
    # and 6 edges; a Tucker star of 2 modes, a core and 4 factors).
    for net, edges in (
        (tnlayers.tree((2, 3, 2, 2), (2, 2, 3, 2), 2), 6),
        (tnlayers.tucker((4, 4), (3, 3), 2), 4),
    ):
        operands, _, _ = _sequential(net, 4)
        assert len(grouped_paths(operands, 0)) == 2 * edges
    # Four Kronecker bodies share the term leg: every body touches three others, a cycle.
    operands, _, _ = _sequential(tnlayers.kronecker((2, 3, 2, 2), (2, 2, 3, 2), 2), 4)
    assert grouped_paths(operands, 0) == []


def test_an_mpo_of_bond_two_joins_its_cores_in_halves_before_the_batch():
    # Core by core is the FLOP minimum (14M) but four thin contractions over 400k-element
    # intermediates; two halves first leave two well-shaped GEMMs (20M FLOPs), measured at a
    # third of the time of a training step on the project CPU (benchmarks/README.md).
    net = tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), 2)
    plan = tnlayers.plan(net, 256)
    steps = plan.strategies["sequential"].steps
    assert [BATCH in step.output for step in steps] == [False, False, True, True]
    flop_best = _flop_best(net, 256)
    assert flop_best.flops < plan.strategies["sequential"].flops
    assert plan.choose(training=True) == "sequential"


@pytest.mark.parametrize(
    ("network", "tie"),
    [
        (tnlayers.kronecker(784, 784, 1), True),
        (tnlayers.kronecker(784, 784, 4), True),
        (tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), 4), False),
        (tnlayers.btt(1024, 1024, 4), False),
    ],
    ids=["kron-K1", "kron-K4", "mpo", "btt"],
)
def test_equally_cheap_paths_prefer_reading_the_input_in_place(network, tie):
    operands = [("batch", *network.inputs), *(network.legs(t) for t in network.tensor_names)]
    output = ("batch", *network.outputs)
    sizes = {**network.sizes, "batch": 64}
    chosen = best_path(operands, output, sizes, 0)
    assert input_copy(operands, output, sizes, chosen, 0) == 0
    if tie:  # two Kronecker bodies: absorbing the other one first costs the same
        other = [(0, 1), (0, 1)] if tuple(chosen[0]) == (0, 2) else [(0, 2), (0, 1)]
        flops = path_flops(operands, output, sizes, chosen)
        assert path_flops(operands, output, sizes, other) == flops
        assert input_copy(operands, output, sizes, other, 0) > 0  # the tie that was broken


def test_a_tensor_ring_of_rank_two_joins_runs_of_cores_before_the_batch():
    # The same for a ring: the FLOP-optimal path took 4.2 ms per training step at batch 256,
    # the kept one 1.2 ms (project CPU, benchmarks/README.md); rank 8 keeps the FLOP optimum.
    low = tnlayers.plan(tnlayers.tensor_ring((4, 7, 7, 4), (4, 4, 4, 4), 2), 256)
    steps = low.strategies["sequential"].steps
    assert not any(BATCH in step.output for step in steps[:2])
    high = tnlayers.tensor_ring((4, 7, 7, 4), (4, 4, 4, 4), 8)
    assert tnlayers.plan(high, 256).strategies["sequential"].flops == _flop_best(high, 256).flops


def test_a_binary_tree_of_bond_two_joins_its_halves_before_the_batch():
    # 3.3 → 1.05 ms per training step at batch 256 on the project CPU; a Tucker star keeps the
    # FLOP-optimal path, which measured fastest.
    tree = tnlayers.tree((4, 7, 7, 4), (4, 4, 4, 4), 2)
    steps = tnlayers.plan(tree, 256).strategies["sequential"].steps
    assert not any(BATCH in step.output for step in steps[:2])
    star = tnlayers.tucker((28, 28), (16, 16), 8)
    assert tnlayers.plan(star, 256).strategies["sequential"].flops == _flop_best(star, 256).flops


def test_the_cost_report_says_when_the_sequential_path_is_not_the_fewest_flops():
    # What runs is what is reported, and why: the report names the FLOP-optimal path's count
    # and its predicted time beside the kept one's.
    report = tnlayers.cost(tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), 2), batch=256)
    sequential = report.strategies["sequential"]
    fewest = _flop_best(tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), 2), 256)
    (note,) = [n for n in report.notes if "joins groups of tensors" in n]
    assert f"{sequential.flops / 1e6:.1f}M FLOPs against {fewest.flops / 1e6:.1f}M" in note
    assert "joins groups of tensors" in str(report)
    same = tnlayers.cost(tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), 8), batch=256)
    assert not any("joins groups" in n for n in same.notes)
