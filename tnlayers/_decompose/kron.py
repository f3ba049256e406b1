"""Analyse: the nearest sum of Kronecker products to a matrix (QiMLP's weight form)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .._core.builders import Dims, kron_dims, kronecker
from .._core.errors import NetworkSpecError, OptionError, ShapeError
from .._core.network import Network

__all__ = ["KroneckerApproximation", "nearest_kronecker"]


@dataclass(frozen=True, eq=False)
class KroneckerApproximation:
    r"""A sum of ``K`` Kronecker products approximating a matrix.

    Attributes
    ----------
    factors
        One tensor per body, shape ``(K, p_m, q_m)`` (the [`kronecker`][tnlayers.kronecker]
        network's ``body{m}`` layout), so that
        ``W ≈ Σ_k A_1[k]ᵀ ⊗ … ⊗ A_M[k]ᵀ`` of shape ``(Π q_m, Π p_m)``.
    error
        Relative Frobenius error ``‖W − W̃‖ / ‖W‖``, computed directly.
    """

    factors: tuple[torch.Tensor, ...]
    error: float

    @property
    def network(self) -> Network:
        """The [`kronecker`][tnlayers.kronecker] network these factors fill."""
        terms, *_ = self.factors[0].shape
        ins = tuple(int(f.shape[1]) for f in self.factors)
        outs = tuple(int(f.shape[2]) for f in self.factors)
        return kronecker(ins, outs, terms)

    def tensors(self) -> dict[str, torch.Tensor]:
        """The factors keyed by network tensor name (``body1 …``)."""
        if len(self.factors) == 1:
            return {"body1": self.factors[0][0]}
        return {f"body{m}": f for m, f in enumerate(self.factors, start=1)}

    def to_dense(self) -> torch.Tensor:
        """``Σ_k A_1[k]ᵀ ⊗ … ⊗ A_M[k]ᵀ``, shape ``(Π q_m, Π p_m)``."""
        return _dense(self.factors)


def nearest_kronecker(
    matrix: torch.Tensor,
    in_dims: Dims,
    out_dims: Dims,
    terms: int = 1,
    *,
    bodies: int | None = None,
    iterations: int = 500,
    tol: float = 1e-13,
) -> KroneckerApproximation:
    r"""The sum of ``terms`` Kronecker products nearest to ``matrix`` in Frobenius norm.

    Rearranging ``W`` so that body ``m``'s indices ``(i_m, j_m)`` form one mode turns a sum of
    ``K`` Kronecker products into a rank-``K`` tensor of order ``M`` (Van Loan and Pitsianis).

    - **Two bodies**: the rearranged matrix's truncated SVD, which is optimal (Eckart–Young).
    - **More bodies**: a rank-``K`` CP decomposition by alternating least squares, started from
      the leading singular vectors of each mode and grown one term at a time (each new term
      starts as the best rank-1 fit of the residual). Every ALS step is a least-squares solve,
      so the error never increases, and the error for ``K`` terms is never above that for
      ``K - 1``. ALS is not guaranteed to find the global optimum.

    Parameters
    ----------
    matrix
        ``(out_features, in_features)``, like ``nn.Linear.weight``.
    in_dims, out_dims
        Body sizes ``p_m`` and ``q_m`` (products equal to the features), or the feature sizes to
        split by QiMLP's rule into ``bodies`` factors.
    terms
        Number of Kronecker products ``K``.
    bodies
        Number of bodies when both sizes are integers (default 2).
    iterations, tol
        ALS sweeps per term count at most, and the relative improvement that stops them.

    Returns
    -------
    KroneckerApproximation
        Factors in the matrix's dtype and device, and the relative error.

    Examples
    --------
    >>> import torch
    >>> a, b = torch.randn(2, 3, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    >>> w = torch.kron(a.T, b.T)  # one Kronecker product, (3·5) × (2·4)
    >>> nearest_kronecker(w, (2, 4), (3, 5)).error < 1e-12
    True
    """
    if matrix.dim() != 2:
        raise ShapeError(f"nearest_kronecker needs a matrix, got shape {tuple(matrix.shape)}")
    if isinstance(terms, bool) or not isinstance(terms, int) or terms < 1:
        raise OptionError(f"terms must be a positive integer, got {terms!r}")
    parts = (
        bodies
        if bodies is not None
        else (len(tuple(in_dims)) if not isinstance(in_dims, int) else 2)
    )
    ins, _ = kron_dims("in_dims", in_dims, parts)
    outs, _ = kron_dims("out_dims", out_dims, parts)
    if len(ins) != len(outs):
        raise NetworkSpecError(
            f"every body needs one input and one output size: in_dims {ins}, out_dims {outs}"
        )
    out_features, in_features = (int(s) for s in matrix.shape)
    if (math.prod(ins), math.prod(outs)) != (in_features, out_features):
        raise ShapeError(
            f"body sizes in {ins} × out {outs} make a {math.prod(outs)} × {math.prod(ins)} "
            f"weight, but the matrix is {out_features} × {in_features}"
        )
    m = len(ins)
    if matrix.is_complex() and m > 2:
        raise ShapeError(
            f"nearest_kronecker of a complex matrix is supported for two bodies (an SVD); "
            f"{m} bodies need a complex CP fit, which tnlayers does not provide: pass real "
            "and imaginary parts separately, or use two bodies"
        )
    w = matrix.detach().to(torch.complex128 if matrix.is_complex() else torch.float64)
    # (j_1..j_M, i_1..i_M) -> modes (i_1, j_1), ..., (i_M, j_M)
    order = [p for k in range(m) for p in (m + k, k)]
    tensor = (
        w.reshape(*outs, *ins)
        .permute(order)
        .reshape([p * q for p, q in zip(ins, outs, strict=True)])
    )
    if m == 1:
        factors = [tensor.reshape(1, -1)]
    elif m == 2:
        u, s, vh = torch.linalg.svd(tensor, full_matrices=False)
        k = min(terms, s.numel())
        root = s[:k].sqrt()
        factors = [u[:, :k].T * root[:, None], vh[:k] * root[:, None]]
        factors = [_pad_terms(f, terms) for f in factors]
    else:
        factors = _grow_cp(tensor, terms, iterations, tol)
    factors = _balance(factors)
    shaped = tuple(
        f.reshape(-1, p, q).to(
            matrix.dtype if matrix.dtype.is_floating_point or matrix.is_complex() else torch.float64
        )
        for f, p, q in zip(factors, ins, outs, strict=True)
    )
    dense = _dense([f.reshape(-1, p, q) for f, p, q in zip(factors, ins, outs, strict=True)])
    norm = float(torch.linalg.vector_norm(w))
    error = float(torch.linalg.vector_norm(dense - w)) / norm if norm > 0 else 0.0
    return KroneckerApproximation(shaped, error)


# ---------------------------------------------------------------------- helpers
def _dense(factors: Sequence[torch.Tensor]) -> torch.Tensor:
    """``Σ_k ⊗_m A_m[k]ᵀ`` from factors of shape ``(K, p_m, q_m)``."""
    total = None
    for k in range(factors[0].shape[0]):
        term = factors[0][k].T
        for f in factors[1:]:
            # An einsum, not torch.kron: kron fails on transposed size-1 views (torch 2.13).
            b = f[k].T
            term = torch.einsum("ij,kl->ikjl", term, b).reshape(
                term.shape[0] * b.shape[0], term.shape[1] * b.shape[1]
            )
        total = term if total is None else total + term
    assert total is not None
    return total


def _pad_terms(factor: torch.Tensor, terms: int) -> torch.Tensor:
    """Zero terms beyond the rank the matrix has (the layer still gets ``terms`` of them)."""
    if factor.shape[0] == terms:
        return factor
    pad = factor.new_zeros(terms - factor.shape[0], factor.shape[1])
    return torch.cat([factor, pad])


def _balance(factors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Give every body of a term the same norm (the product is unchanged): better for training."""
    norms = torch.stack([torch.linalg.vector_norm(f, dim=1) for f in factors])  # (M, K)
    geometric = norms.clamp_min(1e-300).log().mean(0).exp()  # (K,)
    scale = torch.where(norms > 0, geometric / norms.clamp_min(1e-300), torch.zeros_like(norms))
    return [f * s[:, None] for f, s in zip(factors, scale, strict=True)]


def _khatri_rao(factors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Row-wise Khatri–Rao product of factors ``(K, n_i)``: shape ``(K, Π n_i)``, row-major.

    Broadcast products, not a many-operand ``torch.einsum``: that one asks opt_einsum for a path
    on every call, which was most of the time of an ALS sweep.
    """
    out = factors[0]
    for factor in factors[1:]:
        out = (out[:, :, None] * factor[:, None, :]).reshape(out.shape[0], -1)
    return out


def _mttkrp(tensor: torch.Tensor, factors: list[torch.Tensor], mode: int) -> torch.Tensor:
    """``T_(mode) · (Khatri–Rao of the other factors)``, shape ``(K, n_mode)``."""
    unfolded = tensor.movedim(mode, 0).reshape(tensor.shape[mode], -1)
    others = [f for i, f in enumerate(factors) if i != mode]
    return (unfolded @ _khatri_rao(others).T).T


def _als(
    tensor: torch.Tensor, factors: list[torch.Tensor], iterations: int, tol: float
) -> list[torch.Tensor]:
    """Alternating least squares on factors of shape ``(K, n_m)``; the error never rises."""
    norm = float(torch.linalg.vector_norm(tensor))
    previous = math.inf
    for _ in range(iterations):
        for mode in range(tensor.dim()):
            factors = _solve_mode(tensor, factors, mode)
        error = _residual(tensor, factors)
        if previous - error <= tol * max(norm, 1e-300):
            break
        previous = error
    return factors


def _residual(tensor: torch.Tensor, factors: list[torch.Tensor]) -> float:
    return float(torch.linalg.vector_norm(tensor - _reconstruct(factors)))


def _leading(tensor: torch.Tensor, terms: int = 1) -> list[torch.Tensor]:
    """Start: each mode's ``terms`` leading left singular vectors (a seeded random fill where a
    mode is smaller than ``terms``), the last mode then fitted by least squares."""
    gen = torch.Generator(device=tensor.device).manual_seed(0)
    factors = []
    for mode in range(tensor.dim()):
        unfolded = tensor.movedim(mode, 0).reshape(tensor.shape[mode], -1)
        u = torch.linalg.svd(unfolded, full_matrices=False)[0][:, :terms].T
        if u.shape[0] < terms:
            fill = torch.randn(
                terms - u.shape[0], u.shape[1], dtype=u.dtype, device=u.device, generator=gen
            )
            u = torch.cat([u, fill])
        factors.append(u.clone())
    return _solve_mode(tensor, factors, tensor.dim() - 1)


def _solve_mode(tensor: torch.Tensor, factors: list[torch.Tensor], mode: int) -> list[torch.Tensor]:
    """The least-squares update of one mode with the others fixed (never raises the error)."""
    gram = torch.ones_like(factors[0] @ factors[0].T)
    for i, f in enumerate(factors):
        if i != mode:
            gram = gram * (f @ f.T)
    factors[mode] = torch.linalg.lstsq(gram, _mttkrp(tensor, factors, mode)).solution
    return factors


def _grow_cp(tensor: torch.Tensor, terms: int, iterations: int, tol: float) -> list[torch.Tensor]:
    """Rank-``terms`` CP by ALS. For each term count two starts are refined and the better kept:
    the previous fit plus the residual's best rank-1 term (so the error never rises with the
    count), and the modes' leading singular vectors (which finds exact low-rank sums faster)."""
    factors = _als(tensor, _leading(tensor), iterations, tol)
    for count in range(2, terms + 1):
        residual = tensor - _reconstruct(factors)
        before = float(torch.linalg.vector_norm(residual))
        new = _als(residual, _leading(residual), iterations, tol)
        grown = _als(
            tensor, [torch.cat([f, g]) for f, g in zip(factors, new, strict=True)], iterations, tol
        )
        fresh = _als(tensor, _leading(tensor, count), iterations, tol)
        candidates = [(_residual(tensor, grown), grown), (_residual(tensor, fresh), fresh)]
        error, best = min(candidates, key=lambda pair: pair[0])
        if error <= before:
            factors = best
        else:  # numerically no better: keep the fit, with an empty extra term
            factors = [torch.cat([f, torch.zeros_like(f[:1])]) for f in factors]
    return factors


def _reconstruct(factors: list[torch.Tensor]) -> torch.Tensor:
    """``Σ_k ⊗_m factors[m][k]`` as a tensor of shape ``(n_1, …, n_M)``."""
    return _khatri_rao(factors).sum(0).reshape([f.shape[1] for f in factors])
