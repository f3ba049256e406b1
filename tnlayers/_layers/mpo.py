"""Execute: MPO-Net's layers (Gao et al. 2020) — an MPO linear layer and an MPO convolution."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeVar

import torch
from torch import nn

from .._core.builders import Dims, mpo
from .._core.errors import ArgumentTypeError, OptionError, ShapeError
from .._core.network import Network
from .._decompose.mpo import MPO, CanonicalForm, tt_svd
from .conv import TNConv2d, conv_geometry
from .linear import TNLinear

__all__ = ["MPOConv2d", "MPOLinear"]

Init = Literal["variance", "paper"]
Pair = int | tuple[int, int]
LayerT = TypeVar("LayerT", bound="MPOLayerBase")


def _mpo_network(
    in_features: int,
    out_features: int,
    bond: int | Sequence[int],
    in_dims: Dims | None,
    out_dims: Dims | None,
    cores: int | None,
) -> Network:
    for name, value in (("in_features", in_features), ("out_features", out_features)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ArgumentTypeError(f"{name} must be a positive integer, got {value!r}")
    net = mpo(
        in_features if in_dims is None else in_dims,
        out_features if out_dims is None else out_dims,
        bond,
        cores=cores,
    )
    for side, legs, features in (
        ("in", net.in_dims, in_features),
        ("out", net.out_dims, out_features),
    ):
        if math.prod(legs) < features:
            raise ShapeError(
                f"{side}_dims {legs} multiply to {math.prod(legs)}, but {side}_features is "
                f"{features}: the legs must cover every feature"
            )
    if (net.in_features, net.out_features) != (in_features, out_features):
        net = net.replace(in_features=in_features, out_features=out_features, allow_padding=True)
    return net


class MPOLayerBase(TNLinear):
    """What MPO layers share: MPO-Net's initialisation and the canonical-form analysis."""

    INITS = ("variance", "paper")

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Re-initialise the cores (``init="variance"`` or ``"paper"``) and the bias.

        ``"paper"`` is the authors' scheme: each core's ``(J_k D_k, D_{k-1} I_k)`` view drawn
        from TF1's truncated Glorot normal (standard deviation ``√(2.6 / (fan_in + fan_out))``
        cut at two deviations, so the realised one is ``≈ √(2 / (fan_in + fan_out))``), bias zero.
        """
        if self.init == "variance":
            super().reset_parameters(generator=generator)
            return
        with torch.no_grad():
            for name, core in zip(self.network.tensor_names, self.mpo().cores, strict=True):
                dl, j, i, dr = core.shape
                sigma = math.sqrt(1.3 * 2.0 / (dl * i + j * dr))
                nn.init.trunc_normal_(
                    self.tensors[name], 0.0, sigma, -2 * sigma, 2 * sigma, generator=generator
                )
            if self.bias is not None:
                self.bias.zero_()

    # ------------------------------------------------------------------ analysis
    def mpo(self) -> MPO:
        """The current cores as an [`MPO`][tnlayers.compression.MPO] value (detached)."""
        return MPO.from_tensors(
            self.network, dict(zip(self._names, self.network_tensors(), strict=True))
        )

    def bond_spectra(self) -> list[torch.Tensor]:
        """Singular values at every bond; see
        [`MPO.bond_spectra`][tnlayers.compression.MPO.bond_spectra]."""
        return self.mpo().bond_spectra()

    def entanglement_entropy(self) -> torch.Tensor:
        """Entropy at every bond, shape ``(n - 1,)``; see
        [`MPO.entanglement_entropy`][tnlayers.compression.MPO.entanglement_entropy]."""
        return self.mpo().entanglement_entropy()

    def canonicalized(
        self: LayerT, form: CanonicalForm = "left", center: int | None = None
    ) -> LayerT:
        """A new layer with the same weight and bias, its cores in a canonical form."""
        return self._rebuilt(self.mpo().canonical(form, center))

    def truncated(
        self: LayerT, max_bond: int | None = None, rel_error: float | None = None
    ) -> LayerT:
        """A new layer with bonds cut by singular values (see
        [`MPO.truncate`][tnlayers.compression.MPO.truncate]); the bias is kept."""
        return self._rebuilt(self.mpo().truncate(max_bond, rel_error).mpo)

    def _rebuilt(self: LayerT, values: MPO) -> LayerT:
        raise NotImplementedError

    def _settings(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "optimize": self.optimize, "model": self.model}


class MPOLinear(MPOLayerBase):
    r"""A linear layer whose weight is a matrix product operator (MPO-Net, MPO-Net).

    ``W = M_{I_1..I_n}^{J_1..J_n}(D)`` with cores ``(D_{k-1}, J_k, I_k, D_k)``; the leg sizes are
    chosen as balanced factorisations of the feature sizes unless given.

    Parameters
    ----------
    in_features, out_features, bias
        As ``nn.Linear``, in the same positions; ``bias`` is not part of the MPO (not counted
        in ρ).
    bond
        Bond size ``D`` (every bond) or one size per bond.
    in_dims, out_dims
        Leg sizes ``I_k`` / ``J_k``; their product must cover the feature size (a larger product
        pads with zeros).
    cores
        Number of cores when the leg sizes are not given (default: legs of size about 8).
    init
        ``"variance"`` (default): the materialized weight gets ``nn.Linear``'s variance.
        ``"paper"``: the authors' per-core truncated Glorot normal and a zero bias.
    **kwargs
        Passed on to [`TNLinear`][tnlayers.TNLinear] (``strategy``, ``dtype``, ``device``, ...).

    Shapes
    ------
    - input: ``(..., in_features)``
    - output: ``(..., out_features)``

    Examples
    --------
    >>> layer = MPOLinear(784, 256, bond=2, in_dims=(4, 7, 7, 4), out_dims=(4, 4, 4, 4))
    >>> layer.num_params  # FC2's first layer at D = 2
    288
    >>> MPOLinear(784, 256, bond=4).network.in_dims  # factorised automatically
    (4, 7, 7, 4)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        bond: int | Sequence[int],
        in_dims: Dims | None = None,
        out_dims: Dims | None = None,
        cores: int | None = None,
        init: Init = "variance",
        **kwargs: Any,
    ) -> None:
        network = _mpo_network(in_features, out_features, bond, in_dims, out_dims, cores)
        super().__init__(network, bias, init=init, **kwargs)

    @classmethod
    def from_mpo(cls, values: MPO, bias: torch.Tensor | None = None, **kwargs: Any) -> MPOLinear:
        """A layer holding copies of an [`MPO`][tnlayers.compression.MPO]'s cores (and ``bias``)."""
        first = values.cores[0]
        kwargs = {"dtype": first.dtype, "device": first.device, **kwargs}
        layer = cls(
            values.in_features,
            values.out_features,
            bias is not None,
            bond=values.bonds,
            in_dims=values.in_dims,
            out_dims=values.out_dims,
            **kwargs,
        )
        layer._copy_values(values.tensors(), bias)
        return layer

    @classmethod
    def from_tensors(
        cls,
        network: Network,
        tensors: Mapping[str, torch.Tensor],
        bias: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> MPOLinear:
        """A layer from values of an [`mpo`][tnlayers.mpo] network."""
        return cls.from_mpo(MPO.from_tensors(network, tensors), bias, **kwargs)

    @classmethod
    def from_linear(
        cls,
        linear: nn.Linear,
        *,
        max_bond: int | None = None,
        rel_error: float | None = None,
        in_dims: Dims | None = None,
        out_dims: Dims | None = None,
        cores: int | None = None,
        **kwargs: Any,
    ) -> MPOLinear:
        """An MPO layer approximating a trained ``nn.Linear`` by TT-SVD (its bias copied).

        Give ``max_bond`` and/or ``rel_error`` (see [`tt_svd`][tnlayers.tt_svd]); with neither the
        decomposition is exact. ``tt_svd(linear.weight, ...)`` gives the achieved error.
        """
        if not isinstance(linear, nn.Linear):
            raise ArgumentTypeError(f"from_linear needs an nn.Linear, got {type(linear).__name__}")
        approx = tt_svd(
            linear.weight, in_dims, out_dims, cores=cores, max_bond=max_bond, rel_error=rel_error
        )
        bias = None if linear.bias is None else linear.bias.detach()
        return cls.from_mpo(approx.mpo, bias, **kwargs)

    def _rebuilt(self, values: MPO) -> MPOLinear:
        bias = None if self.bias is None else self.bias.detach()
        return MPOLinear.from_mpo(values, bias, **self._settings())


class MPOConv2d(TNConv2d, MPOLayerBase):
    r"""A drop-in for ``nn.Conv2d`` whose ``(C_out, C_in·kh·kw)`` weight is an MPO.

    The flattened kernel index is ``nn.Conv2d``'s (channel, then kernel row, then column), so
    ``to_dense().view(C_out, C_in, kh, kw)`` is the convolution's weight. Forward runs either as
    ``F.conv2d`` with the materialized weight, or on the unfolded input (``B·H_out·W_out`` rows of
    ``C_in·kh·kw`` features) through the MPO cores; with ``strategy="auto"`` both are timed on the
    first input of each size and the faster is kept.

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode
        As ``nn.Conv2d``, in the same positions (``padding`` may be ``"same"`` or ``"valid"``;
        ``padding_mode="zeros"`` only; grouped convolutions run the materialized kernel). The
        MPO's own arguments are keyword-only, so ``MPOConv2d(3, 8, 3, 1, 1, bond=4)`` reads as
        ``nn.Conv2d(3, 8, 3, 1, 1)``.
    bond, in_dims, out_dims, cores, init, **kwargs
        As [`MPOLinear`][tnlayers.MPOLinear], for ``in_features = C_in·kh·kw`` and
        ``out_features = C_out``.

    Shapes
    ------
    - input: ``(B, C_in, H, W)``
    - output: ``(B, C_out, H_out, W_out)`` with ``nn.Conv2d``'s ``H_out`` and ``W_out``.

    Examples
    --------
    >>> import torch
    >>> conv = MPOConv2d(6, 16, 5, bond=4)  # nn.Conv2d(6, 16, 5), its weight an MPO
    >>> conv(torch.randn(2, 6, 14, 14)).shape
    torch.Size([2, 16, 10, 10])
    """

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
        bond: int | Sequence[int],
        in_dims: Dims | None = None,
        out_dims: Dims | None = None,
        cores: int | None = None,
        init: Init = "variance",
        **kwargs: Any,
    ) -> None:
        geometry = conv_geometry(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, padding_mode
        )
        network = _mpo_network(geometry.fan_in, out_channels, bond, in_dims, out_dims, cores)
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            bias,
            padding_mode,
            network=network,
            init=init,
            **kwargs,
        )

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_conv(
        cls,
        conv: nn.Conv2d,
        *,
        max_bond: int | None = None,
        rel_error: float | None = None,
        in_dims: Dims | None = None,
        out_dims: Dims | None = None,
        cores: int | None = None,
        **kwargs: Any,
    ) -> MPOConv2d:
        """An MPO convolution approximating a trained ``nn.Conv2d`` by TT-SVD of its
        ``(C_out, C_in·kh·kw)`` weight (bias copied)."""
        if not isinstance(conv, nn.Conv2d):
            raise ArgumentTypeError(f"from_conv needs an nn.Conv2d, got {type(conv).__name__}")
        if conv.padding_mode != "zeros":
            raise OptionError(
                f"MPOConv2d supports zero padding; this conv has padding_mode={conv.padding_mode!r}"
            )
        weight = conv.weight.detach().reshape(conv.out_channels, -1)
        approx = tt_svd(
            weight, in_dims, out_dims, cores=cores, max_bond=max_bond, rel_error=rel_error
        )
        bias = None if conv.bias is None else conv.bias.detach()
        return cls._from_geometry(approx.mpo, bias, conv, **kwargs)

    @classmethod
    def _from_geometry(
        cls, values: MPO, bias: torch.Tensor | None, like: nn.Conv2d | MPOConv2d, **kwargs: Any
    ) -> MPOConv2d:
        first = values.cores[0]
        kwargs = {"dtype": first.dtype, "device": first.device, **kwargs}
        layer = cls(
            like.in_channels,
            like.out_channels,
            like.kernel_size,  # type: ignore[arg-type]
            like.stride,  # type: ignore[arg-type]
            like.padding,  # type: ignore[arg-type]
            like.dilation,  # type: ignore[arg-type]
            like.groups,
            bias=bias is not None,
            bond=values.bonds,
            in_dims=values.in_dims,
            out_dims=values.out_dims,
            **kwargs,
        )
        layer._copy_values(values.tensors(), bias)
        return layer

    def _rebuilt(self, values: MPO) -> MPOConv2d:
        bias = None if self.bias is None else self.bias.detach()
        return MPOConv2d._from_geometry(values, bias, self, **self._settings())
