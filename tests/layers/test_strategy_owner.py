"""One owner of the strategy choice: what cost(), summary() and compress() report is what runs."""

import gc
import re
import threading
from unittest.mock import patch

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

import tnlayers
from tnlayers import MPOConv2d, MPOLinear, TNLinear
from tnlayers._layers.execute import compile_contraction
from tnlayers._layers.strategy import FEWEST_FLOPS_RUN, REGISTRY, Timing, _Registry

from ..strategies import mpo_networks, ring_networks, tree_networks

MPO_CASES = [
    ((4, 4), (4, 4), 2),
    ((4, 4), (4, 4), 8),
    ((4, 7, 7, 4), (4, 4, 4, 4), 2),
    ((4, 7, 7, 4), (4, 4, 4, 4), 8),
    ((4, 8, 8, 4), (4, 8, 8, 4), 4),
    ((2,) * 6, (2,) * 6, 4),
    ((8, 8), (4, 4), 16),
]
BATCHES = [1, 256]


def _ran(monkeypatch, programs: list | None = None) -> list[str]:
    """Record the strategy of every execution a layer runs (and its programs in ``programs``)."""
    seen: list[str] = []
    original = TNLinear._run

    def spy(self, execution, *args, **kwargs):
        seen.append(execution[0])
        if programs is not None:
            programs.append(execution[1])
        return original(self, execution, *args, **kwargs)

    monkeypatch.setattr(TNLinear, "_run", spy)
    return seen


def _reported_programs(report) -> tuple:
    """The programs compiled from the path a cost report shows for its chosen strategy."""
    return tuple(
        compile_contraction(c) for c in report.plan.strategies[report.strategy].contractions
    )


@pytest.mark.parametrize(("in_dims", "out_dims", "bond"), MPO_CASES)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("mode", ["training", "inference"])
def test_cost_chosen_strategy_and_summary_report_what_runs(
    monkeypatch, in_dims, out_dims, bond, batch, mode
):
    layer = TNLinear(tnlayers.mpo(in_dims, out_dims, bond))  # strategy="auto": may time
    x = torch.randn(batch, layer.in_features)
    ran_programs: list = []
    seen = _ran(monkeypatch, ran_programs)
    with torch.set_grad_enabled(mode == "training"):
        layer(x)
        ran = seen[-1]
        report = layer.cost(batch, mode=mode)
        assert report.strategy == ran
        assert ran_programs[-1] == _reported_programs(report)  # the path shown is the one run
        assert report.basis in ("model", "timed")  # decided: nothing left to time
        assert layer.chosen_strategy(batch) == ran
        assert layer.decision(batch).strategy == ran
    layer.train(mode == "training")
    line = next(r for r in tnlayers.summary(layer, batch=batch).splitlines() if "TNLinear" in r)
    assert f" {ran} " in line
    assert report.to_dict()["decided_by"] == report.basis


