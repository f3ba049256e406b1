"""TNLinear: equals x @ W.T + b, gradients, init, caching, state_dict, errors, dtypes."""

import itertools
import math

import opt_einsum
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import tnlayers
from tnlayers import ArgumentTypeError, OptionError, ShapeError, TNLinear

from ..strategies import any_network

# Batch sizes on both sides of the strategy switch for the networks generated here.
BATCHES = [1, 3, 64, 2048]


@given(any_network, st.sampled_from(BATCHES), st.booleans())
def test_output_equals_dense_weight_float64(net, batch, bias):
    layer = TNLinear(net, bias=bias, dtype=torch.float64)
    x = torch.randn(batch, net.in_features, dtype=torch.float64)
    weight = layer.to_dense()
    expected = x @ weight.T + (layer.bias if bias else 0)
    for strategy in ("auto", "sequential", "materialize"):
        layer.strategy = strategy
        torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-10)


@given(any_network, st.sampled_from(BATCHES))
def test_output_equals_dense_weight_float32(net, batch):
    layer = TNLinear(net)
    x = torch.randn(batch, net.in_features)
    expected = (x.double() @ layer.to_dense().double().T + layer.bias.double()).float()
    for strategy in ("sequential", "materialize"):
        layer.strategy = strategy
        torch.testing.assert_close(layer(x), expected, rtol=1e-4, atol=1e-4)


def test_auto_strategy_really_flips_between_batches():
    layer = TNLinear(tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), 8), strategy="model")
    assert layer.chosen_strategy(1, training=True) == "sequential"
    assert layer.chosen_strategy(4096, training=True) == "materialize"


def test_leading_dimensions_are_kept():
    layer = TNLinear(tnlayers.kronecker((2, 3), (4, 5), 2), dtype=torch.float64)
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    y = layer(x)
    assert y.shape == (2, 3, 5, 20)
    torch.testing.assert_close(y, x @ layer.to_dense().T + layer.bias)


def _gradcheck_layer(layer, batch=3):
    x = torch.randn(batch, layer.in_features, dtype=torch.float64, requires_grad=True)
    names = [name for name, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_() for _, p in layer.named_parameters()]

    def fn(x, *ps):
        return torch.func.functional_call(layer, dict(zip(names, ps, strict=True)), (x,))

    return torch.autograd.gradcheck(fn, (x, *params))


@given(any_network)
def test_gradcheck_float64(net):
    assert _gradcheck_layer(TNLinear(net, dtype=torch.float64))


@pytest.mark.parametrize("strategy", ["sequential", "materialize"])
def test_gradcheck_both_strategies(strategy):
    net = tnlayers.mpo((2, 3, 2), (3, 2, 2), (2, 3))
    layer = TNLinear(net, dtype=torch.float64, strategy=strategy)
    assert _gradcheck_layer(layer, batch=4)


@given(any_network)
def test_initial_weight_has_linear_default_std(net):
    layer = TNLinear(net, bias=False)
    weight = layer.to_dense()
    target = 1 / math.sqrt(3 * net.in_features)
    std = weight.pow(2).mean().sqrt().item()
    assert abs(std - target) <= 0.25 * target


def test_initial_std_matches_nn_linear_for_large_layers():
    for net in (
        tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), 8),
        tnlayers.kronecker((28, 28), (28, 28), 4),
    ):
        dense = nn.Linear(net.in_features, net.out_features).weight.std().item()
        ours = TNLinear(net).to_dense().std().item()
        assert abs(ours - dense) <= 0.25 * dense


def test_parameters_are_the_node_tensors():
    net = tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), 2)
    layer = TNLinear(net)
    names = [name for name, _ in layer.named_parameters()]
    assert sorted(names) == [
        "bias",
        "tensors.core1",
        "tensors.core2",
        "tensors.core3",
        "tensors.core4",
    ]
    assert sum(p.numel() for p in layer.tensors.values()) == net.num_params == layer.num_params


def test_state_dict_round_trip_into_a_fresh_layer():
    net = tnlayers.kronecker((3, 4, 5), (2, 3, 4), 2)
    layer = TNLinear(net)
    x = torch.randn(16, net.in_features)
    layer(x)  # populate plan caches first: they must not leak into the state dict
    with torch.no_grad():
        layer.eval()
        layer(x)  # and the inference weight cache
    state = layer.state_dict()
    assert sorted(state) == ["bias", "tensors.body1", "tensors.body2", "tensors.body3"]
    fresh = TNLinear(tnlayers.Network.from_json(net.to_json()))
    fresh.load_state_dict(state)
    assert torch.equal(fresh(x), layer(x))
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, state[key])


