"""Structure-aware learning rates: Adam parameter groups from each tensor's fan-in.

Every tensor of a tensor-network layer is one small dense map of the forward pass (see
[`tensor_fans`][tnlayers.analysis.tensor_fans]); dense layers are one map each. The
maximal-update parametrisation (μP) for Adam gives a hidden dense map of fan-in ``n`` the
learning rate ``η ∝ 1/n``, so that its update moves the layer's output by the same amount at
any width (Yang et al. 2022, "Tensor Programs V: Tuning Large Neural Networks via Zero-Shot
Hyperparameter Transfer"). Qiu et al. 2024 ("Compute Better Spent: Replacing Dense Layers with
Structured Matrices", table 2) apply it to each factor of a structured layer and divide by the
number of factors, whose updates add up. ``param_groups`` does both for any network.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import torch
from torch import nn

from ._core.errors import OptionError
from ._core.fans import tensor_fans
from ._layers.linear import TNLinear

__all__ = ["LearningRate", "learning_rates", "param_groups"]

_DENSE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


class LearningRate(NamedTuple):
    """One row of [`learning_rates`][tnlayers.training.learning_rates]."""

    name: str
    """The parameter's name in ``model.named_parameters()``."""
    lr: float
    """Its learning rate."""
    reason: str
    """How the rule derived it."""


def _check(lr: float, base_fan_in: int) -> None:
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not lr > 0:
        raise OptionError(f"lr must be a positive number, got {lr!r}")
    if isinstance(base_fan_in, bool) or not isinstance(base_fan_in, int) or base_fan_in < 1:
        raise OptionError(f"base_fan_in must be a positive integer, got {base_fan_in!r}")


def _tensor_parameters(layer: TNLinear) -> dict[str, nn.Parameter]:
    """Network tensor name → the parameter holding it (the original of a parametrised one)."""
    found: dict[str, nn.Parameter] = {}
    params = dict(layer.tensors.named_parameters())
    for name in layer.network.tensor_names:
        param = params.get(name, params.get(f"parametrizations.{name}.original"))
        if param is not None:
            found[name] = param
    return found


def _rates(
    model: nn.Module, lr: float, base_fan_in: int
) -> Iterator[tuple[str, torch.Tensor, float, str]]:
    """``(name, parameter, learning rate, reason)`` for every trainable parameter, once each."""
    named = {id(p): name for name, p in model.named_parameters()}
    assigned: set[int] = set()

    def emit(
        param: torch.Tensor, rate: float, why: str
    ) -> Iterator[tuple[str, torch.Tensor, float, str]]:
        if id(param) in assigned or not param.requires_grad or id(param) not in named:
            return
        assigned.add(id(param))
        yield named[id(param)], param, rate, why

    for module in model.modules():
        if isinstance(module, TNLinear):
            fans = tensor_fans(module.network)
            count = len(fans)
            for tensor, param in _tensor_parameters(module).items():
                fan = fans[tensor]
                rate = lr * base_fan_in / (count * fan.fan_in)
                why = f"tensor {tensor!r} of {count}: fan-in {fan.fan_in}"
                yield from emit(param, rate, why)
        elif isinstance(module, _DENSE):
            fan_in = module.weight[0].numel()
            yield from emit(module.weight, lr * base_fan_in / fan_in, f"dense: fan-in {fan_in}")
    for param in model.parameters():
        yield from emit(param, lr, "vector-like (bias, gain, angle, embedding): lr")


def learning_rates(model: nn.Module, lr: float, *, base_fan_in: int = 256) -> list[LearningRate]:
    """The learning rate [`param_groups`][tnlayers.param_groups] gives each parameter, and why.

    Returns
    -------
    list of LearningRate
        ``(name, lr, reason)`` per trainable parameter, in ``named_parameters`` order.
    """
    _check(lr, base_fan_in)
    found = _rates(model, lr, base_fan_in)
    rows = {name: LearningRate(name, rate, why) for name, _, rate, why in found}
    return [rows[name] for name, _ in model.named_parameters() if name in rows]


def param_groups(
    model: nn.Module,
    lr: float,
    *,
    base_fan_in: int = 256,
    **options: Any,
) -> list[dict[str, Any]]:
    r"""Adam parameter groups with a structure-aware learning rate for every tensor.

    Each tensor of a tensor-network layer is one dense map of the forward pass with some fan-in
    ``n_t`` ([`tensor_fans`][tnlayers.analysis.tensor_fans]); in a layer of ``c`` tensors it
    gets

    $$\eta_t = \frac{\text{lr} \cdot \text{base\_fan\_in}}{c \cdot n_t},$$

    the maximal-update (μP) rule for Adam applied factor by factor, as Qiu et al. 2024 do for
    low-rank, Kronecker, Monarch, TT and BTT layers (their table 2 is this formula). Dense
    ``nn.Linear`` and ``nn.Conv*`` weights get the same rule with ``c = 1`` (μP for hidden
    layers: an input layer's fan-in does not grow with width, so its rate stays put); every other
    parameter — biases, norm gains, embeddings, circuit angles — gets ``lr``.

    So ``lr`` is the rate of a dense layer of fan-in ``base_fan_in``: tune it once on a model of
    that width and the same ``lr`` serves the model at other widths and with other structures.
    Made for Adam-type optimisers (Adam, AdamW); SGD needs another rule.

    Parameters
    ----------
    model
        Any module; tensor-network layers are recognised wherever they sit.
    lr
        The base learning rate.
    base_fan_in
        The fan-in at which a dense layer gets exactly ``lr``.
    **options
        Added to every group (e.g. ``weight_decay=0.01``).

    Returns
    -------
    list of dict
        One group per distinct rate: ``{"params": [...], "lr": ..., "names": [...], **options}``,
        ready for ``torch.optim.Adam(param_groups(model, 1e-3))``. Each trainable parameter is in
        exactly one group (shared ones once); frozen ones are left out.

    Examples
    --------
    >>> import torch, tnlayers
    >>> model = torch.nn.Sequential(tnlayers.TNLinear(tnlayers.btt(256, 256, 2)),
    ...                             torch.nn.ReLU(), torch.nn.Linear(256, 10))
    >>> for group in tnlayers.param_groups(model, 1e-3):
    ...     print(f"{group['lr']:.2e}", group["names"])
    8.00e-03 ['0.tensors.A']
    4.00e-03 ['0.tensors.B']
    1.00e-03 ['2.weight', '0.bias', '2.bias']
    """
    _check(lr, base_fan_in)
    groups: dict[float, dict[str, Any]] = {}
    for name, param, rate, _ in _rates(model, lr, base_fan_in):
        group = groups.setdefault(rate, {"params": [], "lr": rate, "names": [], **options})
        group["params"].append(param)
        group["names"].append(name)
    return list(groups.values())
