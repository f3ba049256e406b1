"""Builders and factorisation: parameter counts against closed forms and the papers."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tnlayers
from tnlayers import NetworkSpecError


@given(
    st.integers(2, 5).flatmap(
        lambda n: st.tuples(
            st.lists(st.integers(1, 9), min_size=n, max_size=n),
            st.lists(st.integers(1, 9), min_size=n, max_size=n),
            st.lists(st.integers(1, 9), min_size=n - 1, max_size=n - 1),
        )
    )
)
def test_mpo_parameter_count_is_eq_6(dims):
    ins, outs, bonds = dims
    d = [1, *bonds, 1]
    expected = sum(i * j * d[k] * d[k + 1] for k, (i, j) in enumerate(zip(ins, outs, strict=True)))
    assert tnlayers.mpo(ins, outs, bonds).num_params == expected


@given(
    st.integers(2, 4).flatmap(
        lambda m: st.tuples(
            st.lists(st.integers(1, 9), min_size=m, max_size=m),
            st.lists(st.integers(1, 9), min_size=m, max_size=m),
            st.integers(1, 5),
        )
    )
)
def test_kronecker_parameter_count(dims):
    ins, outs, k = dims
    net = tnlayers.kronecker(ins, outs, k)
    assert net.num_params == k * sum(p * q for p, q in zip(ins, outs, strict=True))
    assert net.in_features == math.prod(ins) and net.out_features == math.prod(outs)


def test_low_rank_parameter_count():
    assert tnlayers.low_rank(784, 256, 16).num_params == 16 * (784 + 256)


def test_fc2_at_bond_2_has_the_papers_1024_parameters():
    layer1 = tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), 2)
    layer2 = tnlayers.mpo((4, 4, 4, 4), (1, 1, 10, 1), 4)
    assert layer1.num_params == 288
    assert layer2.num_params == 736
    assert layer1.num_params + layer2.num_params == 1024
    dense = layer1.dense_params + layer2.dense_params
    assert dense == 203_264
    assert round(dense / 1024, 1) == 198.5


def test_lenet5_mpo_ratio_is_about_five_percent():
    nets = [
        tnlayers.mpo((2, 10, 10, 2), (2, 5, 6, 2), 4),
        tnlayers.mpo((2, 5, 6, 2), (2, 3, 7, 2), 4),
        tnlayers.mpo((2, 3, 7, 2), (1, 5, 2, 1), 2),
    ]
    assert [n.num_params for n in nets] == [1792, 944, 124]
    ratio = sum(n.num_params for n in nets) / sum(n.dense_params for n in nets)
    assert ratio == pytest.approx(2860 / 58920)
    assert abs(ratio - 0.05) < 0.002


def test_mpo_legs_follow_seed_003_storage():
    net = tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), 3)
    assert net.legs("core1") == ("j1", "i1", "b1")
    assert net.legs("core2") == ("b1", "j2", "i2", "b2")
    assert net.legs("core4") == ("b3", "j4", "i4")
    assert net.inputs == ("i1", "i2", "i3", "i4")


def test_mpo_errors():
    with pytest.raises(NetworkSpecError, match=r"as many input legs as output legs"):
        tnlayers.mpo((4, 7), (4, 4, 4), 2)
    with pytest.raises(NetworkSpecError, match=r"3 cores has 2 bonds, got bond=\(2, 2, 2\)"):
        tnlayers.mpo((2, 2, 2), (2, 2, 2), (2, 2, 2))
    with pytest.raises(NetworkSpecError, match=r"bond must be a positive integer, got 0"):
        tnlayers.mpo((2, 2), (2, 2), 0)
    with pytest.raises(NetworkSpecError, match=r"bond b2 must be a positive integer, got 0"):
        tnlayers.mpo((2, 2, 2), (2, 2, 2), (3, 0))


@given(st.integers(1, 5000), st.integers(1, 5))
def test_factorize_covers_the_size_with_little_padding(n, parts):
    f = tnlayers.contraction.factorize(n, parts)
    assert len(f.dims) == parts
    assert math.prod(f.dims) == f.padded >= n
    assert f.padding <= math.ceil(0.1 * n)


def test_factorize_pads_primes_and_keeps_seed_shapes():
    assert tnlayers.contraction.factorize(784, 4).dims == (4, 7, 7, 4)
    assert tnlayers.contraction.factorize(784, 2).dims == (28, 28)
    f = tnlayers.contraction.factorize(997, 3)
    assert f.padding > 0 and max(f.dims) <= 12


def test_automatic_factorisation_of_primes_in_a_layer_network():
    net = tnlayers.mpo(997, 13, 3, cores=2)
    assert (net.in_features, net.out_features) == (997, 13)
    assert net.is_padded
    assert net.padded_in_features >= 997