def test_plan_is_computed_once_then_reused(monkeypatch):
    net = tnlayers.mpo((3, 5, 2), (2, 5, 3), 3)
    layer = TNLinear(net)
    x = torch.randn(37, net.in_features)
    calls = []
    real = opt_einsum.contract_path

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(opt_einsum, "contract_path", counting)
    layer(x)
    first = len(calls)
    assert first > 0
    for _ in range(3):
        layer(x)
    assert len(calls) == first  # no re-planning on later calls


def test_autotune_picks_a_strategy_and_stays_correct():
    net = tnlayers.mpo((4, 4, 4), (4, 4, 4), 4)
    layer = TNLinear(net, strategy="autotune", dtype=torch.float64)
    x = torch.randn(32, 64, dtype=torch.float64)
    for p in layer.parameters():
        p.grad = torch.full_like(p, 7.0)  # e.g. mid gradient accumulation
    y = layer(x)
    assert layer.chosen_strategy(32, training=True) in ("sequential", "materialize")
    torch.testing.assert_close(y, x @ layer.to_dense().T + layer.bias)
    # Timing ran on detached copies: accumulated gradients are untouched.
    assert all(torch.equal(p.grad, torch.full_like(p, 7.0)) for p in layer.parameters())


def test_model_strategy_is_the_cost_models_choice():
    net = tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), 8)
    layer = TNLinear(net, strategy="model")
    for batch in (1, 64, 4096):
        assert layer.chosen_strategy(batch, training=True) == tnlayers.cost(net, batch).strategy


def test_padding_for_prime_features():
    net = tnlayers.mpo(37, 11, 2, cores=2)
    assert net.is_padded
    layer = TNLinear(net, dtype=torch.float64)
    assert layer.to_dense().shape == (11, 37)
    x = torch.randn(5, 37, dtype=torch.float64)
    for strategy in ("sequential", "materialize"):
        layer.strategy = strategy
        torch.testing.assert_close(layer(x), x @ layer.to_dense().T + layer.bias)


def test_wrong_input_size_names_the_legs():
    layer = TNLinear(tnlayers.mpo((4, 7), (2, 2), 2))
    with pytest.raises(
        ShapeError,
        match=r"input has shape \(3, 27\), but the layer expects "
        r"\(\.\.\., 28\): its last dimension feeds the input legs i1 \(4\) × i2 \(7\)",
    ):
        layer(torch.randn(3, 27))


def test_wrong_dtype_is_reported():
    layer = TNLinear(tnlayers.low_rank(4, 4, 2))
    with pytest.raises(ShapeError, match=r"input dtype torch.float64 does not match"):
        layer(torch.randn(2, 4, dtype=torch.float64))


def test_bad_constructor_arguments():
    with pytest.raises(ArgumentTypeError, match=r"needs a tnlayers\.Network, got dict"):
        TNLinear({"A": {"i": 2}})
    with pytest.raises(OptionError, match="unknown strategy 'fast'"):
        TNLinear(tnlayers.low_rank(4, 4, 2), strategy="fast")
    with pytest.raises(ShapeError, match=r"tensor 'U' has legs \('j', 'r'\) of sizes \(4, 2\)"):
        TNLinear.from_tensors(
            tnlayers.low_rank(4, 4, 2), {"U": torch.zeros(2, 4), "V": torch.zeros(2, 4)}
        )


def test_to_dtype_and_device_moves_everything():
    layer = TNLinear(tnlayers.mpo((2, 3), (3, 2), 2))
    x = torch.randn(4, 6)
    y32 = layer(x)
    layer.to(torch.float64)
    assert all(p.dtype == torch.float64 for p in layer.parameters())
    y64 = layer(x.double())
    torch.testing.assert_close(y64.float(), y32)
    layer.to("cpu")
    assert layer(x.double()).device.type == "cpu"


