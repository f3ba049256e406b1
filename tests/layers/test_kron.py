"""QiMLP (Zhang et al.) layers: KronLinear against the explicit Kronecker sum, biases, factor
rule, init, and the paper's models."""

from __future__ import annotations

import io
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import tnlayers
from tnlayers import KronLinear, nearest_kronecker
from tnlayers.models import MLP, QiMLP

from ..reference import explicit_kron_sum
from ..strategies import kron_shapes

F64 = torch.float64


def _bodies(layer: KronLinear) -> list[torch.Tensor]:
    return [layer.tensors[f"body{m}"] for m in range(1, len(layer.network.in_dims) + 1)]


@given(kron_shapes, st.sampled_from(["sequential", "materialize"]))
def test_layer_equals_explicit_kron_sum_plus_bias(shape, strategy):
    ins, outs, terms, seed = shape
    torch.manual_seed(seed)
    layer = KronLinear(
        math.prod(ins),
        math.prod(outs),
        terms=terms,
        in_dims=ins,
        out_dims=outs,
        strategy=strategy,
        dtype=F64,
    )
    weight = explicit_kron_sum(_bodies(layer))
    torch.testing.assert_close(layer.to_dense(), weight, rtol=1e-12, atol=1e-12)
    bias = layer.bias_factors[0]
    for beta in list(layer.bias_factors)[1:]:
        bias = torch.kron(bias, beta)
    torch.testing.assert_close(layer.kron_bias(), bias)
    x = torch.randn(5, math.prod(ins), dtype=F64)
    torch.testing.assert_close(layer(x), x @ weight.T + bias, rtol=1e-10, atol=1e-10)


def test_dense_bias_and_no_bias():
    full = KronLinear(12, 6, in_dims=(3, 4), out_dims=(2, 3), bias_form="full", dtype=F64)
    x = torch.randn(4, 12, dtype=F64)
    torch.testing.assert_close(full(x), x @ full.to_dense().T + full.bias)
    none = KronLinear(12, 6, in_dims=(3, 4), out_dims=(2, 3), bias=False, dtype=F64)
    torch.testing.assert_close(none(x), x @ none.to_dense().T)
    assert none.kron_bias() is None and none.bias is None


def test_factor_rule_and_counts():
    assert [tnlayers.contraction.kronecker_factors(784, m) for m in (2, 3, 4)] == [
        (28, 28),
        (7, 7, 16),
        (4, 4, 7, 7),
    ]
    layer = KronLinear(784, 784, bodies=3, terms=2)
    assert layer.network.in_dims == (7, 7, 16)
    assert sum(p.numel() for p in layer.parameters()) == 2 * (49 + 49 + 256) + 30


def test_errors_name_sizes_and_zero_bias_warns():
    with pytest.raises(tnlayers.ShapeError, match=r"in_dims \(28, 27\) multiply to 756"):
        KronLinear(784, 784, in_dims=(28, 27), out_dims=(28, 28))
    with pytest.raises(tnlayers.OptionError, match="unknown bias_form 'dense'"):
        KronLinear(16, 16, bias_form="dense")  # type: ignore[arg-type]
    with pytest.raises(tnlayers.ArgumentTypeError, match=r"bias must be True or False.*bias_form"):
        KronLinear(16, 16, bias="kron")  # type: ignore[arg-type]
    with pytest.warns(UserWarning, match="stays zero for ever"):
        layer = KronLinear(16, 16, bias_init="zeros")
    # ... and indeed it never moves: each factor's gradient is a product with the other, zero one.
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        layer(torch.randn(8, 16)).pow(2).sum().backward()
        opt.step()
    assert torch.count_nonzero(layer.kron_bias()) == 0


