"""Amplitude encoding (Chen et al. 2024, eq. 6): a feature vector as a normalised state."""

from __future__ import annotations

import torch
from torch import nn

from .._core.errors import ShapeError

__all__ = ["AmplitudeEncoding", "amplitude_encode"]


def amplitude_encode(x: torch.Tensor, dim: int | None = None, eps: float = 1e-12) -> torch.Tensor:
    """``x / ‖x‖`` over the last dimension, zero-padded to ``dim`` amplitudes.

    Parameters
    ----------
    x
        ``(..., d)`` features.
    dim
        The circuit's dimension ``n ≥ d`` (default: ``d``, no padding).
    eps
        Added to the norm so that a zero input gives zeros, not NaN.

    Returns
    -------
    torch.Tensor
        ``(..., dim)`` with unit norm (for non-zero inputs).
    """
    d = x.shape[-1]
    dim = d if dim is None else dim
    if dim < d:
        raise ShapeError(
            f"cannot encode {d} features into {dim} amplitudes: the circuit dimension must be at "
            f"least the feature count (use a classical input layer to reduce {d} → {dim})"
        )
    if dim > d:
        x = nn.functional.pad(x, (0, dim - d))
    return x / (torch.linalg.vector_norm(x, dim=-1, keepdim=True) + eps)


class AmplitudeEncoding(nn.Module):
    """[`amplitude_encode`][tnlayers.circuits.amplitude_encode] as a module, for ``nn.Sequential``.

    Shapes: input ``(..., d)``, output ``(..., dim)``.
    """

    def __init__(self, dim: int | None = None, eps: float = 1e-12) -> None:
        super().__init__()
        self.dim, self.eps = dim, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return amplitude_encode(x, self.dim, self.eps)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
