"""Reference computations the tests compare against, written independently of tnlayers."""

from __future__ import annotations

import torch


def explicit_kron_sum(factors: list[torch.Tensor]) -> torch.Tensor:
    """``Σ_k A_1[k]ᵀ ⊗ … ⊗ A_M[k]ᵀ`` written with torch.kron, QiMLP's eq. 4."""
    # torch.kron fails on transposed views with size-1 dimensions (torch 2.13): copy first.
    total = 0
    for k in range(factors[0].shape[0]):
        term = factors[0][k].T.clone(memory_format=torch.contiguous_format)
        for f in factors[1:]:
            term = torch.kron(term, f[k].T.clone(memory_format=torch.contiguous_format))
        total = total + term
    return total


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """``‖a − b‖_F / ‖b‖_F``."""
    a, b = a.detach(), b.detach()
    return float(torch.linalg.norm(a - b) / torch.linalg.norm(b))
