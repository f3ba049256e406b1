"""Build the layer that replaces a dense one, from a network and its values.

One function serves both directions: [`compress`][tnlayers.compress] passes the decomposed
values; [`restore`][tnlayers.restore] passes zeros (the checkpoint's ``state_dict`` brings the
real ones), so a checkpoint reloads without any decomposition.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn

from .._core.errors import ShapeError
from .._core.network import Network
from .._decompose.mpo import MPO
from .._layers.conv import TNConv1d, TNConv2d
from .._layers.kron import KronLinear
from .._layers.linear import TNLinear
from .._layers.low_rank_conv import LowRankConv2d
from .._layers.mpo import MPOConv2d, MPOLinear
from .targets import matrix_shape

__all__ = ["LAYER_CLASSES", "build_layer", "layer_class", "zero_values"]

LAYER_CLASSES = (
    "TNLinear",
    "MPOLinear",
    "KronLinear",
    "TNConv1d",
    "TNConv2d",
    "MPOConv2d",
    "LowRankConv2d",
)


def layer_class(kind: str, module: nn.Module, structure: str) -> str:
    """Which class replaces a ``kind`` layer approximated by ``structure``.

    MPO and Kronecker layers keep their own classes (bond spectra, truncation, entanglement);
    an ungrouped ``Conv2d`` at low rank becomes two convolutions (QIANets' form, no unfold);
    everything else is the generic layer of its kind.
    """
    if kind in ("Linear", "Conv1D"):
        return {"mpo": "MPOLinear", "kronecker": "KronLinear"}.get(structure, "TNLinear")
    if kind == "Conv1d":
        return "TNConv1d"
    if getattr(module, "groups", 1) == 1:
        return {"low_rank": "LowRankConv2d", "mpo": "MPOConv2d"}.get(structure, "TNConv2d")
    return "TNConv2d"


def zero_values(network: Network, like: torch.Tensor) -> dict[str, torch.Tensor]:
    """Zeros of every tensor's shape (a skeleton for ``load_state_dict``)."""
    return {
        name: torch.zeros(network.shape(name), dtype=like.dtype, device=like.device)
        for name in network.tensor_names
    }


def _conv_geometry(module: Any, one_d: bool) -> dict[str, Any]:
    def unwrap(value: object) -> object:
        return value[0] if one_d and isinstance(value, tuple) else value

    return {
        "kernel_size": unwrap(module.kernel_size),
        "stride": unwrap(module.stride),
        "padding": unwrap(module.padding),
        "dilation": unwrap(module.dilation),
        "groups": module.groups,
    }


def build_layer(
    kind: str,
    module: nn.Module,
    class_name: str,
    network: Network,
    tensors: dict[str, torch.Tensor],
) -> nn.Module:
    """The replacement of ``module`` holding ``tensors`` (cast to its weight's dtype/device).

    Keeps the module's bias (values and ``requires_grad``), the weight's ``requires_grad`` (a
    frozen layer's tensors stay frozen), device, dtype and training mode.
    """
    source: Any = module  # a Linear, Conv1d/2d or Hugging Face Conv1D
    weight = cast(torch.Tensor, source.weight)
    out_features, in_features = matrix_shape(kind, weight)
    if (network.out_features, network.in_features) != (out_features, in_features):
        raise ShapeError(
            f"the network maps {network.in_features} → {network.out_features} features, but the "
            f"{kind} layer's weight matrix is {out_features} × {in_features} (out × in)"
        )
    values = {
        n: t.detach().to(dtype=weight.dtype, device=weight.device) for n, t in tensors.items()
    }
    bias = None if source.bias is None else source.bias.detach()
    factory: dict[str, Any] = {"dtype": weight.dtype, "device": weight.device}
    layer: nn.Module
    if class_name == "TNLinear":
        layer = TNLinear(network, bias is not None, **factory)
        layer._copy_values(values, bias)
    elif class_name == "MPOLinear":
        layer = MPOLinear.from_mpo(MPO.from_tensors(network, values), bias)
    elif class_name == "KronLinear":
        layer = KronLinear.from_tensors(network, values, bias)
    elif class_name == "LowRankConv2d":
        rank = network.sizes["r"]
        layer = LowRankConv2d(source, rank, factors=(values["U"], values["V"]))
    elif class_name == "MPOConv2d":
        layer = MPOConv2d._from_geometry(MPO.from_tensors(network, values), bias, source)
    elif class_name in ("TNConv1d", "TNConv2d"):
        cls = TNConv1d if class_name == "TNConv1d" else TNConv2d
        layer = cls(
            source.in_channels,
            source.out_channels,
            **_conv_geometry(source, class_name == "TNConv1d"),
            bias=bias is not None,
            network=network,
            **factory,
        )
        layer._copy_values(values, bias)
    else:
        raise ShapeError(f"unknown replacement class {class_name!r}; known: {LAYER_CLASSES}")
    frozen = not weight.requires_grad
    for name, parameter in layer.named_parameters():
        if name.endswith("bias") and source.bias is not None and name.count(".") <= 1:
            parameter.requires_grad_(source.bias.requires_grad)
        elif frozen:
            parameter.requires_grad_(False)
    layer.train(module.training)
    return layer
