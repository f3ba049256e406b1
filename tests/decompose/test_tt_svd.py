"""TT-SVD and the MPO value type (Gao et al. 2020, MPO-Net): exactness, error bounds, canonical
forms, truncation and bond entropy."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import tnlayers
from tnlayers import tt_svd
from tnlayers.compression import MPO

from ..reference import relative_error

F64 = torch.float64


def _random_mpo(seed: int, in_dims, out_dims, bonds) -> MPO:
    gen = torch.Generator().manual_seed(seed)
    sizes = [1, *bonds, 1]
    cores = tuple(
        torch.randn(sizes[k], j, i, sizes[k + 1], dtype=F64, generator=gen)
        for k, (i, j) in enumerate(zip(in_dims, out_dims, strict=True))
    )
    return MPO(cores, math.prod(in_dims), math.prod(out_dims))


mpo_shapes = st.integers(2, 4).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(1, 4), min_size=n, max_size=n),
        st.lists(st.integers(1, 4), min_size=n, max_size=n),
        st.lists(st.integers(1, 5), min_size=n - 1, max_size=n - 1),
        st.integers(0, 10_000),
    )
)


@given(mpo_shapes)
def test_tt_svd_exact_at_full_bond_and_error_non_increasing(shape):
    in_dims, out_dims, _, seed = shape
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(math.prod(out_dims), math.prod(in_dims), dtype=F64, generator=gen)
    exact = tt_svd(w, in_dims, out_dims)
    assert exact.error < 1e-12
    torch.testing.assert_close(exact.mpo.to_dense(), w, rtol=0, atol=1e-10)
    errors = []
    for bond in range(1, max(exact.mpo.bonds) + 1):
        approx = tt_svd(w, in_dims, out_dims, max_bond=bond)
        assert max(approx.mpo.bonds) <= bond
        # The reported error is the real one, not a bound.
        assert approx.error == pytest.approx(relative_error(approx.mpo.to_dense(), w), abs=1e-9)
        errors.append(approx.error)
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(errors))
    assert errors[-1] < 1e-12


def test_tt_svd_tolerance_bound_and_padding():
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(30, 97, dtype=F64, generator=gen)  # 97 is prime: padded legs
    for tol in (0.05, 0.3, 0.7):
        approx = tt_svd(w, cores=3, rel_error=tol)
        assert approx.error <= tol + 1e-12
        assert approx.mpo.to_dense().shape == (30, 97)
        assert approx.error == pytest.approx(relative_error(approx.mpo.to_dense(), w), abs=1e-9)
    padded = tt_svd(w, cores=3).mpo
    assert padded.is_padded and math.prod(padded.in_dims) > 97
    cut = padded.truncate(max_bond=2)
    assert cut.error == pytest.approx(
        relative_error(cut.mpo.to_dense(), padded.to_dense()), abs=1e-9
    )


def test_tt_svd_bad_input_names_sizes():
    w = torch.randn(16, 20)
    with pytest.raises(tnlayers.ShapeError, match=r"in_dims \(2, 2\) multiply to 4"):
        tt_svd(w, (2, 2), (4, 4))
    with pytest.raises(tnlayers.OptionError, match="max_bond"):
        tt_svd(w, (4, 5), (4, 4), max_bond=0)
    with pytest.raises(tnlayers.OptionError, match="rel_error"):
        tt_svd(w, (4, 5), (4, 4), rel_error=1.5)
    with pytest.raises(tnlayers.NetworkSpecError, match="as many input legs"):
        tt_svd(w, (4, 5), (2, 2, 4))


def _left_unfold(core):
    return core.reshape(-1, core.shape[3])


def _right_unfold(core):
    return core.reshape(core.shape[0], -1)


@given(mpo_shapes)
def test_canonical_forms_keep_the_weight_and_make_cores_isometric(shape):
    in_dims, out_dims, bonds, seed = shape
    values = _random_mpo(seed, in_dims, out_dims, bonds)
    dense = values.to_dense()
    n = len(in_dims)
    for form, center in [("left", None), ("right", None), *[("mixed", c) for c in range(1, n + 1)]]:
        canon = values.canonical(form, center)
        torch.testing.assert_close(canon.to_dense(), dense, rtol=1e-10, atol=1e-10)
        site = {"left": n, "right": 1}.get(form, center)
        for k, core in enumerate(canon.cores, start=1):
            if k < site:
                q = _left_unfold(core)
                torch.testing.assert_close(
                    q.T @ q, torch.eye(q.shape[1], dtype=F64), atol=1e-10, rtol=0
                )
            elif k > site:
                q = _right_unfold(core)
                torch.testing.assert_close(
                    q @ q.T, torch.eye(q.shape[0], dtype=F64), atol=1e-10, rtol=0
                )
        assert canon.norm() == pytest.approx(float(torch.linalg.norm(dense)), rel=1e-10)


@given(mpo_shapes)
def test_truncation_error_is_exact_and_bonds_capped(shape):
    in_dims, out_dims, bonds, seed = shape
    values = _random_mpo(seed, in_dims, out_dims, bonds)
    for cap in (1, 2):
        cut = values.truncate(max_bond=cap)
        assert max(cut.mpo.bonds) <= cap
        assert cut.error == pytest.approx(
            relative_error(cut.mpo.to_dense(), values.to_dense()), abs=1e-9
        )


def test_canonical_rejects_bad_options():
    values = _random_mpo(0, (2, 2), (2, 2), (2,))
    with pytest.raises(tnlayers.OptionError, match=r"center in 1\.\.2"):
        values.canonical("mixed", 3)
    with pytest.raises(tnlayers.OptionError, match="unknown form"):
        values.canonical("upper")  # type: ignore[arg-type]


def test_entropy_of_a_product_mpo_is_zero():
    values = _random_mpo(1, (4, 7, 7, 4), (4, 4, 4, 4), (1, 1, 1))
    assert torch.all(values.entanglement_entropy().abs() < 1e-12)


@pytest.mark.parametrize("rank", [1, 2, 3, 5])
def test_entropy_of_a_maximally_entangled_cut_is_log_rank(rank):
    # W = Σ_a |a⟩⟨a|_left ⊗ |a⟩⟨a|_right: equal Schmidt weights at the single cut.
    gen = torch.Generator().manual_seed(rank)
    left, _ = torch.linalg.qr(torch.randn(6 * 4, rank, dtype=F64, generator=gen))
    right, _ = torch.linalg.qr(torch.randn(5 * 3, rank, dtype=F64, generator=gen))
    cores = (left.reshape(1, 6, 4, rank), right.T.reshape(rank, 5, 3, 1))
    values = MPO(cores, 12, 30)
    entropy = values.entanglement_entropy()
    assert entropy.shape == (1,)
    assert float(entropy[0]) == pytest.approx(math.log(rank), abs=1e-12)
    torch.testing.assert_close(values.bond_spectra()[0], torch.ones(rank, dtype=F64))


@given(mpo_shapes)
def test_entropy_matches_explicit_cut_svd_and_bound(shape):
    in_dims, out_dims, bonds, seed = shape
    values = _random_mpo(seed, in_dims, out_dims, bonds)
    n = len(in_dims)
    tensor = values.to_dense().reshape(*out_dims, *in_dims)
    sites = tensor.permute([p for k in range(n) for p in (k, n + k)])
    for k, entropy in enumerate(values.entanglement_entropy().tolist(), start=1):
        left = math.prod(in_dims[:k]) * math.prod(out_dims[:k])
        s = torch.linalg.svdvals(sites.reshape(left, -1))
        p = s**2 / (s**2).sum()
        p = p[p > 1e-30]
        assert entropy == pytest.approx(float(-(p * p.log()).sum()), abs=1e-8)
        assert entropy <= math.log(min(bonds[k - 1], left, sites.numel() // left)) + 1e-9
