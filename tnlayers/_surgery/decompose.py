"""Approximate one weight matrix by a network: the options each method offers, and their errors.

Every method turns a ``(out, in)`` matrix into a ladder of *options* ordered by size — ranks for
``low_rank``, bond caps for ``mpo``, term counts for ``kronecker``, a bond or rank for the
fitted structures — each with its parameter count and relative Frobenius error. Per-layer settings
pick one rung (``rank=``, ``rel_error=``, ``param_ratio=``); a model-level budget picks one rung
per layer (`budget.allocate`); ``method="auto"`` compares the structures' best rungs within a
layer's share.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from .._core.builders import kronecker, low_rank
from .._core.errors import NetworkSpecError, ShapeError
from .._core.network import Network
from .._core.topologies import btt, tensor_ring
from .._decompose.fit import fit
from .._decompose.kron import KroneckerApproximation, nearest_kronecker
from .._decompose.mpo import tt_svd

__all__ = ["AUTO_STRUCTURES", "Candidate", "Option", "fitted", "ladder", "svd_ladder"]

# What method="auto" compares, cheapest to fit first.
AUTO_STRUCTURES = ("low_rank", "mpo", "kronecker", "tensor_ring", "btt")
FIT_SWEEPS = 40


@dataclass(frozen=True)
class Candidate:
    """A network with values approximating one matrix.

    Attributes
    ----------
    structure
        ``"low_rank"``, ``"mpo"``, ``"kronecker"``, ``"tensor_ring"``, ``"btt"`` or
        ``"network"`` (a user's builder).
    network, tensors
        The network and its values (tensor name → ``network.shape(name)``).
    error
        ``‖W − W̃‖_F / ‖W‖_F``.
    setting
        The size in words (``"rank 8"``, ``"bonds 4,4,4"``...).
    """

    structure: str
    network: Network
    tensors: dict[str, torch.Tensor]
    error: float
    setting: str

    @property
    def params(self) -> int:
        """Weights of the network."""
        return self.network.num_params


@dataclass(frozen=True)
class Option:
    """One rung of a ladder: its size, parameters and error, and how to build it."""

    structure: str
    size: int
    params: int
    error: float
    make: Callable[[], Candidate] = field(repr=False, compare=False)


def _work_dtype(matrix: torch.Tensor) -> torch.dtype:
    # Decompose in double precision whatever the layer's dtype: ALS solves normal equations,
    # which square the condition number, and stalls at ~1e-4 in float32; the values are cast
    # to the layer's dtype when the layer is built.
    return torch.complex128 if matrix.is_complex() else torch.float64


def svd_ladder(matrix: torch.Tensor) -> list[Option]:
    """Low-rank options ``r = 1 … min(out, in)`` from one SVD (Eckart–Young errors)."""
    work = matrix.to(_work_dtype(matrix))
    u, s, vh = torch.linalg.svd(work, full_matrices=False)
    energy = s.double().square()
    total = energy.sum().item()
    # tail[r] = ‖discarded‖² when r singular values are kept.
    tail = [*energy.flip(0).cumsum(0).flip(0).tolist(), 0.0]
    out_features, in_features = matrix.shape

    def make(rank: int) -> Callable[[], Candidate]:
        def build() -> Candidate:
            root = s[:rank].sqrt()
            tensors = {"U": u[:, :rank] * root, "V": root[:, None] * vh[:rank]}
            error = math.sqrt(tail[rank] / total) if total else 0.0
            return Candidate(
                "low_rank", low_rank(in_features, out_features, rank), tensors, error,
                f"rank {rank}",
            )  # fmt: skip

        return build

    return [
        Option(
            "low_rank",
            r,
            r * (in_features + out_features),
            math.sqrt(tail[r] / total) if total else 0.0,
            make(r),
        )
        for r in range(1, s.numel() + 1)
    ]


def _caps(limit: int) -> list[int]:
    """1, 2, 3, 4, 6, 8, 11, 16, 23, 32, … up to ``limit``: bond caps a half-octave apart."""
    return sorted(
        {round(2 ** (k / 2)) for k in range(2 * limit.bit_length() + 1)} & set(range(1, limit + 1))
    )


def mpo_candidate(matrix: torch.Tensor, *, max_bond: int | None, rel_error: float | None,
                  cores: int | None) -> Candidate:  # fmt: skip
    """TT-SVD of ``matrix`` (bond cap and/or error target, as [`tt_svd`][tnlayers.tt_svd])."""
    approx = tt_svd(
        matrix.to(_work_dtype(matrix)), cores=cores, max_bond=max_bond, rel_error=rel_error
    )
    network = approx.mpo.network
    bonds = ",".join(str(network.sizes[b]) for b in network.bonds)
    return Candidate("mpo", network, approx.mpo.tensors(), approx.error, f"bonds {bonds}")


def kronecker_candidate(matrix: torch.Tensor, terms: int) -> Candidate:
    """The nearest sum of ``terms`` Kronecker products (two factors each)."""
    out_features, in_features = matrix.shape
    approx = nearest_kronecker(
        matrix.to(_work_dtype(matrix)), in_features, out_features, terms, bodies=2
    )
    return Candidate(
        "kronecker", approx.network, approx.tensors(), approx.error, f"{terms} term(s)"
    )


def _kronecker_ladder(matrix: torch.Tensor) -> list[Option]:
    """Every term count with fewer parameters than the matrix, from one SVD.

    With two bodies the nearest sum of ``K`` Kronecker products is the rearranged matrix's
    rank-``K`` truncated SVD, so the ``K``-term answer is the first ``K`` terms of the largest
    one, and its error follows from the discarded terms' norms (orthogonal terms).
    """
    out_features, in_features = matrix.shape
    dense = out_features * in_features
    # The layout nearest_kronecker uses (QiMLP's split into two bodies), without decomposing.
    one = kronecker(in_features, out_features, 1, bodies=2)
    (p1, p2), (q1, q2) = one.in_dims, one.out_dims
    rank = min(p1 * q1, p2 * q2)  # the rearranged matrix is (p1·q1) × (p2·q2)
    most = min(rank, (dense - 1) // one.num_params)
    if most < 1:
        return []
    work = matrix.to(_work_dtype(matrix))
    full = nearest_kronecker(work, in_features, out_features, most, bodies=2)
    first, second = full.factors
    energy = (first.flatten(1).norm(dim=1) * second.flatten(1).norm(dim=1)).square()
    total = work.norm().square().item()
    kept = [0.0, *energy.cumsum(0).tolist()]  # kept[K] = ‖first K terms‖², orthogonal terms
    options = []
    for terms in range(1, most + 1):
        error = math.sqrt(max(total - kept[terms], 0.0) / total) if total else 0.0
        factors = (first[:terms], second[:terms])
        approx = KroneckerApproximation(factors, error)
        candidate = Candidate("kronecker", approx.network, approx.tensors(), error,
                              f"{terms} term(s)")  # fmt: skip
        options.append(Option("kronecker", terms, candidate.params, error, _ready(candidate)))
        if error < 1e-12:
            break
    return options


def fitted(
    structure: str,
    network: Network,
    matrix: torch.Tensor,
    setting: str,
    *,
    thorough: bool = False,
) -> Candidate:
    """Any network fitted to ``matrix`` by [`fit`][tnlayers.fit] (seeded: reproducible).

    ``thorough``: as ``fit``'s defaults (a user's own network); otherwise a quicker fit, enough to
    rank structures against each other in ``method="auto"``.
    """
    generator = torch.Generator(device=matrix.device).manual_seed(0)
    sweeps, restarts = (100, 3) if thorough else (FIT_SWEEPS, 1)
    result = fit(network, matrix.to(_work_dtype(matrix)), sweeps=sweeps, restarts=restarts,
                 generator=generator)  # fmt: skip
    return Candidate(structure, network, dict(result.tensors), result.error, setting)


def _ready(candidate: Candidate) -> Callable[[], Candidate]:
    return lambda: candidate


def _later(structure: str, network: Network, matrix: torch.Tensor, setting: str
           ) -> Callable[[], Candidate]:  # fmt: skip
    return lambda: fitted(structure, network, matrix, setting)


def _structure_networks(structure: str, in_features: int, out_features: int
                        ) -> Iterator[tuple[int, Network]]:  # fmt: skip
    """``(size, network)`` of a fitted structure, size growing, until it is no smaller."""
    dense = in_features * out_features
    for size in range(1, max(in_features, out_features) + 1):
        try:
            if structure == "tensor_ring":
                network = tensor_ring(in_features, out_features, size, cores=3)
            else:
                network = btt(in_features, out_features, size)
        except (NetworkSpecError, ShapeError):
            return
        if network.is_padded or network.num_params >= dense:  # fit needs exact legs
            return
        yield size, network


def ladder(structure: str, matrix: torch.Tensor, *, cores: int | None = None) -> list[Option]:
    """Every size of ``structure`` that has fewer parameters than the matrix, smallest first.

    ``low_rank`` and ``kronecker`` know their errors at once; ``mpo`` runs one TT-SVD per bond
    cap; the fitted structures (``tensor_ring``, ``btt``) report ``nan`` until built (fitting
    every size would cost too much), and are fitted when chosen.
    """
    out_features, in_features = matrix.shape
    dense = out_features * in_features
    if structure == "low_rank":
        return [o for o in svd_ladder(matrix) if o.params < dense]
    options: list[Option] = []
    if structure == "mpo":
        previous = None
        for cap in _caps(min(out_features, in_features)):
            candidate = mpo_candidate(matrix, max_bond=cap, rel_error=None, cores=cores)
            if candidate.params >= dense or candidate.params == previous:
                break
            previous = candidate.params
            options.append(Option("mpo", cap, candidate.params, candidate.error, _ready(candidate)))
        return options
    if structure == "kronecker":
        return _kronecker_ladder(matrix)
    word = "bond" if structure == "tensor_ring" else "rank"
    for size, network in _structure_networks(structure, in_features, out_features):
        later = _later(structure, network, matrix, f"{word} {size}")
        options.append(Option(structure, size, network.num_params, math.nan, later))
    return options
