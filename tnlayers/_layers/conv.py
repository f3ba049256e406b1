"""Execute: a convolution whose ``(C_out, C_in/groups·kh·kw)`` kernel is any tensor network."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch.nn import functional as F  # noqa: N812

from .._core.cost import CostReport, Mode
from .._core.errors import ArgumentTypeError, OptionError, ShapeError
from .._core.network import Network
from .execute import weight_matrix
from .linear import TNLinear, compiling
from .strategy import Execution

__all__ = ["TNConv1d", "TNConv2d", "conv_geometry", "conv_output_size"]

Pair = int | tuple[int, int]


def _pair(name: str, value: Pair, smallest: int = 1) -> tuple[int, int]:
    """``value`` as a pair of ints, each at least ``smallest``; a clear error otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        pair: tuple[object, ...] = (value, value)
    elif isinstance(value, Sequence) and not isinstance(value, str):
        pair = tuple(value)
    else:
        pair = ()
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, int) for v in pair):
        raise ArgumentTypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if any(v < smallest for v in pair):  # type: ignore[operator]
        raise OptionError(f"{name} must be at least {smallest}, got {value!r}")
    return pair  # type: ignore[return-value]


def conv_output_size(
    image_size: tuple[int, int],
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int] | str,
    dilation: tuple[int, int],
) -> tuple[int, int]:
    """``nn.Conv2d``'s ``(H_out, W_out)`` for an input of ``image_size``.

    ``padding`` is a pair of ints, ``"valid"`` or ``"same"`` (which keeps the size; stride 1).
    """
    if isinstance(padding, str):
        if padding == "same":
            return int(image_size[0]), int(image_size[1])
        padding = (0, 0)  # "valid"
    h, w = (
        (size + 2 * pad - d * (k - 1) - 1) // s + 1
        for size, pad, d, k, s in zip(
            image_size, padding, dilation, kernel_size, stride, strict=True
        )
    )
    return h, w


class ConvGeometry(NamedTuple):
    """A convolution's validated arguments, and its kernel's fan-in ``C_in/groups·kh·kw``."""

    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int] | str
    dilation: tuple[int, int]
    groups: int
    fan_in: int


