"""fit: any network fitted to a dense weight by alternating least squares — exact recovery of
structured matrices, monotone error, never worse than the closed forms, dtypes, validation."""

from __future__ import annotations

import pytest
import torch

import tnlayers
from tnlayers import TNLinear, fit, tt_svd
from tnlayers.contraction import contract_weight

F64 = torch.float64

STRUCTURES = {
    "mpo": lambda: tnlayers.mpo((3, 4, 3), (2, 3, 2), 3),
    "kronecker": lambda: tnlayers.kronecker((4, 5), (3, 4), 2),
    "kronecker-3-body": lambda: tnlayers.kronecker((2, 3, 2), (2, 2, 3), 2),
    "tensor_ring": lambda: tnlayers.tensor_ring((3, 4, 3), (2, 3, 2), 2),
    "tucker": lambda: tnlayers.tucker((4, 5), (3, 4), 2),
    "cp": lambda: tnlayers.cp((4, 5), (3, 4), 3),
    "tree": lambda: tnlayers.tree((3, 4, 3), (2, 3, 2), 2),
    "low_rank": lambda: tnlayers.low_rank(12, 9, 3),
    "btt": lambda: tnlayers.btt((4, 5), (3, 4), 2),
}


def _structured(net: tnlayers.Network, seed: int, dtype: torch.dtype = F64) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    values = {t: torch.randn(net.shape(t), dtype=dtype, generator=gen) for t in net.tensor_names}
    return contract_weight(net, values)


@pytest.mark.parametrize("name", STRUCTURES)
def test_recovers_a_matrix_that_has_the_structure(name):
    net = STRUCTURES[name]()
    target = _structured(net, seed=7)
    best = min(
        (fit(net, target, sweeps=500, generator=torch.Generator().manual_seed(s)) for s in (0, 1)),
        key=lambda r: r.error,
    )
    assert best.error <= 1e-6
    approx = contract_weight(net, best.tensors)
    assert torch.linalg.norm(approx - target) / torch.linalg.norm(target) == pytest.approx(
        best.error, abs=1e-12
    )
    layer = TNLinear.from_tensors(net, best.tensors)
    torch.testing.assert_close(layer.to_dense().detach(), target, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["tensor_ring", "cp", "tree", "tucker"])
def test_error_never_increases_on_a_dense_weight(name):
    net = STRUCTURES[name]()
    weight = torch.randn(net.out_features, net.in_features, dtype=F64)
    result = fit(net, weight, sweeps=30, tol=0, generator=torch.Generator().manual_seed(0))
    assert result.start == ("hosvd" if name == "tucker" else "random")
    assert len(result.errors) >= 2
    assert all(b <= a + 1e-12 for a, b in zip(result.errors, result.errors[1:], strict=False))
    assert result.errors[-1] < result.errors[0]


def test_never_worse_than_the_closed_forms():
    weight = torch.randn(12, 36, dtype=F64)
    net = tnlayers.mpo((3, 4, 3), (2, 3, 2), 2)
    result = fit(net, weight, sweeps=20, tol=0)
    assert result.start == "tt-svd"
    assert result.error <= tt_svd(weight, (3, 4, 3), (2, 3, 2), max_bond=2).error + 1e-12
    kron = tnlayers.kronecker((6, 6), (3, 4), 2)
    result = fit(kron, weight, sweeps=20, tol=0)
    svd = tnlayers.nearest_kronecker(weight, (6, 6), (3, 4), 2).error
    assert result.start == "kronecker-svd" and result.error <= svd + 1e-12


def test_tucker_starts_from_hosvd_and_never_ends_worse():
    net = tnlayers.tucker((4, 5), (3, 4), (2, 3, 2, 2))
    exact = fit(net, _structured(net, 5), sweeps=0)
    assert exact.start == "hosvd" and exact.error < 1e-12  # HOSVD alone recovers a Tucker matrix
    weight = torch.randn(12, 20, dtype=F64)
    hosvd = fit(net, weight, sweeps=0).error
    refined = fit(net, weight, sweeps=20, tol=0)
    assert refined.errors[0] == pytest.approx(hosvd) and refined.error <= hosvd


def test_float32_and_complex():
    net = STRUCTURES["tensor_ring"]()
    single = fit(net, _structured(net, 3, torch.float32), sweeps=200)
    assert single.tensors["core1"].dtype == torch.float32 and single.error < 1e-4
    double = fit(net, _structured(net, 3, torch.complex128), sweeps=300)
    assert double.tensors["core1"].dtype == torch.complex128 and double.error < 1e-8


def test_validation_names_sizes():
    net = tnlayers.mpo((3, 4), (2, 3), 2)
    with pytest.raises(tnlayers.ShapeError, match=r"the weight is \(12, 6\).*expected \(6, 12\)"):
        fit(net, torch.randn(12, 6))
    with pytest.raises(tnlayers.ShapeError, match="pads"):
        fit(tnlayers.mpo(7, 6, 2, cores=2), torch.randn(6, 7))
    with pytest.raises(tnlayers.ShapeError, match="init has no value for tensor 'core2'"):
        fit(net, torch.randn(6, 12), init={"core1": torch.randn(2, 3, 2)})
    with pytest.raises(tnlayers.ArgumentTypeError, match=r"fit needs a tnlayers\.Network"):
        fit("mpo", torch.randn(6, 12))  # type: ignore[arg-type]
    zero = fit(net, torch.zeros(6, 12))
    assert zero.error == 0.0


def test_progress_bar(capsys):
    net = STRUCTURES["cp"]()
    fit(net, _structured(net, 1), sweeps=3, tol=0, progress=True)
    assert "fit" in capsys.readouterr().err
