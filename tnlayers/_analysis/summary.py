"""Analyse: a model summary listing every tensor-network layer with its cost, and ρ."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from .._core.cost import Mode
from .._core.table import format_table
from .._layers.protocol import TensorNetworkLayer

__all__ = ["compression_ratio", "summary"]


def compression_ratio(model: nn.Module) -> float:
    r"""ρ of MPO-Net's eq. 9: tensor-network parameters over the dense parameters they replace.

    ``ρ = Σ_l N_tn^{(l)} / Σ_l N_dense^{(l)}`` over the model's tensor-network layers only
    (every [`TensorNetworkLayer`][tnlayers.TensorNetworkLayer]; biases and untouched layers
    excluded). Below 1 means fewer parameters, like every ratio in tnlayers.

    Raises
    ------
    ValueError
        If the model has no tensor-network layer.
    """
    layers = tensor_network_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no tensor-network layer: ρ is undefined")
    return _rho(layers.values())


def _rho(layers: Iterable[TensorNetworkLayer]) -> float:
    layers = list(layers)
    return sum(m.num_params for m in layers) / sum(m.in_features * m.out_features for m in layers)


def tensor_network_layers(model: nn.Module) -> dict[str, TensorNetworkLayer]:
    """Every tensor-network layer of ``model`` by name (not those inside another)."""
    found: dict[str, TensorNetworkLayer] = {}
    for name, module in model.named_modules():
        if isinstance(module, TensorNetworkLayer) and not _inside(name, found):
            found[name] = module
    return found


def _inside(name: str, outers: Iterable[str]) -> bool:
    """Whether module ``name`` is one of ``outers``' submodules (or ``outers`` holds the root)."""
    return any(not outer or name.startswith(outer + ".") for outer in outers)


def is_conv(module: nn.Module) -> bool:
    """Whether ``module`` convolves (counts its cost in images, not rows)."""
    return hasattr(module, "kernel_size")


def samples_per_layer(
    model: nn.Module, batch: int, input_size: Sequence[int]
) -> dict[nn.Module, tuple[int, int]]:
    """What each linear-like layer sees, recorded by running ``model`` once on zeros.

    Per layer ``(samples, rows)``: samples are what ``cost(batch)`` counts (images for a
    convolution, which remembers their size; rows of the flattened input for a linear layer),
    rows what its weight multiplies (``images·H_out·W_out`` for a convolution).
    """
    seen: dict[nn.Module, tuple[int, int]] = {}

    def record(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        x = args[0]
        if is_conv(module):
            seen[module] = (x.shape[0], output.shape[0] * output.shape[-2] * output.shape[-1])
        else:
            rows = x.numel() // x.shape[-1]
            seen[module] = (rows, rows)

    hooks = [
        m.register_forward_hook(record)
        for m in model.modules()
        if isinstance(m, TensorNetworkLayer | nn.Linear | nn.Conv2d)
    ]
    first = next(model.parameters())
    try:
        with torch.no_grad():
            model(torch.zeros(batch, *input_size, dtype=first.dtype, device=first.device))
    finally:
        for hook in hooks:
            hook.remove()
    return seen


def summary(model: nn.Module, batch: int = 64, input_size: Sequence[int] | None = None) -> str:
    """A table of every tensor-network layer in ``model`` and every ``nn.Linear``/``nn.Conv2d``.

    Columns: layer name, type, features, parameters, dense parameters, ratio, chosen strategy and
    forward FLOPs for ``batch`` inputs. The footer gives the total parameters and ρ, the
    compression ratio of MPO-Net's eq. 9 (tensor-network layers only, biases excluded). Layers
    are read through the [`TensorNetworkLayer`][tnlayers.TensorNetworkLayer] protocol only, so
    every tnlayers layer — and any layer of yours that follows the protocol — is listed.

    Parameters
    ----------
    model
        Any module.
    batch
        Batch size the FLOPs are counted for.
    input_size
        Shape of one input without the batch (e.g. ``(1, 28, 28)``). When given, the model runs
        once on zeros to learn how many rows each layer sees (convolutions multiply
        ``batch·H_out·W_out`` rows); without it linear layers count ``batch`` rows and
        convolutions show no FLOPs.
    """
    seen = samples_per_layer(model, batch, input_size) if input_size is not None else {}
    header = ("layer", "type", "in→out", "params", "dense", "ratio", "strategy", "fwd FLOPs")
    table = [header]
    total = dense_total = 0
    tn_layers = tensor_network_layers(model)
    for name, module in model.named_modules():
        mode: Mode = "training" if module.training else "inference"
        samples, rows = seen.get(module, (None, None) if is_conv(module) else (batch, batch))
        layer = tn_layers.get(name)
        if layer is not None:
            params, dense = layer.num_params, layer.in_features * layer.out_features
            fan_in, out = layer.in_features, layer.out_features
            strategy, flops = "—", None
            if samples is not None:
                report = layer.cost(samples, mode=mode)
                strategy, flops = report.strategy, report.chosen.flops
        elif isinstance(module, nn.Linear | nn.Conv2d) and not _inside(name, tn_layers):
            params = dense = module.weight.numel()
            strategy = "dense"
            fan_in = module.weight[0].numel()
            out = module.weight.shape[0]
            flops = None if rows is None else 2 * rows * fan_in * out
        else:
            continue
        total += params
        dense_total += dense
        table.append(
            (
                name,
                type(module).__name__,
                f"{fan_in}→{out}",
                f"{params:,}",
                f"{dense:,}",
                f"{params / dense:.3g}",
                strategy,
                "—" if flops is None else f"{flops:.3g}",
            )
        )
    if len(table) == 1:
        return "no linear, convolution or tensor-network layers found"
    footer = (
        f"weights: {total:,} parameters vs {dense_total:,} dense "
        f"(ratio {total / dense_total:.3g}), batch {batch}"
    )
    if tn_layers:
        footer += (
            f"\nρ (MPO-Net, eq. 9; tensor-network layers only): {_rho(tn_layers.values()):.4g}"
        )
    return format_table(table) + "\n" + footer
