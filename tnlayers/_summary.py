"""Analyse: a model summary listing every tensor-network layer with its cost, and ρ."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._cost import Mode
from ._givens_layers import GivensLinear
from ._layer import TNLinear
from ._mpo_layers import MPOConv2d
from ._table import format_table

__all__ = ["compression_ratio", "summary"]


def compression_ratio(model: nn.Module) -> float:
    r"""ρ of MPO-Net's eq. 9: tensor-network parameters over the dense parameters they replace.

    ``ρ = Σ_l N_tn^{(l)} / Σ_l N_dense^{(l)}`` over the model's tensor-network layers only
    (biases and untouched layers excluded).

    Raises
    ------
    ValueError
        If the model has no tensor-network layer.
    """
    layers = [m for m in model.modules() if isinstance(m, TNLinear | GivensLinear)]
    if not layers:
        raise ValueError(f"{type(model).__name__} has no tensor-network layer: ρ is undefined")
    return sum(m.num_params for m in layers) / sum(_dense_params(m) for m in layers)


def _dense_params(layer: TNLinear | GivensLinear) -> int:
    """Entries of the dense weight a tensor-network layer stands for."""
    if isinstance(layer, GivensLinear):
        return layer.n * layer.n
    return layer.network.dense_params


def _rows_per_layer(
    model: nn.Module, batch: int, input_size: Sequence[int]
) -> dict[nn.Module, int]:
    """Rows each linear-like layer multiplies, recorded by running ``model`` once on zeros."""
    rows: dict[nn.Module, int] = {}

    def record(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if isinstance(module, nn.Conv2d | MPOConv2d):
            rows[module] = output.shape[0] * output.shape[2] * output.shape[3]
        else:
            rows[module] = args[0].numel() // args[0].shape[-1]

    kinds = (TNLinear, GivensLinear, nn.Linear, nn.Conv2d)
    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, kinds)]
    first = next(model.parameters())
    try:
        with torch.no_grad():
            model(torch.zeros(batch, *input_size, dtype=first.dtype, device=first.device))
    finally:
        for hook in hooks:
            hook.remove()
    return rows


def summary(model: nn.Module, batch: int = 64, input_size: Sequence[int] | None = None) -> str:
    """A table of every tensor-network layer in ``model`` and every ``nn.Linear``/``nn.Conv2d``.

    Columns: layer name, type, features, parameters, dense parameters, ratio, chosen strategy and
    forward FLOPs for ``batch`` inputs. The footer gives the total parameters and ρ, the
    compression ratio of MPO-Net's eq. 9 (tensor-network layers only, biases excluded).

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
    rows_seen = _rows_per_layer(model, batch, input_size) if input_size is not None else {}
    header = ("layer", "type", "in→out", "params", "dense", "ratio", "strategy", "fwd FLOPs")
    table = [header]
    total = dense_total = 0
    for name, module in model.named_modules():
        is_conv = isinstance(module, nn.Conv2d | MPOConv2d)
        rows = rows_seen.get(module, None if is_conv else batch)
        if isinstance(module, TNLinear):
            params, dense = module.num_params, module.network.dense_params
            mode: Mode = "training" if module.training else "inference"
            strategy: str = module.strategy
            flops = None
            if rows is not None:
                data = module.rows_cost(rows, mode=mode).to_dict()
                strategy, flops = data["strategy"], data["flops"]
            features = f"{module.in_features}→{module.out_features}"
        elif isinstance(module, GivensLinear):
            # Circuits of rotations run by their own schedules; same columns, same meaning.
            params, dense = module.num_params, _dense_params(module)
            training = module.training
            strategy = module.chosen_strategy(rows or batch, training)
            flops = module.plan(rows or batch, training).flops(strategy, rows or batch)  # type: ignore[arg-type]
            features = f"{module.n}→{module.n}"
        elif isinstance(module, nn.Linear | nn.Conv2d):
            params = dense = module.weight.numel()
            strategy = "dense"
            fan_in = module.weight[0].numel()
            out = module.weight.shape[0]
            flops = None if rows is None else 2 * rows * fan_in * out
            features = f"{fan_in}→{out}"
        else:
            continue
        total += params
        dense_total += dense
        table.append(
            (
                name,
                type(module).__name__,
                features,
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
    if any(isinstance(m, TNLinear | GivensLinear) for m in model.modules()):
        rho = compression_ratio(model)
        footer += f"\nρ (eq. 9 of MPO-Net, tensor-network layers only): {rho:.4g}"
    return format_table(table) + "\n" + footer
