"""Nearest Kronecker sums (QiMLP, Zhang et al.): exact recovery, exact and non-increasing error,
the SVD optimum for two bodies."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given

from tnlayers import nearest_kronecker

from ..reference import explicit_kron_sum
from ..strategies import kron_shapes

F64 = torch.float64


@given(kron_shapes)
def test_nearest_kronecker_recovers_an_exact_sum(shape):
    ins, outs, terms, seed = shape
    gen = torch.Generator().manual_seed(seed)
    factors = [
        torch.randn(terms, p, q, dtype=F64, generator=gen) for p, q in zip(ins, outs, strict=True)
    ]
    weight = explicit_kron_sum(factors)
    approx = nearest_kronecker(weight, ins, outs, terms)
    true_error = float((approx.to_dense() - weight).norm() / weight.norm())
    assert approx.error == pytest.approx(true_error, abs=1e-12)  # the reported error is exact
    if len(ins) == 2:  # the SVD: optimal, so an exact sum comes back exactly
        assert approx.error < 1e-10
        torch.testing.assert_close(approx.to_dense(), weight, rtol=1e-8, atol=1e-8)
    else:
        # CP by ALS has no such guarantee (documented): rank-2 tensors of order 3 can sit in a
        # "swamp" where ALS creeps (hypothesis found 2×2×2, two terms: 1.2e-3 after 500 sweeps,
        # 1.5e-10 after 20,000). It still gets close, and says how close.
        assert approx.error < 1e-2


@pytest.mark.parametrize(("ins", "outs"), [((6, 5), (4, 6)), ((3, 4, 2), (2, 3, 3))])
def test_nearest_kronecker_error_is_exact_and_non_increasing(ins, outs):
    gen = torch.Generator().manual_seed(1)
    weight = torch.randn(math.prod(outs), math.prod(ins), dtype=F64, generator=gen)
    errors = []
    for terms in range(1, 7):
        approx = nearest_kronecker(weight, ins, outs, terms)
        direct = torch.linalg.norm(approx.to_dense() - weight) / torch.linalg.norm(weight)
        assert approx.error == pytest.approx(float(direct), abs=1e-12)
        errors.append(approx.error)
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(errors))


def test_two_body_nearest_kronecker_is_the_svd_optimum():
    gen = torch.Generator().manual_seed(2)
    weight = torch.randn(20, 12, dtype=F64, generator=gen)
    # Rearranged: rows (i1, j1), columns (i2, j2); its singular values bound every K-term fit.
    rearranged = weight.reshape(4, 5, 3, 4).permute(2, 0, 3, 1).reshape(12, 20)
    s = torch.linalg.svdvals(rearranged)
    for terms in (1, 2, 5):
        optimum = float(s[terms:].pow(2).sum().sqrt() / s.pow(2).sum().sqrt())
        assert nearest_kronecker(weight, (3, 4), (4, 5), terms).error == pytest.approx(optimum)