def test_querying_never_times(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("a query timed the strategies")

    monkeypatch.setattr(TNLinear, "_autotune", forbidden)
    layer = TNLinear(tnlayers.mpo((4, 4, 4), (4, 4, 4), 3), strategy="autotune")
    for batch in (1, 33, 512):
        report = layer.cost(batch)
        assert report.basis == "untimed"
        assert "first call at this size times both" in report.reason
        layer.chosen_strategy(batch, training=False)
    tnlayers.summary(nn.Sequential(layer), batch=7)
    conv = MPOConv2d(3, 4, 3, bond=2)
    conv.cost(2, image_size=(8, 8))
    tnlayers.compress(nn.Sequential(nn.Linear(16, 16)), "mpo", max_bond=2, batch=4)


def test_measure_times_now_and_forward_then_agrees(monkeypatch):
    layer = TNLinear(tnlayers.mpo((4, 4, 4), (4, 4, 4), 3), strategy="autotune")
    calls = []
    original = TNLinear._autotune
    monkeypatch.setattr(
        TNLinear, "_autotune", lambda self, *a: calls.append(a) or original(self, *a)
    )
    report = layer.cost(48, mode="inference", measure=True)
    assert report.basis == "timed" and len(calls) == 1
    assert set(report.measured_s) == {"sequential", "materialize"}
    assert "timed on this machine" in report.reason
    seen = _ran(monkeypatch)
    with torch.no_grad():
        layer(torch.randn(48, 64))
    assert seen == [report.strategy] and len(calls) == 1  # forward reused the timing


def test_forced_and_model_options_say_so():
    net = tnlayers.mpo((4, 4), (4, 4), 2)
    forced = TNLinear(net, strategy="sequential").cost(8)
    assert forced.basis == "forced" and "forced" in forced.reason
    model = TNLinear(net, strategy="model").cost(8)
    assert model.basis == "model" and "cost model" in model.reason
    assert tnlayers.cost(net, 8).basis == "model"


def test_reasons_never_claim_a_one_fold_difference():
    pattern = re.compile(r"(?<![\d.])1(\.0)?× (faster|fewer)")
    for in_dims, out_dims, bond in MPO_CASES:
        net = tnlayers.mpo(in_dims, out_dims, bond)
        for batch in (1, 8, 64, 256, 1024, 4096):
            for mode in ("training", "inference"):
                reason = tnlayers.cost(net, batch, mode=mode).reason
                assert not pattern.search(reason), reason


def test_a_sequential_path_that_builds_the_weight_says_so():
    # A tensor ring of four cores, each with one input and one output leg of size 4, bond 8.
    cores = ", ".join(f"b{k} i{k} o{k} b{(k + 1) % 4}" for k in range(4))
    ring = tnlayers.Network.from_einsum(
        f"{cores} : i0 i1 i2 i3 -> o0 o1 o2 o3",
        sizes={**{f"{s}{k}": 4 for s in "io" for k in range(4)}, **{f"b{k}": 8 for k in range(4)}},
    )
    report = tnlayers.cost(ring, 1024)
    sequential = report.plan.strategies["sequential"]
    no_batch = [s.size for s in sequential.steps if "·batch" not in s.output]
    assert sequential.forms_dense_weight == (max(no_batch, default=0) >= 256 * 256)
    assert sequential.dense_size == 256 * 256
    assert sequential.forms_dense_weight
    assert "materializes the weight mid-way" in " ".join(str(report).split())  # wrapped at 88
    assert report.to_dict()["strategies"]["sequential"]["forms_dense_weight"] is True
    small = tnlayers.cost(tnlayers.mpo((4, 4), (4, 4), 2), 1024)
    assert not small.plan.strategies["sequential"].forms_dense_weight
    assert "mid-way" not in str(small)


def test_configurations_live_only_as_long_as_their_layers():
    gc.collect()
    before = len(REGISTRY)
    layers = [TNLinear(tnlayers.mpo((2, 3 + k), (2, 2), 2)) for k in range(20)]
    assert len(REGISTRY) == before + 20
    shared = [TNLinear(tnlayers.mpo((2, 3), (2, 2), 2)) for _ in range(5)]
    assert len(REGISTRY) == before + 20  # the same configuration is shared
    del layers, shared
    gc.collect()
    assert len(REGISTRY) == before


def test_timing_and_execution_registries_are_bounded():
    registry = _Registry(max_timings=3, max_executions=2)
    for k in range(10):
        registry.record((0, k, "float32", "cpu", True), None)
        registry.store_execution((0, k, "float32", "cpu", True), "auto", ("sequential", ()))
    assert registry.timings_size() == 3
    assert len(registry._executions) == 2


def test_layers_run_correctly_from_several_threads():
    layers = [
        TNLinear(tnlayers.mpo((4, 4, 4), (4, 4, 4), 3), strategy="autotune") for _ in range(4)
    ]
    errors: list[BaseException] = []

    def work(layer):
        try:
            for batch in (3, 17, 64):
                x = torch.randn(batch, 64)
                with torch.no_grad():
                    y = layer(x)
                torch.testing.assert_close(y, x @ layer.to_dense().T + layer.bias)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=work, args=(layer,)) for layer in layers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_compress_report_counts_the_strategy_that_runs(monkeypatch):
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64))
    small, report = tnlayers.compress(model, "mpo", max_bond=2)
    seen = _ran(monkeypatch)
    with torch.no_grad():
        small.eval()(torch.randn(report.batch, 64))
    for entry, module in zip(report.layers, [small[0], small[2]], strict=True):
        expected = module.cost(report.batch, mode="inference").to_dict()["call_flops"]
        assert entry.flops_after == expected
    assert seen == [m.chosen_strategy(report.batch, training=False) for m in (small[0], small[2])]


