"""Plans and cost reports: FLOPs match opt_einsum, strategies, report contents."""

import json

import opt_einsum
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tnlayers
from tnlayers import OptionError

from ..strategies import any_network


@given(any_network, st.sampled_from([1, 7, 64, 1024]))
def test_flops_equal_opt_einsum_opt_cost_for_the_same_path(net, batch):
    the_plan = tnlayers.plan(net, batch)
    for strategy in the_plan.strategies.values():
        for contraction in strategy.contractions:
            _, info = opt_einsum.contract_path(
                contraction.equation(),
                *contraction.shapes(),
                shapes=True,
                optimize=contraction.path,
            )
            assert contraction.flops == info.opt_cost
            assert contraction.largest_intermediate == info.largest_intermediate


def test_sequential_flops_are_opt_einsums_for_an_mpo():
    net = tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), 8)
    seq = tnlayers.plan(net, 64).strategies["sequential"].contractions[0]
    _, info = opt_einsum.contract_path(
        seq.equation(), *seq.shapes(), shapes=True, optimize=seq.path
    )
    assert seq.flops == info.opt_cost
    # The materialize strategy's final GEMM is 2·B·in·out, counted the opt_einsum way.
    gemm = tnlayers.plan(net, 64).strategies["materialize"].contractions[1]
    assert gemm.flops == 2 * 64 * 784 * 256


def test_plans_are_cached():
    net = tnlayers.mpo((4, 4), (4, 4), 2)
    assert tnlayers.plan(net, 32) is tnlayers.plan(net, 32)
    assert tnlayers.plan(net, 32) is not tnlayers.plan(net, 33)


def test_strategy_flips_with_batch_size():
    net = tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), 8)
    assert tnlayers.cost(net, 1).strategy == "sequential"
    assert tnlayers.cost(net, 4096).strategy == "materialize"


def test_training_flops_count_the_backward_pass():
    net = tnlayers.low_rank(100, 50, 5)
    plan = tnlayers.plan(net, 10)
    seq = plan.strategies["sequential"]
    # x·Vᵀ: x needs a gradient (input_requires_grad) and V does → 3×; then ·Uᵀ → 3×.
    assert seq.training_flops == 3 * seq.flops
    no_input_grad = tnlayers.plan(net, 10, input_requires_grad=False).strategies["sequential"]
    first = no_input_grad.contractions[0].steps[0]
    assert first.training_flops == 2 * first.flops


def test_cost_report_dict_has_the_promised_keys():
    net = tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), 2)
    report = tnlayers.cost(net, batch=64)
    d = report.to_dict()
    for key in (
        "params",
        "dense_params",
        "compression_ratio",
        "flops",
        "strategy",
        "largest_intermediate",
    ):
        assert key in d
    assert d["params"] == 288 and d["dense_params"] == 200_704
    assert d["compression_ratio"] == pytest.approx(288 / 200_704)
    chosen = report.plan.strategies[d["strategy"]]
    assert d["flops"] == chosen.flops
    assert d["largest_intermediate"] == chosen.largest_intermediate
    assert d["largest_intermediate_bytes"] == 4 * chosen.largest_intermediate
    assert set(d["strategies"]) == {"sequential", "materialize"}
    json.dumps(d)  # plain values only


def test_cost_report_prints_a_table_with_paths():
    text = str(tnlayers.cost(tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), 2), batch=64))
    assert "parameters   288 vs dense 200,704" in text
    assert "sequential path" in text and "materialize path" in text
    assert "chosen (model): " in text and "per training step" in " ".join(text.split())
    assert "[batch,in] · [out,in] → [batch,out]" in text


def test_cost_report_states_padding():
    text = str(tnlayers.cost(tnlayers.mpo(997, 256, 2, cores=2), batch=8))
    assert "padding      input 997 →" in text


def test_forced_strategy_and_bad_options():
    net = tnlayers.low_rank(10, 10, 2)
    assert tnlayers.cost(net, 8, strategy="materialize").strategy == "materialize"
    with pytest.raises(OptionError, match="strategy must be 'auto'"):
        tnlayers.cost(net, 8, strategy="fastest")
    with pytest.raises(OptionError, match="mode must be 'training' or 'inference'"):
        tnlayers.cost(net, 8, mode="eval")


@pytest.mark.parametrize(
    "subject",
    [
        lambda: tnlayers.cost(tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), 8), 256),
        lambda: tnlayers.cost(tnlayers.tensor_ring((4, 8, 8, 4), (4, 8, 8, 4), 4), 64),
        lambda: tnlayers.cost(tnlayers.mpo(997, 256, 2, cores=2), 8),
        lambda: tnlayers.cost(tnlayers.btt(784, 256, 4), 1024, mode="inference"),
        lambda: tnlayers.TNLinear(tnlayers.kronecker((28, 28), (28, 28), 4)).cost(64),
        lambda: tnlayers.GivensLinear(64, layout="clements").cost(256),
    ],
)
def test_reports_fit_a_terminal_and_a_docs_code_block(subject):
    # At most 88 characters a line (the docs' code column at 1280 px holds about 100).
    lines = str(subject()).splitlines()
    assert max(len(line) for line in lines) <= 88, max(lines, key=len)


def test_inference_reports_count_a_cached_weight_once():
    # In inference a materializing layer builds W once and reuses it: a call is the GEMM.
    net = tnlayers.mpo(512, 512, 8, cores=3)
    report = tnlayers.cost(net, 64, mode="inference", strategy="materialize")
    built, gemm = tnlayers.plan(net, 64).strategies["materialize"].contractions
    assert report.call_flops == gemm.flops < report.chosen.flops == built.flops + gemm.flops
    assert report.to_dict()["call_flops"] == gemm.flops
    assert report.strategies["materialize"].cached_flops == gemm.flops
    assert report.strategies["sequential"].cached_flops is None
    assert "builds the weight once" in " ".join(str(report).split())
    training = tnlayers.cost(net, 64, mode="training", strategy="materialize")
    assert training.call_flops == training.chosen.flops  # rebuilt every step
