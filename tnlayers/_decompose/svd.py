"""Truncated SVD: the best rank-``r`` approximation of a matrix."""

from __future__ import annotations

import torch

__all__ = ["truncated_svd"]


def truncated_svd(
    matrix: torch.Tensor, rank: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``U_r, S_r, V_rᵀ`` of a matrix ``(m, n)``: the best rank-``r`` approximation (Eckart–Young).

    Returns
    -------
    U, S, Vh
        ``(m, r)``, ``(r,)``, ``(r, n)`` with ``U @ diag(S) @ Vh`` the approximation; its squared
        Frobenius error is the sum of the discarded ``σ_i²``.
    """
    u, s, vh = torch.linalg.svd(matrix.detach(), full_matrices=False)
    return u[:, :rank], s[:rank], vh[:rank]