def conv_geometry(
    in_channels: int,
    out_channels: int,
    kernel_size: Pair,
    stride: Pair,
    padding: Pair | str,
    dilation: Pair,
    groups: int,
    padding_mode: str,
) -> ConvGeometry:
    """Check ``nn.Conv2d``'s arguments and return them normalised (errors name the argument)."""
    for name, value in (
        ("in_channels", in_channels),
        ("out_channels", out_channels),
        ("groups", groups),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ArgumentTypeError(f"{name} must be a positive integer, got {value!r}")
    if in_channels % groups or out_channels % groups:
        raise OptionError(
            f"groups={groups} must divide in_channels={in_channels} and "
            f"out_channels={out_channels} (as in nn.Conv2d)"
        )
    if padding_mode != "zeros":
        raise OptionError(f"padding_mode must be 'zeros', got {padding_mode!r}")
    kernel = _pair("kernel_size", kernel_size)
    stride_pair = _pair("stride", stride)
    dilation_pair = _pair("dilation", dilation)
    padding_value: tuple[int, int] | str
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise OptionError(f"padding must be 'same', 'valid' or ints, got {padding!r}")
        if padding == "same" and stride_pair != (1, 1):
            raise OptionError("padding='same' needs stride 1 (as in nn.Conv2d)")
        padding_value = padding
    else:
        padding_value = _pair("padding", padding, smallest=0)
    fan_in = in_channels // groups * kernel[0] * kernel[1]
    return ConvGeometry(kernel, stride_pair, padding_value, dilation_pair, groups, fan_in)


class TNConv2d(TNLinear):
    r"""A drop-in for ``nn.Conv2d`` whose ``(C_out, C_in/groups·kh·kw)`` kernel is any network.

    The flattened kernel index is ``nn.Conv2d``'s (channel, then kernel row, then column), so
    ``to_dense().view(C_out, C_in // groups, kh, kw)`` is the convolution's weight. Forward runs
    either as ``F.conv2d`` with the materialized kernel, or on the unfolded input
    (``B·H_out·W_out`` rows of ``C_in·kh·kw`` features) through the network; with
    ``strategy="auto"`` both are timed on the first input of each size and the faster is kept.
    Grouped convolutions (``groups > 1``) run the materialized kernel: each group's rows of the
    kernel are a slice of the network's output legs, which the sequential path cannot take.

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode
        As ``nn.Conv2d``, in the same positions (``padding`` may be ``"same"`` or ``"valid"``;
        ``padding_mode="zeros"`` only).
    network
        The kernel's network: ``in_features = C_in/groups·kh·kw``, ``out_features = C_out``.
    **kwargs
        As [`TNLinear`][tnlayers.TNLinear] (``strategy``, ``init``, ``dtype``, ``device``...).

    Shapes
    ------
    - input: ``(B, C_in, H, W)``
    - output: ``(B, C_out, H_out, W_out)`` with ``nn.Conv2d``'s ``H_out`` and ``W_out``.

    Examples
    --------
    >>> import torch, tnlayers
    >>> ring = tnlayers.tensor_ring((6, 5, 5), (4, 2, 2), bond=3)  # 6·5·5 = 150 → 16
    >>> conv = tnlayers.TNConv2d(6, 16, 5, network=ring)
    >>> conv(torch.randn(2, 6, 14, 14)).shape
    torch.Size([2, 16, 10, 10])
    """

    # The cost model does not count the unfold copy of the sequential path, so "auto" times
    # both real paths once per input size.
    _times_every_size = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Pair,
        stride: Pair = 1,
        padding: Pair | str = 0,
        dilation: Pair = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        *,
        network: Network,
        **kwargs: Any,
    ) -> None:
        geometry = conv_geometry(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, padding_mode
        )
        if not isinstance(network, Network):
            raise ArgumentTypeError(
                f"{type(self).__name__} needs network=a tnlayers.Network, got "
                f"{type(network).__name__}"
            )
        if (network.in_features, network.out_features) != (geometry.fan_in, out_channels):
            raise ShapeError(
                f"the kernel network maps {network.in_features} → {network.out_features} "
                f"features, but this convolution's kernel is {out_channels} × {geometry.fan_in} "
                f"(C_out × C_in/groups·kh·kw = {out_channels} × {in_channels // groups}·"
                f"{geometry.kernel_size[0]}·{geometry.kernel_size[1]})"
            )
        if groups > 1:
            strategy = kwargs.get("strategy", "auto")
            if strategy == "sequential":
                raise OptionError(
                    "a grouped convolution runs its materialized kernel; strategy='sequential' "
                    "is available for groups=1 only"
                )
            kwargs["strategy"] = "materialize"
        super().__init__(network, bias, **kwargs)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = geometry.kernel_size
        self.stride = geometry.stride
        self.dilation = geometry.dilation
        self.padding = geometry.padding
        self.groups = groups
        self._last_image_size: tuple[int, int] | None = None
        self._timing_shape: tuple[int, ...] | None = None
        self._register_config()  # again: the geometry is part of what timing depends on

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
            + (f"groups={self.groups}, " if self.groups != 1 else "")
            + super().extra_repr()
        )

    @property
    def weight(self) -> torch.Tensor:
        """The materialized kernel in ``nn.Conv2d``'s layout ``(C_out, C_in/groups, kh, kw)``.

        Computed on each access (differentiable); not a parameter — see
        [`TNLinear.weight`][tnlayers.TNLinearBase.weight].
        """
        return self.to_dense().reshape(
            self.out_channels, self.in_channels // self.groups, *self.kernel_size
        )

    # ------------------------------------------------------------------ geometry
    def _padding(self) -> tuple[tuple[int, int], tuple[int, int, int, int] | None]:
        """Symmetric padding for the conv/unfold call, and any extra (left, right, top, bottom)
        zero padding to apply first (``"same"`` with an even kernel puts the odd one right)."""
        if self.padding == "valid":
            return (0, 0), None
        if self.padding == "same":
            totals = [d * (k - 1) for d, k in zip(self.dilation, self.kernel_size, strict=True)]
            top, left = totals[0] // 2, totals[1] // 2
            if totals == [2 * top, 2 * left]:
                return (top, left), None
            return (0, 0), (left, totals[1] - left, top, totals[0] - top)
        return self.padding, None  # type: ignore[return-value]

    def output_size(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """``(H_out, W_out)`` for an input of ``(H, W)``."""
        return conv_output_size(
            image_size, self.kernel_size, self.stride, self.padding, self.dilation
        )

    def _unpadded_output(self, height: int, width: int) -> tuple[int, int]:
        """Output size for an input already carrying any asymmetric ``"same"`` padding."""
        return conv_output_size(
            (height, width), self.kernel_size, self.stride, self._padding()[0], self.dilation
        )

    # ------------------------------------------------------------------ cost
    def cost(
        self,
        batch: int = 64,
        *,
        mode: Mode = "training",
        measure: bool = False,
        image_size: tuple[int, int] | None = None,
    ) -> CostReport:
        """The cost report for ``batch`` images of ``image_size`` (default: the last input's).

        The contraction sees ``batch · H_out · W_out`` rows of ``C_in·kh·kw`` features: the
        unfolded input, which is what both strategies multiply.
        """
        size = image_size or self._last_image_size
        if size is None:
            raise OptionError(
                f"{type(self).__name__}.cost needs image_size=(H, W): the contraction's rows are "
                "batch · H_out · W_out (or run the layer once and it uses that input's size)"
            )
        h, w = self.output_size(size)
        return self.rows_cost(batch * h * w, mode=mode, measure=measure)

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve ``x`` of shape ``(B, C_in, H, W)``."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ShapeError(
                f"input has shape {tuple(x.shape)}, but {type(self).__name__} expects "
                f"(batch, {self.in_channels} channels, height, width)"
            )
        h_out, w_out = self.output_size((x.shape[2], x.shape[3]))
        if h_out < 1 or w_out < 1:
            raise ShapeError(
                f"input of {x.shape[2]}×{x.shape[3]} is smaller than the dilated kernel "
                f"{self.kernel_size} (dilation {self.dilation}) after padding {self.padding}"
            )
        extra = self._padding()[1]
        if extra is not None:
            x = F.pad(x, extra)
        if not compiling():
            self._last_image_size = self._image_size(x)
            self._timing_shape = tuple(x.shape)
        execution, _, _ = self._prepare(x, x.shape[0] * h_out * w_out)
        return self._apply_execution(execution, x)

    def _timing_context(self) -> tuple[object, ...]:
        return ("conv2d", self.kernel_size, self.stride, self.padding, self.dilation, self.groups)

    def _image_size(self, padded: torch.Tensor) -> tuple[int, int]:
        left, right, top, bottom = self._padding()[1] or (0, 0, 0, 0)
        return int(padded.shape[2]) - top - bottom, int(padded.shape[3]) - left - right

    def _timing_input(self, rows: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        # Time the real convolution paths on the input being run, not a stand-in GEMM: conv
        # kernels and the unfold copy change which strategy wins.
        if self._timing_shape is None:
            return super()._timing_input(rows, dtype, device)
        return torch.randn(self._timing_shape, dtype=dtype, device=device)

    def _apply_execution(
        self,
        execution: Execution,
        x: torch.Tensor,
        use_cache: bool = True,
        values: list[torch.Tensor] | None = None,
        weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if x.dim() == 2:  # a timing stand-in before any image was seen
            return super()._apply_execution(execution, x, use_cache, values, weight)
        padding = self._padding()[0]
        # A block-diagonal kernel (pass-through legs) runs its blocks as a batched GEMM on the
        # unfolded input below, unless groups force the conv kernel, which must be whole.
        blocks = bool(self.network.passthrough)
        if execution[0] == "materialize" and (not blocks or self.groups > 1):
            if weight is None:
                # The kernel is contracted in the parameters' precision; autocast casts for conv.
                with torch.autocast(x.device.type, enabled=False):
                    weight = self._weight(execution[1][0], use_cache, values)
            if blocks:
                weight = weight_matrix(self.network, weight)
            kernel = weight.reshape(
                self.out_channels, self.in_channels // self.groups, *self.kernel_size
            )
            return F.conv2d(x, kernel, self.bias, self.stride, padding, self.dilation, self.groups)
        batch = x.shape[0]
        h_out, w_out = self._unpadded_output(x.shape[2], x.shape[3])
        cols = F.unfold(x, self.kernel_size, self.dilation, padding, self.stride)  # (B, C·kk, L)
        flat = cols.transpose(1, 2).reshape(-1, self.in_features)
        if torch.is_autocast_enabled(x.device.type):
            y = self._run_autocast(execution, flat, self.network_dtype)
        else:
            y = self._run(execution, flat, use_cache, values)
        return (
            y.reshape(batch, h_out * w_out, self.out_channels)
            .transpose(1, 2)
            .reshape(batch, self.out_channels, h_out, w_out)
        )


class TNConv1d(TNConv2d):
    """A drop-in for ``nn.Conv1d`` whose ``(C_out, C_in/groups·k)`` kernel is any network.

    Runs as a [`TNConv2d`][tnlayers.TNConv2d] with a ``1 × k`` kernel on a height-1 image, so it
    has the same strategies and cost report; ``to_dense().view(C_out, C_in // groups, k)`` is the
    ``nn.Conv1d`` weight.

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode
        As ``nn.Conv1d`` (integers or 1-tuples; ``padding`` may be ``"same"`` or ``"valid"``;
        ``padding_mode="zeros"`` only).
    network
        The kernel's network: ``in_features = C_in/groups·k``, ``out_features = C_out``.
    **kwargs
        As [`TNLinear`][tnlayers.TNLinear].

    Shapes
    ------
    - input: ``(B, C_in, L)``
    - output: ``(B, C_out, L_out)`` with ``nn.Conv1d``'s ``L_out``.

    Examples
    --------
    >>> import torch, tnlayers
    >>> conv = tnlayers.TNConv1d(8, 6, 3, network=tnlayers.low_rank(24, 6, 2), padding=1)
    >>> conv(torch.randn(2, 8, 10)).shape
    torch.Size([2, 6, 10])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int],
        stride: int | tuple[int] = 1,
        padding: int | tuple[int] | str = 0,
        dilation: int | tuple[int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        *,
        network: Network,
        **kwargs: Any,
    ) -> None:
        def single(name: str, value: object) -> int:
            if isinstance(value, tuple) and len(value) == 1:
                value = value[0]
            if isinstance(value, bool) or not isinstance(value, int):
                raise ArgumentTypeError(f"{name} must be an int or a 1-tuple, got {value!r}")
            return value

        pad: tuple[int, int] | str = (
            padding if isinstance(padding, str) else (0, single("padding", padding))
        )
        super().__init__(
            in_channels,
            out_channels,
            (1, single("kernel_size", kernel_size)),
            (1, single("stride", stride)),
            pad,
            (1, single("dilation", dilation)),
            groups,
            bias,
            padding_mode,
            network=network,
            **kwargs,
        )

    @property
    def weight(self) -> torch.Tensor:
        """The materialized kernel in ``nn.Conv1d``'s layout ``(C_out, C_in/groups, k)``.

        Computed on each access (differentiable); not a parameter.
        """
        return self.to_dense().reshape(
            self.out_channels, self.in_channels // self.groups, self.kernel_size[1]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve ``x`` of shape ``(B, C_in, L)``."""
        if x.dim() != 3 or x.shape[1] != self.in_channels:
            raise ShapeError(
                f"input has shape {tuple(x.shape)}, but {type(self).__name__} expects "
                f"(batch, {self.in_channels} channels, length)"
            )
        return super().forward(x.unsqueeze(2)).squeeze(2)
