"""A convolution factorised into a ``k×k`` convolution to ``r`` channels and a ``1×1`` one."""

from __future__ import annotations

from typing import Literal, cast

import torch
from torch import nn

from .._core.cost import CostReport, StrategyCost
from .._core.errors import OptionError
from .._core.plan import MachineModel
from .._decompose.svd import truncated_svd
from .conv import conv_output_size

__all__ = ["LowRankConv2d"]


class LowRankConv2d(nn.Sequential):
    """A ``k×k`` convolution ``C_in → r`` then a ``1×1`` convolution ``r → C_out`` (with bias).

    The factorised form of a convolution whose flattened ``(C_out, C_in·kh·kw)`` kernel has rank
    ``r``: ``r(C_in·kh·kw + C_out)`` weights instead of ``C_out·C_in·kh·kw`` (QIANets' SVD).

    Parameters
    ----------
    conv
        The convolution to factorise (its geometry and bias are kept).
    rank
        ``r``.
    factors
        ``(W₁ (C_out, r), W₂ (r, C_in·kh·kw))`` with ``W ≈ W₁W₂`` (e.g. from
        [`anneal_factorize`][tnlayers.compression.anneal_factorize]); default: the truncated SVD,
        split as ``(U√Σ, √Σ Vᵀ)``.
    """

    def __init__(
        self,
        conv: nn.Conv2d,
        rank: int,
        factors: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        first = nn.Conv2d(
            conv.in_channels,
            rank,
            conv.kernel_size,  # type: ignore[arg-type]
            conv.stride,  # type: ignore[arg-type]
            conv.padding,  # type: ignore[arg-type]
            conv.dilation,  # type: ignore[arg-type]
            bias=False,
            padding_mode=conv.padding_mode,
            device=conv.weight.device,
            dtype=conv.weight.dtype,
        )
        second = nn.Conv2d(
            rank,
            conv.out_channels,
            1,
            bias=conv.bias is not None,
            device=conv.weight.device,
            dtype=conv.weight.dtype,
        )
        super().__init__(first, second)
        if factors is None:
            u, s, vh = truncated_svd(conv.weight.reshape(conv.out_channels, -1), rank)
            factors = (u * s.sqrt(), s.sqrt()[:, None] * vh)
        left, right = factors
        with torch.no_grad():
            first.weight.copy_(right.reshape(first.weight.shape))
            second.weight.copy_(left.reshape(second.weight.shape))
            if conv.bias is not None:
                assert second.bias is not None
                second.bias.copy_(conv.bias)

    @property
    def kernel_size(self) -> tuple[int, int]:
        """The first convolution's ``(kh, kw)``."""
        first = self[0]
        assert isinstance(first, nn.Conv2d)
        return cast(tuple[int, int], first.kernel_size)

    @property
    def rank(self) -> int:
        """``r``: the channels between the two convolutions."""
        return _weight(self[0]).shape[0]

    @property
    def in_features(self) -> int:
        """``C_in·kh·kw``: the flattened kernel's columns."""
        return _weight(self[0])[0].numel()

    @property
    def out_features(self) -> int:
        """``C_out``."""
        return _weight(self[1]).shape[0]

    @property
    def num_params(self) -> int:
        """``r(C_in·kh·kw + C_out)``, bias excluded."""
        return self.rank * (self.in_features + self.out_features)

    @property
    def weight(self) -> torch.Tensor:
        """The equivalent kernel in ``nn.Conv2d``'s layout ``(C_out, C_in, kh, kw)``.

        Computed on each access (differentiable); not a parameter.
        """
        first = self[0]
        assert isinstance(first, nn.Conv2d)
        return self.to_dense().reshape(self.out_features, first.in_channels, *self.kernel_size)

    def to_dense(self) -> torch.Tensor:
        """The equivalent flattened kernel, shape ``(C_out, C_in·kh·kw)``; differentiable.

        ``.reshape(C_out, C_in, kh, kw)`` gives the ``nn.Conv2d`` weight.
        """
        return _weight(self[1]).flatten(1) @ _weight(self[0]).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve ``x`` of shape ``(B, C_in, H, W)``; remembers ``(H, W)`` for ``cost``."""
        self._last_image_size = (int(x.shape[-2]), int(x.shape[-1]))
        return super().forward(x)

    def chosen_strategy(self, batch: int, *, training: bool | None = None) -> str:
        """Always ``"factored"``: the two convolutions, one after the other."""
        return "factored"

    def cost(
        self,
        batch: int = 64,
        *,
        mode: Literal["training", "inference"] = "training",
        image_size: tuple[int, int] | None = None,
    ) -> CostReport:
        """The cost report for ``batch`` images of ``image_size`` (default: the last input's).

        One strategy, ``factored``: the ``k×k`` convolution to ``r`` channels then the ``1×1``
        one, on the ``batch·H_out·W_out`` output positions.
        """
        if mode not in ("training", "inference"):
            raise OptionError(f"mode must be 'training' or 'inference', got {mode!r}")
        size = image_size or getattr(self, "_last_image_size", None)
        if size is None:
            raise OptionError(
                "LowRankConv2d.cost needs image_size=(H, W): its rows are batch · H_out · W_out "
                "(or run the layer once and it uses that input's size)"
            )
        first = self[0]
        assert isinstance(first, nn.Conv2d)
        h, w = conv_output_size(
            size,
            first.kernel_size,  # type: ignore[arg-type]
            first.stride,  # type: ignore[arg-type]
            first.padding,  # type: ignore[arg-type]
            first.dilation,  # type: ignore[arg-type]
        )
        rows, r = batch * h * w, self.rank
        flops = 2 * rows * r * (self.in_features + self.out_features)
        itemsize = _weight(first).element_size()
        model = MachineModel.for_device(_weight(first).device.type)
        seconds = 2 * model.op_overhead + flops / model.peak_flops
        factored = StrategyCost(
            name="factored",
            flops=flops,
            training_flops=3 * flops,
            calls=2,
            largest_intermediate=rows * max(r, self.out_features),
            saved_for_backward=rows * r,
            predicted_time_s=seconds,
            predicted_training_time_s=3 * seconds,
            forms_dense_weight=False,
        )
        return CostReport(
            subject=f"low-rank convolution, rank {r}, images {size[0]}×{size[1]}",
            batch=rows,
            itemsize=itemsize,
            mode=mode,
            in_features=self.in_features,
            out_features=self.out_features,
            params=self.num_params,
            dense_params=self.in_features * self.out_features,
            strategies={"factored": factored},
            strategy="factored",
            reason="factored: the only strategy (two convolutions)",
            details=(f"rows         {batch} images × {h}·{w} output positions = {rows:,}",),
        )


def _weight(module: nn.Module) -> torch.Tensor:
    """A layer's ``weight`` (``nn.Module.__getattr__`` is typed as returning modules too)."""
    return cast(torch.Tensor, module.weight)