@pytest.mark.slow
def test_compiled_code_never_consults_the_registry(monkeypatch):
    # Plans are looked up by integers and strings inside a torch.compiler.assume_constant_result
    # function: under torch.compile the look-up runs once at trace time and is baked into the
    # graph. If it ever ran per call, compiled code would depend on mutable registries.
    layer = MPOLinear(64, 64, bond=4, strategy="model")
    compiled = torch.compile(layer, fullgraph=True, dynamic=True)
    x = torch.randn(24, 64)
    torch.testing.assert_close(compiled(x), layer(x), rtol=1e-5, atol=1e-5)

    def forbidden(*args, **kwargs):
        raise AssertionError("compiled code consulted the strategy registry")

    monkeypatch.setattr(tnlayers._layers.strategy, "decide", forbidden)
    monkeypatch.setattr(tnlayers._layers.strategy.REGISTRY, "execution", forbidden)
    x2 = torch.randn(28, 64)  # same power-of-two bucket: no retrace
    torch.testing.assert_close(compiled(x2), x2 @ layer.to_dense().T + layer.bias)


def test_givens_schedules_are_bounded():
    layer = tnlayers.GivensLinear(8)
    with torch.no_grad():
        for batch in range(1, 150):
            layer(torch.randn(batch, 8))
    assert len(layer._schedules) <= 64


def test_a_query_defaults_to_the_grad_mode_the_forward_pass_uses(monkeypatch):
    # At 16 rows the model trains this layer sequentially but infers by materializing.
    layer = TNLinear(tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), 8), strategy="model")
    assert layer.chosen_strategy(16, training=True) != layer.chosen_strategy(16, training=False)
    layer.requires_grad_(False)  # frozen: a call with gradients enabled is an inference call
    seen = _ran(monkeypatch)
    layer(torch.randn(16, 784))
    assert layer.chosen_strategy(16) == seen[-1] == layer.chosen_strategy(16, training=False)


def test_our_constant_mark_is_the_one_torch_compiler_sets():
    # tnlayers marks its plan look-up as torch.compiler.assume_constant_result does, without
    # importing torch._dynamo at import time; if torch ever marks functions differently, this
    # fails (and so do the compile tests).
    def probe():
        return 1

    marked = torch.compiler.assume_constant_result(probe)
    mark = {k: v for k, v in vars(marked).items()}
    assert mark == {"_dynamo_marked_constant": True}
    assert tnlayers._layers.strategy.execution._dynamo_marked_constant is True


@pytest.mark.slow
def test_import_does_not_load_dynamo():
    import subprocess
    import sys

    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, tnlayers; print(any(m.startswith('torch._dynamo') for m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert done.stdout.strip() == "False"


def test_summary_lists_circuit_layers_with_the_strategy_they_run():
    # Before, summary() silently left GivensLinear layers out.
    from tnlayers.models import QRFNN

    model = QRFNN(4, 3).eval()
    text = tnlayers.summary(model, batch=8, input_size=(4,))
    rows = [line for line in text.splitlines() if "GivensLinear" in line]
    assert len(rows) == 2
    layer = model.stack.circuits[0]
    assert f" {layer.chosen_strategy(8, training=False)} " in rows[0]
    assert "16" in rows[0] and " 5 " in rows[0]  # dense n² = 16, 2n − 3 = 5 angles
    assert tnlayers.analysis.compression_ratio(model) == pytest.approx(10 / 32)


def test_auto_reports_untimed_only_where_the_first_call_will_time():
    layer = TNLinear(tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), 4))  # predictions ~2× apart at 1 row
    the_plan = layer.plan(1)
    times = [the_plan.time(name, True) for name in ("sequential", "materialize")]
    assert max(times) > 1.5 * min(times)  # not a close call: nothing will be timed
    assert the_plan.strategies["sequential"].fewest_flops is None  # nor a grouped path to check
    before = layer.cost(1)
    assert before.basis == "model" and "within" not in before.reason
    layer(torch.randn(1, 784))
    after = layer.cost(1)
    assert (after.basis, after.strategy) == (before.basis, before.strategy)


