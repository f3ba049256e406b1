"""Analyse: matrix product operators as values — TT-SVD, canonical forms, truncation, entropy."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch

from .._core.builders import Dims, as_dims, default_parts, mpo
from .._core.errors import NetworkSpecError, OptionError, ShapeError
from .._core.network import Network

__all__ = ["MPO", "Approximation", "tt_svd"]

CanonicalForm = Literal["left", "right", "mixed"]


class Approximation(NamedTuple):
    """An MPO approximating a matrix, and its relative Frobenius error ``‖W − W̃‖ / ‖W‖``."""

    mpo: MPO
    error: float


@dataclass(frozen=True, eq=False)
class MPO:
    r"""The values of a matrix product operator, detached from any layer.

    Core ``k`` has shape ``(D_{k-1}, J_k, I_k, D_k)`` *with* the boundary bonds
    ``D_0 = D_n = 1`` kept, so every core is 4-D; the network of
    [`mpo`][tnlayers.mpo] (boundary bonds left out) is `network`, its tensors `tensors()`.

    The weight is ``W[(j_1..j_n), (i_1..i_n)] = Σ_b Π_k G_k[b_{k-1}, j_k, i_k, b_k]``, row-major on
    both sides, cropped to ``(out_features, in_features)`` when the legs were padded.

    Attributes
    ----------
    cores
        The 4-D cores.
    in_features, out_features
        The matrix's sizes (at most the products of the leg sizes).
    """

    cores: tuple[torch.Tensor, ...]
    in_features: int
    out_features: int

    def __post_init__(self) -> None:
        if not self.cores:
            raise NetworkSpecError("an MPO needs at least one core")
        for k, core in enumerate(self.cores, start=1):
            if core.dim() != 4:
                raise ShapeError(
                    f"core {k} must be 4-D (D_{k - 1}, J_{k}, I_{k}, D_{k}), got shape "
                    f"{tuple(core.shape)}"
                )
        for k in range(1, len(self.cores)):
            left, right = self.cores[k - 1].shape[3], self.cores[k].shape[0]
            if left != right:
                raise ShapeError(
                    f"bond b{k} has size {left} on core {k} but {right} on core {k + 1}"
                )
        if self.cores[0].shape[0] != 1 or self.cores[-1].shape[3] != 1:
            raise ShapeError("the boundary bonds D_0 and D_n must have size 1")
        for side, features, dims in (
            ("in", self.in_features, self.in_dims),
            ("out", self.out_features, self.out_dims),
        ):
            if not 0 < features <= math.prod(dims):
                raise ShapeError(
                    f"{side}_features={features} does not fit legs {dims} "
                    f"(product {math.prod(dims)})"
                )

    # ------------------------------------------------------------------ structure
    @property
    def in_dims(self) -> tuple[int, ...]:
        """Input leg sizes ``I_k``."""
        return tuple(int(c.shape[2]) for c in self.cores)

    @property
    def out_dims(self) -> tuple[int, ...]:
        """Output leg sizes ``J_k``."""
        return tuple(int(c.shape[1]) for c in self.cores)

    @property
    def bonds(self) -> tuple[int, ...]:
        """Inner bond sizes ``D_1 … D_{n-1}``."""
        return tuple(int(c.shape[3]) for c in self.cores[:-1])

    @property
    def is_padded(self) -> bool:
        """Whether the leg sizes multiply to more than the feature sizes."""
        return (math.prod(self.in_dims), math.prod(self.out_dims)) != (
            self.in_features,
            self.out_features,
        )

    @property
    def num_params(self) -> int:
        """``Σ_k D_{k-1} J_k I_k D_k`` (eq. 6 of MPO-Net)."""
        return sum(c.numel() for c in self.cores)

    @property
    def network(self) -> Network:
        """The [`mpo`][tnlayers.mpo] network with these sizes."""
        net = mpo(self.in_dims, self.out_dims, self.bonds or 1)
        if (net.in_features, net.out_features) == (self.in_features, self.out_features):
            return net
        return net.replace(
            in_features=self.in_features, out_features=self.out_features, allow_padding=True
        )

    def tensors(self) -> dict[str, torch.Tensor]:
        """The cores keyed by network tensor name, boundary bonds squeezed out."""
        n = len(self.cores)
        out = {}
        for k, core in enumerate(self.cores, start=1):
            if k == n:
                core = core.squeeze(3)
            if k == 1:
                core = core.squeeze(0)
            out[f"core{k}"] = core
        return out

    @classmethod
    def from_tensors(cls, network: Network, tensors: Mapping[str, torch.Tensor]) -> MPO:
        """Read an MPO from values of a network built by [`mpo`][tnlayers.mpo].

        Raises
        ------
        NetworkSpecError
            If the network is not in ``mpo``'s layout (``core1 … coren``, legs
            ``(b{k-1}, j{k}, i{k}, b{k})``).
        """
        n = len(network.tensor_names)
        bonds = tuple(network.sizes.get(f"b{k}", 0) for k in range(1, n))
        try:
            expected = mpo(network.in_dims, network.out_dims, bonds or 1)
        except NetworkSpecError as err:
            raise NetworkSpecError(f"the network is not an MPO: {err}") from None
        same_layout = expected.tensor_names == network.tensor_names and all(
            expected.legs(t) == network.legs(t) and expected.shape(t) == network.shape(t)
            for t in network.tensor_names
        )
        if not same_layout or expected.inputs != network.inputs:
            raise NetworkSpecError(
                "the network is not an MPO in tnlayers.mpo's layout (tensors core1..coren with "
                "legs (b{k-1}, j{k}, i{k}, b{k})); build it with tnlayers.mpo"
            )
        cores = []
        for k in range(1, n + 1):
            core = tensors[f"core{k}"].detach()
            if k == 1:
                core = core.unsqueeze(0)
            if k == n:
                core = core.unsqueeze(-1)
            cores.append(core)
        return cls(tuple(cores), network.in_features, network.out_features)

    # ------------------------------------------------------------------ values
    def to_dense(self) -> torch.Tensor:
        """The weight, shape ``(out_features, in_features)``."""
        acc = self.cores[0].reshape(self.cores[0].shape[1:])  # (J, I, D)
        rows, cols = acc.shape[0], acc.shape[1]
        for core in self.cores[1:]:
            # (R, C, D) x (D, J, I, D') -> (R, J, C, I, D'): rows and columns grow row-major.
            acc = torch.einsum("rcd,djie->rjcie", acc, core)
            rows, cols = rows * core.shape[1], cols * core.shape[2]
            acc = acc.reshape(rows, cols, core.shape[3])
        return acc.reshape(rows, cols)[: self.out_features, : self.in_features]

    def norm(self) -> float:
        """Frobenius norm of the weight over all leg values (padding included, which is zero
        unless truncation leaked into it), computed without forming it."""
        return float(torch.linalg.vector_norm(_orthonormalise_left(_f64(self.cores))[-1]))

    # ------------------------------------------------------------------ canonical forms
    def canonical(self, form: CanonicalForm = "left", center: int | None = None) -> MPO:
        """The same weight in a canonical form.

        ``"left"``: cores ``1 … n-1`` left-orthonormal (their ``(D_{k-1}·J·I, D_k)`` unfolding
        has orthonormal columns), the norm in core ``n``. ``"right"``: cores ``2 … n``
        right-orthonormal (their ``(D_{k-1}, J·I·D_k)`` unfolding has orthonormal rows).
        ``"mixed"``: left-orthonormal before site ``center`` (1-based), right-orthonormal after.

        Bonds larger than the rank a cut can carry shrink to that rank (exactly: the weight is
        unchanged).
        """
        n = len(self.cores)
        if form == "left":
            center = n
        elif form == "right":
            center = 1
        elif form == "mixed":
            if not isinstance(center, int) or not 1 <= center <= n:
                raise OptionError(f"a mixed form needs center in 1..{n}, got {center!r}")
        else:
            raise OptionError(f"unknown form {form!r}; choose 'left', 'right' or 'mixed'")
        dtype = self.cores[0].dtype
        cores = _f64(self.cores)
        left = _orthonormalise_left(cores[:center])
        # The centre core collects what the right sweep leaves behind.
        right = _orthonormalise_right([left[-1], *cores[center:]])
        merged = [*left[:-1], *right]
        return self._with([c.to(dtype) for c in merged])

    def bond_spectra(self) -> list[torch.Tensor]:
        """Singular values at every bond ``b1 … b{n-1}`` (the Schmidt coefficients of ``W``
        viewed as a vector of sites ``(j_k, i_k)``, cut there), descending, float64."""
        spectra: list[torch.Tensor] = []
        _sweep_svd_right_to_left(_orthonormalise_left(_f64(self.cores)), spectra, None, None)
        return spectra[::-1]

    def entanglement_entropy(self) -> torch.Tensor:
        r"""Von Neumann entropy at every bond, ``S_k = -Σ_a p_a \ln p_a`` with
        ``p_a = λ_a² / Σ_b λ_b²`` the normalised squared singular values; shape ``(n - 1,)``."""
        values = [_entropy(s) for s in self.bond_spectra()]
        return torch.tensor(values, dtype=torch.float64)

    def truncate(
        self, max_bond: int | None = None, rel_error: float | None = None
    ) -> Approximation:
        """Cut bonds by singular values: at most ``max_bond`` kept and/or a relative error at most
        ``rel_error`` overall. Returns the new MPO and its exact relative error."""
        _check_truncation(max_bond, rel_error)
        cores = _orthonormalise_left(_f64(self.cores))
        norm = float(torch.linalg.vector_norm(cores[-1]))
        budget = _step_budget(rel_error, norm, len(cores))
        spectra: list[torch.Tensor] = []
        discarded = _sweep_svd_right_to_left(cores, spectra, max_bond, budget)
        dtype = self.cores[0].dtype
        cut = self._with([c.to(dtype) for c in cores])
        if norm == 0:
            return Approximation(cut, 0.0)
        if self.is_padded:
            # Truncation can leak into padded rows and columns, which are cropped away again.
            dense = _f64([self.to_dense()])[0]
            error = float(torch.linalg.vector_norm(_f64([cut.to_dense()])[0] - dense))
            return Approximation(cut, error / float(torch.linalg.vector_norm(dense)))
        return Approximation(cut, math.sqrt(discarded) / norm)

    def _with(self, cores: Sequence[torch.Tensor]) -> MPO:
        return MPO(tuple(cores), self.in_features, self.out_features)


def tt_svd(
    matrix: torch.Tensor,
    in_dims: Dims | None = None,
    out_dims: Dims | None = None,
    *,
    cores: int | None = None,
    max_bond: int | None = None,
    rel_error: float | None = None,
) -> Approximation:
    r"""Decompose a matrix into an MPO by sequential truncated SVDs (TT-SVD).

    Parameters
    ----------
    matrix
        ``(out_features, in_features)``, like ``nn.Linear.weight``.
    in_dims, out_dims
        Leg sizes ``I_k`` and ``J_k`` (default: balanced factorisations into ``cores`` legs,
        zero-padded when a size splits badly).
    cores
        Number of cores when the leg sizes are not given.
    max_bond
        Keep at most this many singular values at each bond.
    rel_error
        Relative Frobenius error allowed overall (spread evenly over the ``n - 1`` cuts, so the
        bound ``‖W − W̃‖ ≤ rel_error · ‖W‖`` holds).

    Returns
    -------
    Approximation
        The MPO (in the matrix's dtype and device) and its exact relative error: the sweep's
        discarded parts are mutually orthogonal, so their squared norms add up (with padded legs
        the cropped weight is compared directly).

    Examples
    --------
    >>> import torch
    >>> w = torch.randn(256, 784, dtype=torch.float64)
    >>> approx = tt_svd(w, (4, 7, 7, 4), (4, 4, 4, 4))  # full bond: exact
    >>> approx.mpo.bonds, approx.error < 1e-12
    ((16, 448, 16), True)
    """
    if matrix.dim() != 2:
        raise ShapeError(f"tt_svd needs a matrix (out_features, in_features), got {matrix.shape}")
    _check_truncation(max_bond, rel_error)
    out_features, in_features = (int(s) for s in matrix.shape)
    parts = cores or default_parts(
        in_features if in_dims is None else in_dims,
        out_features if out_dims is None else out_dims,
    )
    ins, _ = as_dims("in_dims", in_features if in_dims is None else in_dims, parts)
    outs, _ = as_dims("out_dims", out_features if out_dims is None else out_dims, parts)
    if len(ins) != len(outs):
        raise NetworkSpecError(
            f"an MPO needs as many input legs as output legs: in_dims {ins}, out_dims {outs}"
        )
    for side, legs, features in (("in", ins, in_features), ("out", outs, out_features)):
        if math.prod(legs) < features:
            raise ShapeError(
                f"{side}_dims {legs} multiply to {math.prod(legs)}, fewer than the matrix's "
                f"{features} {side}put features"
            )
    n = len(ins)
    w = _f64([matrix.detach()])[0]
    padded = torch.zeros(math.prod(outs), math.prod(ins), dtype=w.dtype, device=w.device)
    padded[:out_features, :in_features] = w
    # (j_1..j_n, i_1..i_n) -> sites (j_1, i_1), ..., (j_n, i_n)
    order = [p for k in range(n) for p in (k, n + k)]
    rest = padded.reshape(*outs, *ins).permute(order).reshape(1, -1)
    norm = float(torch.linalg.vector_norm(padded))
    budget = _step_budget(rel_error, norm, n)
    discarded = 0.0
    result = []
    bond = 1
    for k in range(n - 1):
        unfolded = rest.reshape(bond * outs[k] * ins[k], -1)
        u, s, vh = torch.linalg.svd(unfolded, full_matrices=False)
        keep, dropped = _keep(s, max_bond, budget)
        discarded += dropped
        result.append(u[:, :keep].reshape(bond, outs[k], ins[k], keep))
        rest = s[:keep, None] * vh[:keep]
        bond = keep
    result.append(rest.reshape(bond, outs[-1], ins[-1], 1))
    exact_dtype = matrix.dtype.is_floating_point or matrix.dtype.is_complex
    dtype = matrix.dtype if exact_dtype else torch.get_default_dtype()
    exact = MPO(tuple(result), in_features, out_features)
    if norm == 0:
        error = 0.0
    elif padded.shape != w.shape:
        # Truncation leaks into the padded rows and columns, which are cropped away again.
        error = float(torch.linalg.vector_norm(exact.to_dense() - w)) / norm
    else:
        error = math.sqrt(discarded) / norm
    return Approximation(exact._with([c.to(dtype) for c in result]), error)


# ---------------------------------------------------------------------- helpers
def _f64(cores: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Detached copies in double precision: float64, or complex128 for complex cores (the
    imaginary part is never dropped)."""
    complex_ = any(c.is_complex() for c in cores)
    return [c.detach().to(torch.complex128 if complex_ else torch.float64) for c in cores]


def _check_truncation(max_bond: int | None, rel_error: float | None) -> None:
    if max_bond is not None and (
        isinstance(max_bond, bool) or not isinstance(max_bond, int) or max_bond < 1
    ):
        raise OptionError(f"max_bond must be a positive integer, got {max_bond!r}")
    if rel_error is not None and not 0 <= rel_error < 1:
        raise OptionError(f"rel_error must be in [0, 1), got {rel_error!r}")


def _step_budget(rel_error: float | None, norm: float, sites: int) -> float | None:
    """Squared error allowed per cut so that the cuts together stay within ``rel_error``."""
    if rel_error is None or sites < 2:
        return None
    return (rel_error * norm) ** 2 / (sites - 1)


def _keep(s: torch.Tensor, max_bond: int | None, budget: float | None) -> tuple[int, float]:
    """How many singular values to keep, and the squared norm of those dropped."""
    tail = torch.flip(torch.cumsum(torch.flip(s**2, (0,)), 0), (0,))  # tail[r] = Σ_{a≥r} s_a²
    keep = s.numel()
    if budget is not None:
        fits = (tail <= budget).nonzero()
        if fits.numel():
            keep = int(fits[0])
    if max_bond is not None:
        keep = min(keep, max_bond)
    keep = max(keep, 1)
    dropped = float(tail[keep]) if keep < s.numel() else 0.0
    return keep, dropped


def _orthonormalise_left(cores: list[torch.Tensor]) -> list[torch.Tensor]:
    """QR sweep from the left: every core but the last gets orthonormal columns."""
    out = list(cores)
    for k in range(len(out) - 1):
        dl, j, i, dr = out[k].shape
        q, r = torch.linalg.qr(out[k].reshape(dl * j * i, dr))
        out[k] = q.reshape(dl, j, i, q.shape[1])
        out[k + 1] = torch.einsum("ab,bjic->ajic", r, out[k + 1])
    return out


def _orthonormalise_right(cores: list[torch.Tensor]) -> list[torch.Tensor]:
    """LQ sweep from the right: every core but the first gets orthonormal rows."""
    out = list(cores)
    for k in range(len(out) - 1, 0, -1):
        dl, j, i, dr = out[k].shape
        # M = (Mᴴ)ᴴ = (QR)ᴴ = Rᴴ Qᴴ: conjugate transposes, so complex cores stay exact.
        q, r = torch.linalg.qr(out[k].reshape(dl, j * i * dr).mH)
        out[k] = q.mH.reshape(q.shape[1], j, i, dr)
        out[k - 1] = torch.einsum("ajib,bc->ajic", out[k - 1], r.mH)
    return out


def _sweep_svd_right_to_left(
    cores: list[torch.Tensor],
    spectra: list[torch.Tensor],
    max_bond: int | None,
    budget: float | None,
) -> float:
    """From a left-canonical MPO, SVD each bond from the right (truncating if asked), in place.

    With everything left of the cut left-orthonormal and everything right of it
    right-orthonormal, the singular values are the Schmidt coefficients of that cut. Returns the
    summed squared norm of the discarded singular values.
    """
    discarded = 0.0
    for k in range(len(cores) - 1, 0, -1):
        dl, j, i, dr = cores[k].shape
        u, s, vh = torch.linalg.svd(cores[k].reshape(dl, j * i * dr), full_matrices=False)
        keep, dropped = _keep(s, max_bond, budget)
        discarded += dropped
        spectra.append(s[:keep])
        cores[k] = vh[:keep].reshape(keep, j, i, dr)
        cores[k - 1] = torch.einsum("ajib,bc->ajic", cores[k - 1], u[:, :keep] * s[:keep])
    return discarded


def _entropy(singular_values: torch.Tensor) -> float:
    p = singular_values.double() ** 2
    total = p.sum()
    if total <= 0:
        return 0.0
    p = p / total
    p = p[p > 0]
    return float(-(p * p.log()).sum())