@pytest.mark.parametrize("strategy", ["sequential", "materialize"])
def test_autocast_bfloat16_contracts_in_float32(strategy):
    net = tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), 4)
    layer = TNLinear(net, strategy=strategy)
    x = torch.randn(32, 784)
    reference = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x)
    assert y.dtype == torch.bfloat16
    # bf16 has an 8-bit mantissa: a relative error of a few 1e-3 is its rounding, not ours.
    error = (y.float() - reference).norm() / reference.norm()
    assert error < 2e-2
    y.float().sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in layer.parameters())


def test_layer_cost_report_matches_its_strategy():
    layer = TNLinear(tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), 8), strategy="model")
    assert layer.cost(1).strategy == layer.chosen_strategy(1, training=True)
    assert layer.cost(4096).strategy == layer.chosen_strategy(4096, training=True)
    assert "TNLinear" in tnlayers.summary(nn.Sequential(layer, nn.ReLU()))


def test_pickled_layer_re_derives_its_plan_registry_id():
    import io

    net = tnlayers.mpo((3, 4), (4, 3), 2)
    layer = TNLinear(net)
    x = torch.randn(5, 12)
    expected = layer(x)
    layer._config = -12345  # as if the id came from another process's registry
    buffer = io.BytesIO()
    torch.save(layer, buffer)
    buffer.seek(0)
    again = torch.load(buffer, weights_only=False)
    torch.testing.assert_close(again(x), expected)


@given(any_network, st.integers(0, 2**31 - 1))
def test_compiled_programs_match_opt_einsum_values_and_gradients_float64(net, seed):
    # Independent of the programs' own permutations, leg orders and bmm layouts: the plain
    # contraction by opt_einsum (greedy path), values and gradients, for both strategies.
    from tnlayers.contraction import compile_contraction, plan, run_program

    generator = torch.Generator().manual_seed(seed)
    the_plan = plan(net, 3)
    for name in ("sequential", "materialize"):
        contraction = the_plan.strategies[name].contractions[0]
        operands = [
            torch.randn(shape, dtype=torch.float64, generator=generator, requires_grad=True)
            for shape in contraction.shapes()
        ]
        got = run_program(compile_contraction(contraction), operands)
        want = opt_einsum.contract(
            contraction.equation(), *operands, backend="torch", optimize="greedy"
        )
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
        cotangent = torch.randn(want.shape, dtype=torch.float64, generator=generator)
        got_grads = torch.autograd.grad(got, operands, cotangent)
        want_grads = torch.autograd.grad(want, operands, cotangent)
        for a, b in zip(got_grads, want_grads, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_a_weight_build_lands_its_last_step_in_few_blocks():
    # The last step orders each factor's free legs as the weight wants them, so the result is
    # copied in 4 blocks of whole (j-legs, i-legs) runs instead of interleaving 8 single legs
    # (measured 5x slower on the project CPU for MPO 784→256).
    from tnlayers.contraction import compile_contraction, plan

    net = tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), 2)
    last = compile_contraction(plan(net, 1).strategies["materialize"].contractions[0]).steps[-1]
    perm = last.out_perm
    blocks = 1 + sum(1 for a, b in itertools.pairwise(perm) if b != a + 1)
    assert blocks == 4, perm


@pytest.mark.parametrize("batch", [1, 5])
def test_programs_skip_permutes_of_unit_legs_and_identity_reshapes(batch):
    # A Kronecker layer of one term has a size-1 term leg: moving it keeps the memory order, so
    # the program permutes only where data really moves (each skipped call is an autograd node
    # less). Values and gradients against the dense weight, at batch 1 too.
    layer = tnlayers.KronLinear(784, 784, bodies=2, terms=1, bias_form="full", dtype=torch.float64)
    strategy, (program,) = layer._execution(batch, torch.float64, torch.device("cpu"), True)
    assert strategy == "sequential"
    first = program.steps[0]
    # The body (1, 28, 28) enters as it is; (1, 0, 2) moving its term leg would be a no-op.
    assert first.perm_b is None and first.shape_b is None, first
    x = torch.randn(batch, 784, dtype=torch.float64, requires_grad=True)
    y = layer(x)
    want = x @ layer.to_dense().T + layer.bias
    torch.testing.assert_close(y, want, rtol=1e-12, atol=1e-12)
    cotangent = torch.randn_like(y)
    got = torch.autograd.grad(y, [x, *layer.parameters()], cotangent)
    expected = torch.autograd.grad(want, [x, *layer.parameters()], cotangent)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