def test_the_memoised_execution_follows_every_change_of_what_decides(monkeypatch):
    """The forward pass reuses its last execution only while nothing it was decided from has
    changed: strategy option, grad mode, batch, dtype, or a timing recorded for the key."""
    layer = tnlayers.MPOLinear(64, 64, bond=4, strategy="materialize")
    seen = _ran(monkeypatch)
    x = torch.randn(8, 64)
    layer(x)
    layer(x)
    layer.strategy = "sequential"
    layer(x)
    layer.strategy = "materialize"
    layer.double()
    layer(x.double())
    layer.float()
    with torch.no_grad():
        layer(x)
    assert seen == ["materialize", "materialize", "sequential", "materialize", "materialize"]
    # A timing recorded for the key the layer runs (here: forcing the other strategy) is seen
    # on the next call, as the registry would answer it.
    layer.strategy = "auto"
    dtype_name = tnlayers._layers.strategy.dtype_name(torch.float32)
    key = (layer._config, 8, dtype_name, "cpu", True)
    layer(x)
    for best, other in (("sequential", "materialize"), ("materialize", "sequential")):
        timing = tnlayers._layers.strategy.Timing({best: 1.0, other: 2.0})
        tnlayers._layers.strategy.REGISTRY.record(key, timing)
        layer(x)
        assert seen[-1] == best == layer.chosen_strategy(8)


def test_close_timings_get_more_rounds_before_the_choice_is_kept():
    # A timing is kept for the rest of the process, so near-ties are measured longer: one
    # warm-up, five rounds, and ten more only when the two fastest medians are within 1.3×.
    import time

    from tnlayers._layers.strategy import CLOSE_REPEATS, time_strategies

    calls = {"a": 0, "b": 0, "c": 0}

    def counted(name, seconds):
        def run():
            calls[name] += 1
            time.sleep(seconds)

        return run

    time_strategies({"a": counted("a", 0.002), "b": counted("b", 0.002)}, torch.device("cpu"))
    assert calls == {"a": 1 + 5 + CLOSE_REPEATS, "b": 1 + 5 + CLOSE_REPEATS, "c": 0}
    calls.update(a=0, b=0)
    timing = time_strategies({"a": counted("a", 0.0), "b": counted("b", 0.02)}, torch.device("cpu"))
    assert calls == {"a": 6, "b": 6, "c": 0} and timing.seconds["b"] > timing.seconds["a"]
    # With three runs (a grouped sequential path timed too), a far slower one gets no more
    # rounds: it cannot win, and its repeats are what make a first call slow.
    calls.update(a=0, b=0, c=0)
    timing = time_strategies(
        {"a": counted("a", 0.002), "b": counted("b", 0.002), "c": counted("c", 0.02)},
        torch.device("cpu"),
    )
    assert calls == {"a": 6 + CLOSE_REPEATS, "b": 6 + CLOSE_REPEATS, "c": 6}
    assert timing.best in ("a", "b") and set(timing.seconds) == {"a", "b", "c"}


def _assert_matches_the_materialized_weight(layer, x, out) -> None:
    """``out`` (float64) and its gradients equal ``x Wᵀ + b`` through the materialized ``W``."""
    expected = x @ layer.to_dense().T + layer.bias
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    tensors = list(layer.network_tensors())
    got = torch.autograd.grad(out.square().sum(), tensors)
    want = torch.autograd.grad(expected.square().sum(), tensors)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-10)