def test_paper_init_scale_and_gradcheck_and_state_dict():
    layer = KronLinear(64, 64, bodies=2, terms=3, init="paper", dtype=F64)
    body = layer.tensors["body1"].detach()
    assert float(body.std()) == pytest.approx(0.02, rel=0.15)
    names = [n for n, _ in layer.named_parameters()]
    assert "bias_factors.0" in names
    x = torch.randn(3, 64, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, *p: torch.func.functional_call(layer, dict(zip(names, p, strict=True)), (x,)),
        (x, *layer.parameters()),
    )
    buffer = io.BytesIO()
    torch.save(layer.state_dict(), buffer)
    buffer.seek(0)
    fresh = KronLinear(64, 64, bodies=2, terms=3, dtype=F64)
    fresh.load_state_dict(torch.load(buffer))
    for key, value in layer.state_dict().items():
        assert torch.equal(value, fresh.state_dict()[key]), key


def test_sequential_path_is_cheaper_than_dense_for_two_bodies():
    layer = KronLinear(784, 784, bodies=2)
    report = layer.cost(1024, mode="inference")
    sequential = report.plan.strategies["sequential"].flops
    # Two mode products of 784·28 multiply-adds per row each, not 784² per row.
    assert sequential == pytest.approx(2 * 2 * 1024 * 784 * 28, rel=0.01)
    assert report.strategy == "sequential"


def test_from_linear_copies_bias_and_matches_nearest_kronecker():
    torch.manual_seed(0)
    linear = nn.Linear(36, 24, dtype=F64)
    layer = KronLinear.from_linear(linear, 2, in_dims=(6, 6), out_dims=(4, 6))
    expected = nearest_kronecker(linear.weight, (6, 6), (4, 6), 2)
    torch.testing.assert_close(layer.to_dense(), expected.to_dense())
    torch.testing.assert_close(layer.bias, linear.bias)
    kron_bias = KronLinear.from_linear(
        linear, 2, in_dims=(6, 6), out_dims=(4, 6), bias_form="kron"
    ).kron_bias()
    best = nearest_kronecker(linear.bias.detach()[:, None], (1, 1), (4, 6)).to_dense()[:, 0]
    torch.testing.assert_close(kron_bias, best)
    exact = KronLinear.from_linear(linear, 24, in_dims=(6, 6), out_dims=(4, 6))
    x = torch.randn(3, 36, dtype=F64)
    torch.testing.assert_close(exact(x), linear(x), rtol=1e-9, atol=1e-9)


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_mnist_parameter_counts_match_the_paper():
    assert _count(MLP("mnist")) == 1_238_730
    assert [_count(QiMLP(m)) for m in (2, 3, 4)] == [3_451, 769, 357]
    assert _count(QiMLP(4, out_dims=(1, 2, 5, 1))) == 349  # the released script
    assert [_count(QiMLP(2, k)) for k in (1, 2, 3, 4)] == [3_451, 6_783, 10_115, 13_447]
    assert [_count(QiMLP(3, k)) for k in (1, 2, 3, 4)] == [769, 1_470, 2_171, 2_872]
    sweep_4b = [_count(QiMLP(4, k, bias_form="full", out_dims=(1, 2, 5, 1))) for k in (1, 2, 3, 4)]
    assert sweep_4b == [1_874, 2_170, 2_466, 2_762]
    assert _count(MLP("mnist")) / _count(QiMLP(2)) > 200


def test_cifar_parameter_counts_match_the_paper():
    assert _count(MLP("cifar")) == 37_791_754
    assert [_count(QiMLP(m, dataset="cifar")) for m in (2, 3)] == [38_010, 15_014]
    assert [_count(QiMLP(2, k, dataset="cifar")) for k in (1, 2, 3)] == [38_010, 63_722, 89_434]
    assert [_count(QiMLP(3, k, dataset="cifar")) for k in (1, 2, 3)] == [15_014, 17_730, 20_446]


def test_models_run_and_the_mlp_drops_out_its_logits():
    x = torch.rand(4, 784)
    assert QiMLP(3, 2)(x).shape == (4, 10)
    mlp = MLP()
    assert isinstance(mlp.layers[-1], nn.Dropout)
    assert [type(m).__name__ for m in QiMLP(2).layers] == [
        "KronLinear",
        "GELU",
        "KronLinear",
        "GELU",
        "KronLinear",
    ]
    with pytest.raises(tnlayers.OptionError, match="bodies in"):
        QiMLP(4, dataset="cifar")
