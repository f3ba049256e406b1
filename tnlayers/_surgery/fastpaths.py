"""Turn off PyTorch's fused transformer paths where a replaced layer would break them.

``nn.TransformerEncoderLayer`` and ``nn.TransformerEncoder`` have an inference fast path that
passes ``linear1.weight``, ``self_attn.in_proj_weight`` and friends straight to one fused kernel.
A tensor-network layer has no such weight, so once a child is replaced the ordinary path (which
calls each child as a module) must run. Both modules read a flag that only selects the fast
path; setting it is exactly "use the ordinary path".
"""

from __future__ import annotations

from torch import nn

__all__ = ["disable_fused_paths"]


def _stock(layer: nn.TransformerEncoderLayer) -> bool:
    return (
        type(layer.self_attn) is nn.MultiheadAttention
        and isinstance(layer.linear1, nn.Linear)
        and isinstance(layer.linear2, nn.Linear)
    )


def disable_fused_paths(model: nn.Module) -> list[str]:
    """Send every transformer encoder (layer) holding a replaced child down the ordinary path.

    Returns the paths changed.
    """
    changed = []
    for name, module in model.named_modules():
        if isinstance(module, nn.TransformerEncoderLayer) and not _stock(module):
            if module.activation_relu_or_gelu:
                module.activation_relu_or_gelu = 0  # only read to choose the fused path
                changed.append(name)
        elif isinstance(module, nn.TransformerEncoder) and not all(
            _stock(layer)
            for layer in module.layers
            if isinstance(layer, nn.TransformerEncoderLayer)
        ):
            if getattr(module, "use_nested_tensor", False):
                module.use_nested_tensor = False  # only read to choose the fused path
                changed.append(name)
    return changed
