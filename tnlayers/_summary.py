"""Analyse: a model summary listing every tensor-network layer with its cost."""

from __future__ import annotations

from torch import nn

from ._layer import TNLinear
from ._table import format_table

__all__ = ["summary"]


def summary(model: nn.Module, batch: int = 64) -> str:
    """A table of every [`TNLinear`][tnlayers.TNLinear] in ``model`` (and every ``nn.Linear``).

    Columns: layer name, features, parameters, dense parameters, ratio, chosen strategy and forward
    FLOPs at ``batch`` rows.
    """
    rows = [("layer", "type", "in→out", "params", "dense", "ratio", "strategy", "fwd FLOPs")]
    total = dense_total = 0
    for name, module in model.named_modules():
        if isinstance(module, TNLinear):
            report = module.cost(batch, mode="training" if module.training else "inference")
            data = report.to_dict()
            rows.append(
                (
                    name,
                    "TNLinear",
                    f"{module.in_features}→{module.out_features}",
                    f"{data['params']:,}",
                    f"{data['dense_params']:,}",
                    f"{data['compression_ratio']:.3g}",
                    data["strategy"],
                    f"{data['flops']:.3g}",
                )
            )
            total += data["params"]
            dense_total += data["dense_params"]
        elif isinstance(module, nn.Linear):
            n = module.in_features * module.out_features
            rows.append(
                (
                    name,
                    "Linear",
                    f"{module.in_features}→{module.out_features}",
                    f"{n:,}",
                    f"{n:,}",
                    "1",
                    "dense",
                    f"{2 * batch * n:.3g}",
                )
            )
            total += n
            dense_total += n
    if len(rows) == 1:
        return "no linear or tensor-network layers found"
    footer = (
        f"weights: {total:,} parameters vs {dense_total:,} dense "
        f"(ratio {total / dense_total:.3g}), batch {batch}"
    )
    return format_table(rows) + "\n" + footer