# MPO 784 → 256 of bond 2: the plan joins the cores in two halves before the batch meets them,
# a path with more FLOPs than the fewest, which the cost model predicts faster.
GROUPED_MPO = ((4, 7, 7, 4), (4, 4, 4, 4), 2)


def _fake_timings(monkeypatch, seconds: dict[str, float]) -> list[set[str]]:
    """Every timing a layer makes runs each of its runs once and reports ``seconds``."""
    timed: list[set[str]] = []

    def fake(runs, device):
        timed.append(set(runs))
        for run in runs.values():
            run()
        return Timing({name: seconds[name] for name in runs})

    monkeypatch.setattr(tnlayers._layers.linear, "time_strategies", fake)
    return timed


@pytest.mark.parametrize(
    ("batch", "seconds", "strategy", "fewest_shown"),
    [  # one batch size each: a timing is kept per size for as long as the network has layers
        (64, {"sequential": 3.0, "materialize": 5.0, FEWEST_FLOPS_RUN: 2.0}, "sequential", True),
        (65, {"sequential": 2.0, "materialize": 5.0, FEWEST_FLOPS_RUN: 3.0}, "sequential", False),
        (66, {"sequential": 4.0, "materialize": 1.0, FEWEST_FLOPS_RUN: 3.0}, "materialize", True),
    ],
)
def test_auto_checks_a_grouped_sequential_path_against_the_fewest_flops_one(
    monkeypatch, batch, seconds, strategy, fewest_shown
):
    """Where the plan keeps a path joining groups of tensors first (a bet of the cost model),
    "auto" times it beside the path with the fewest FLOPs at the first call, and runs and
    reports the faster: its programs, its steps in the cost report, its measured time."""
    layer = TNLinear(tnlayers.mpo(*GROUPED_MPO)).double()
    planned = layer.plan(batch, dtype=torch.float64).strategies["sequential"]
    assert (
        planned.fewest_flops is not None
        and planned.fewest_flops.path != planned.contractions[0].path
    )
    untimed = layer.cost(batch)
    assert untimed.basis == "untimed" and "joins groups of tensors first" in untimed.reason
    assert "the sequential one on both paths" in untimed.reason

    timed = _fake_timings(monkeypatch, seconds)
    ran_programs: list = []
    seen = _ran(monkeypatch, ran_programs)
    x = torch.randn(batch, layer.in_features, dtype=torch.float64)
    out = layer(x)
    assert timed == [{"sequential", "materialize", FEWEST_FLOPS_RUN}]
    report = layer.cost(batch)
    assert report.basis == "timed" and report.strategy == strategy == seen[-1]
    assert ran_programs[-1] == _reported_programs(report)
    shown = report.plan.strategies["sequential"]
    expected_path = planned.fewest_flops if fewest_shown else planned.contractions[0]
    assert shown.contractions == (expected_path,)
    assert report.measured_s == {
        "sequential": seconds[FEWEST_FLOPS_RUN if fewest_shown else "sequential"],
        "materialize": seconds["materialize"],
    }
    # The reason names the two sequential paths' times; the model's prediction is the plan's.
    assert "of the two sequential paths" in report.reason
    assert f"predicted {layer.plan(batch, dtype=torch.float64).choose(True)}" in report.reason
    _assert_matches_the_materialized_weight(layer, x, out)
    if strategy == "sequential":
        program = compile_contraction(expected_path)
        assert ran_programs[-1] == (program,)


def test_only_auto_and_autotune_time_the_sequential_paths(monkeypatch):
    timed = _fake_timings(monkeypatch, {})
    x = torch.randn(64, 784)
    for option in ("model", "sequential"):
        layer = TNLinear(tnlayers.mpo(*GROUPED_MPO), strategy=option)
        programs: list = []
        _ran(monkeypatch, programs)
        layer(x)
        report = layer.cost(64)
        assert report.basis in ("model", "forced") and report.measured_s is None
        kept = layer.plan(64).strategies["sequential"].contractions
        assert report.plan.strategies["sequential"].contractions == kept
        assert programs[-1] == _reported_programs(report)
    assert timed == []


