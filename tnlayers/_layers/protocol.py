"""Execute: the contract every tensor-network layer follows.

``summary``, ``compress``, the CLI and the docs read layers only through this protocol, so a new
family is listed, costed and compressed as soon as its layer provides these members.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from .._core.cost import CostReport, Mode

__all__ = ["TensorNetworkLayer"]


@runtime_checkable
class TensorNetworkLayer(Protocol):
    """What every tnlayers layer provides (``isinstance(module, TensorNetworkLayer)`` checks it).

    Attributes
    ----------
    in_features, out_features
        Sizes of the linear map ``W`` (for a convolution: ``C_in·kh·kw`` and ``C_out``).
    num_params
        Parameters of the structure, bias excluded.
    """

    @property
    def in_features(self) -> int: ...

    @property
    def out_features(self) -> int: ...

    @property
    def num_params(self) -> int: ...

    def to_dense(self) -> torch.Tensor:
        """The dense weight ``W``, shape ``(out_features, in_features)``; differentiable."""
        ...

    def cost(self, batch: int = 64, *, mode: Mode = "training") -> CostReport:
        """The [`CostReport`][tnlayers.CostReport] at ``batch`` samples (rows, or images for a
        convolution), its chosen strategy being the one the forward pass runs."""
        ...

    def chosen_strategy(self, batch: int, *, training: bool | None = None) -> str:
        """The strategy the forward pass runs for ``batch`` samples (grad mode: the current
        one by default)."""
        ...
