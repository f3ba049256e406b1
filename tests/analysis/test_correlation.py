"""Correlation and entanglement measures of trained layers (QiMLP, Zhang et al.)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import tnlayers
from tnlayers.analysis import strong_correlation, von_neumann_entropy
from tnlayers.models import QiMLP

F64 = torch.float64


def test_entropy_of_pure_and_maximally_mixed_states():
    v = torch.randn(6, dtype=F64)
    pure = torch.outer(v, v) / v.dot(v)
    assert float(von_neumann_entropy(pure)) == pytest.approx(0.0, abs=1e-12)
    for d in (2, 5, 28):
        mixed = torch.eye(d, dtype=F64) / d
        assert float(von_neumann_entropy(mixed)) == pytest.approx(math.log(d), abs=1e-12)


def test_product_state_has_no_total_correlation_and_c_is_minus_the_mixture_entropy():
    gen = torch.Generator().manual_seed(3)
    a, b = torch.randn(50, 7, generator=gen), torch.randn(50, 7, generator=gen)
    y = torch.einsum("na,nb->nab", a, b).reshape(50, 49)
    result = strong_correlation(y, (7, 7))
    assert torch.all(result.total.abs() < 1e-10)
    a_hat = a.double() / a.double().norm(dim=1, keepdim=True)
    b_hat = b.double() / b.double().norm(dim=1, keepdim=True)
    mix = 0.5 * (
        torch.einsum("na,nb->nab", a_hat, a_hat) + torch.einsum("na,nb->nab", b_hat, b_hat)
    )
    torch.testing.assert_close(result.strong, -von_neumann_entropy(mix))
    assert result.strong_fraction == 0.0


@given(st.integers(0, 1000), st.sampled_from([(4, 4), (3, 5), (6, 2)]))
def test_correlation_identities(seed, dims):
    gen = torch.Generator().manual_seed(seed)
    y = torch.randn(20, dims[0] * dims[1], generator=gen)
    result = strong_correlation(y, dims)
    torch.testing.assert_close(result.entropy_a, result.entropy_b)  # same non-zero spectrum
    assert torch.all(result.entropy_ab == 0)  # ρ_AB is pure
    torch.testing.assert_close(result.total, 2 * result.entropy_a)
    s_e = result.entropy_a
    assert torch.all(result.strong <= s_e + 1e-10)
    assert torch.all(result.strong >= s_e - math.log(2) - 1e-10)


def test_random_vectors_are_strongly_correlated_and_the_product_reading_never_is():
    y = torch.randn(100, 784, generator=torch.Generator().manual_seed(4))
    result = strong_correlation(y, (28, 28))
    assert float(result.strong.mean()) == pytest.approx(2.6, abs=0.1)
    product = strong_correlation(y[:10], (28, 28), reading="product", steps=50)
    assert torch.all(product.total.abs() < 1e-9)
    assert torch.all(product.strong <= 0)


def test_correlation_report_covers_hidden_two_body_layers(tmp_path):
    model = QiMLP(2)
    report = tnlayers.analysis.correlation_report(model, torch.rand(64, 784))
    assert list(report) == ["layers.0", "layers.2"]
    assert all(r.strong.shape == (64,) for r in report.values())
    fig = tnlayers.analysis.plot_correlation(report, tmp_path / "sc.png")
    assert (tmp_path / "sc.png").stat().st_size > 0 and len(fig.axes) == 2
    with pytest.raises(ValueError, match="no hidden two-body"):
        tnlayers.analysis.correlation_report(QiMLP(3), torch.rand(4, 784))
    with pytest.raises(tnlayers.ShapeError, match=r"\(samples, 4·4 = 16\)"):
        strong_correlation(torch.randn(3, 15), (4, 4))


def test_correlation_report_skips_dead_outputs():
    model = QiMLP(2)
    x = torch.rand(6, 784)
    with torch.no_grad():  # layer 1 outputs only its bias, -1 everywhere: relu kills it
        model.layers[0].tensors["body1"].zero_()
        model.layers[0].bias_factors[0].fill_(1.0)
        model.layers[0].bias_factors[1].fill_(-1.0)
    report = tnlayers.analysis.correlation_report(model, x, activation=torch.relu)
    assert report["layers.0"].skipped == 6
    assert report["layers.0"].strong.numel() == 0