def test_a_convolution_runs_and_reports_the_sequential_path_its_timing_picked(monkeypatch):
    """Convolutions always time their strategies; where the plan keeps a grouped path, the
    path with the fewest FLOPs is timed too, and the unfolded convolution runs what won."""
    conv = MPOConv2d(16, 16, 3, bond=2, padding=1).double()
    x = torch.randn(2, 16, 8, 8, dtype=torch.float64)
    rows = 2 * 8 * 8
    planned = conv.plan(rows).strategies["sequential"]
    assert planned.fewest_flops is not None
    timed = _fake_timings(
        monkeypatch, {"sequential": 3.0, "materialize": 5.0, FEWEST_FLOPS_RUN: 2.0}
    )
    ran_programs: list = []
    seen = _ran(monkeypatch, ran_programs)
    out = conv(x)
    assert timed == [{"sequential", "materialize", FEWEST_FLOPS_RUN}]
    report = conv.rows_cost(rows)
    assert report.strategy == "sequential" and report.basis == "timed"
    assert report.plan.strategies["sequential"].contractions == (planned.fewest_flops,)
    assert seen[-1] == "sequential"  # the unfolded input runs through TNLinear._run
    assert ran_programs[-1] == _reported_programs(report)
    expected = torch.nn.functional.conv2d(x, conv.weight, conv.bias, padding=1)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


def test_a_convolution_reports_untimed_until_its_first_call_times():
    """A convolution's "auto" times every new size, so before that call its report says the
    timing is still to come, even where the model's predictions are far apart."""
    conv = MPOConv2d(16, 32, 3, bond=2, padding=1)
    batch, rows = 8, 8 * 16 * 16
    the_plan = conv.plan(rows)
    times = [the_plan.time(name, True) for name in ("sequential", "materialize")]
    assert max(times) > 1.5 * min(times)  # not a close call for the cost model
    before = conv.cost(batch, image_size=(16, 16))
    assert before.basis == "untimed" and "a convolution times its real paths" in before.reason
    conv(torch.randn(batch, 16, 16, 16))
    after = conv.cost(batch)
    assert after.basis == "timed" and "timed on this machine" in after.reason


@pytest.mark.slow  # ~15 s: planning rings and trees of five cores, filtered for grouped paths
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(
    net=st.one_of(mpo_networks, ring_networks, tree_networks),
    batch=st.sampled_from([1, 3, 16]),
    fewest_wins=st.booleans(),
)
def test_a_recorded_timing_of_two_sequential_paths_is_what_runs_and_is_reported(
    net, batch, fewest_wins
):
    """For any chain, ring or tree whose plan keeps a grouped sequential path: once a timing
    says which of the two paths is faster, that path's programs run, its steps are reported,
    and the layer's output and gradients equal those through the materialized weight."""
    layer = TNLinear(net, strategy="auto").double()
    planned = layer.plan(batch).strategies["sequential"]
    assume(planned.fewest_flops is not None)
    fast, slow = (1.0, 2.0) if fewest_wins else (2.0, 1.0)
    key = (layer._config, batch, "float64", "cpu", True)
    REGISTRY.record(key, Timing({"sequential": slow, "materialize": 3.0, FEWEST_FLOPS_RUN: fast}))
    x = torch.randn(batch, net.in_features, dtype=torch.float64)
    ran: list = []
    original = TNLinear._run

    def spy(self, execution, *args, **kwargs):
        ran.append(execution[1])
        return original(self, execution, *args, **kwargs)

    with patch.object(TNLinear, "_run", spy):
        out = layer(x)
    report = layer.cost(batch)
    path = planned.fewest_flops if fewest_wins else planned.contractions[0]
    assert report.strategy == "sequential" and report.basis == "timed"
    assert report.plan.strategies["sequential"].contractions == (path,)
    assert ran == [(compile_contraction(path),)]
    _assert_matches_the_materialized_weight(layer, x, out)
