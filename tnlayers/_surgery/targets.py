"""Find the weight matrices of a model that compression may replace, and why others are kept.

A *target* is one layer object, wherever it sits: a module used at several places (shared
submodules, ``nn.Sequential(s, relu, s)``) is one target with several paths, so that every
occurrence is replaced by the same new module and the sharing survives. A layer whose weight
*parameter* is also held by another module (a tied embedding and output head) is kept dense and
reported, because a replacement would silently untie it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .._layers.attention import UnfusedMultiheadAttention

__all__ = [
    "Skipped",
    "Target",
    "find_targets",
    "hf_conv1d",
    "kind_of",
    "matrix_shape",
    "occurrences",
    "replace_module",
    "unfuse_attention",
]

ROOT = ""


def hf_conv1d(module: nn.Module) -> bool:
    """Hugging Face's ``Conv1D`` (GPT-2's projections): ``y = x @ W + b`` with ``W (in, out)``."""
    weight = getattr(module, "weight", None)
    return (
        type(module).__name__ == "Conv1D"
        and hasattr(module, "nf")
        and isinstance(weight, torch.Tensor)
        and weight.dim() == 2
    )


def kind_of(module: nn.Module) -> str | None:
    """``"Linear"``, ``"Conv1d"``, ``"Conv2d"``, ``"Conv1D"`` (Hugging Face) or ``None``."""
    if isinstance(module, nn.Linear):
        return "Linear"
    if isinstance(module, nn.Conv2d):
        return "Conv2d"
    if isinstance(module, nn.Conv1d):
        return "Conv1d"
    if hf_conv1d(module):
        return "Conv1D"
    return None


def matrix_shape(kind: str, weight: torch.Tensor) -> tuple[int, int]:
    """``(out_features, in_features)`` of the matrix a ``kind`` layer's weight stands for."""
    if kind == "Conv1D":
        return int(weight.shape[1]), int(weight.shape[0])
    return int(weight.shape[0]), int(weight[0].numel())


@dataclass(frozen=True)
class Target:
    """One layer to replace.

    Attributes
    ----------
    name
        Its first path in the model (``""`` for the model itself).
    paths
        Every path at which the module occurs.
    module
        The layer.
    kind
        ``"Linear"``, ``"Conv1d"``, ``"Conv2d"`` or ``"Conv1D"``.
    """

    name: str
    paths: tuple[str, ...]
    module: nn.Module
    kind: str

    @property
    def weight(self) -> torch.Tensor:
        """The weight parameter itself."""
        return self.module.weight  # type: ignore[return-value]

    def matrix(self) -> torch.Tensor:
        """The weight as the ``(out_features, in_features)`` matrix a network replaces.

        Convolutions flatten to ``(C_out, C_in/groups·k…)`` (the kernel matrix); Hugging Face's
        ``Conv1D`` stores ``(in, out)`` and is transposed.
        """
        weight = self.weight.detach()
        if self.kind == "Conv1D":
            return weight.t()
        return weight.reshape(weight.shape[0], -1)

    @property
    def shape(self) -> tuple[int, int]:
        """``(out_features, in_features)`` of `matrix`."""
        return matrix_shape(self.kind, self.weight)

    @property
    def params(self) -> int:
        """Weights (bias excluded)."""
        return self.weight.numel()


@dataclass(frozen=True)
class Skipped:
    """A candidate layer kept as it is, and why."""

    name: str
    kind: str
    shape: tuple[int, int] | None
    reason: str


def occurrences(model: nn.Module) -> dict[nn.Module, list[str]]:
    """Every path of every module (a shared module has several), the root as ``""``."""
    paths: dict[nn.Module, list[str]] = {model: [ROOT]}
    for parent_name, parent in model.named_modules(remove_duplicate=False):
        # named_children() skips a module's second occurrence; _modules has every slot.
        for child_name, child in parent._modules.items():
            if child is None:
                continue
            path = f"{parent_name}.{child_name}" if parent_name else child_name
            found = paths.setdefault(child, [])
            if path not in found:
                found.append(path)
    return paths


def _parameter_owners(model: nn.Module) -> dict[int, set[nn.Module]]:
    owners: dict[int, set[nn.Module]] = {}
    for module in model.modules():
        for parameter in module._parameters.values():
            if parameter is not None:
                owners.setdefault(id(parameter), set()).add(module)
    return owners


def _matches(name: str, names: Sequence[str] | None) -> bool:
    return names is None or any(fnmatch.fnmatchcase(name, pattern) for pattern in names)


def _why_not(
    module: nn.Module,
    kind: str,
    owners: dict[int, set[nn.Module]],
    paths: dict[nn.Module, list[str]],
    parents: dict[nn.Module, nn.Module],
) -> str | None:
    weight = module.weight
    if isinstance(weight, nn.parameter.UninitializedParameter):
        return "its weight is not initialised yet (a lazy module: run one forward pass first)"
    if nn.utils.parametrize.is_parametrized(module):
        return (
            "its weight is parametrized (torch.nn.utils.parametrize); remove the "
            "parametrization first, or it would be silently dropped"
        )
    if not isinstance(weight, torch.Tensor) or weight.dim() < 2:
        return "it has no weight matrix"
    others = owners.get(id(weight), set()) - {module}
    if others:
        other = min(p for m in others for p in paths.get(m, ["?"]))
        return (
            f"its weight is tied to {other!r} (the same Parameter); it stays dense so that the "
            "tie is kept"
        )
    parent = parents.get(module)
    if isinstance(parent, nn.MultiheadAttention):
        return "inside nn.MultiheadAttention, which reads out_proj.weight directly"
    if kind in ("Conv1d", "Conv2d") and getattr(module, "padding_mode", "zeros") != "zeros":
        return f"padding_mode={module.padding_mode!r}; tensor-network convolutions pad with zeros"
    return None


def find_targets(
    model: nn.Module,
    names: Sequence[str] | None,
    types: tuple[type, ...],
    min_params: int,
) -> tuple[list[Target], list[Skipped], list[str]]:
    """The layers to replace, the matching layers kept (with the reason) and every candidate.

    Returns
    -------
    targets, skipped, candidates
        ``candidates`` describes every known layer (for error messages).
    """
    paths = occurrences(model)
    owners = _parameter_owners(model)
    parents = {child: parent for parent in model.modules() for child in parent.children()}
    targets: list[Target] = []
    skipped: list[Skipped] = []
    candidates: list[str] = []
    for module, where in paths.items():
        kind = kind_of(module)
        if kind is None:
            continue
        name = where[0]
        weight = module.weight
        lazy = isinstance(weight, nn.parameter.UninitializedParameter)
        count = weight.numel() if isinstance(weight, torch.Tensor) and not lazy else 0
        shown = name or "(the model itself)"
        candidates.append(f"{shown} ({kind}, {count:,} weights)")
        # Hugging Face's Conv1D is a linear layer with its weight stored transposed.
        selected_type = isinstance(module, types) or (
            kind == "Conv1D" and issubclass(nn.Linear, types)
        )
        if not (selected_type and any(_matches(p, names) for p in where)):
            continue
        if count < min_params and not lazy:
            continue
        reason = _why_not(module, kind, owners, paths, parents)
        target = Target(name, tuple(where), module, kind)
        if reason is not None:
            shape = None if lazy or reason == "it has no weight matrix" else target.shape
            skipped.append(Skipped(name, kind, shape, reason))
            continue
        targets.append(target)
    return targets, skipped, candidates


def unfuse_attention(
    model: nn.Module, names: Sequence[str] | None, types: tuple[type, ...]
) -> tuple[nn.Module, list[str]]:
    """Swap each ``nn.MultiheadAttention`` whose projections are selected for an
    [`UnfusedMultiheadAttention`][tnlayers.UnfusedMultiheadAttention] (the same function).

    Returns the model (a new object only if it was itself an attention) and the paths swapped.
    """
    if not issubclass(nn.Linear, types):
        return model, []
    swapped: list[str] = []
    for module, where in list(occurrences(model).items()):
        if not isinstance(module, nn.MultiheadAttention):
            continue
        projections = [
            f"{path}.{p}" if path else p
            for path in where
            for p in ("q_proj", "k_proj", "v_proj", "out_proj")
        ]
        if not any(_matches(p, names) for p in projections):
            continue
        new = UnfusedMultiheadAttention.from_attention(module)
        model = replace_module(model, where, new)
        swapped.append(where[0])
    return model, swapped


def replace_module(model: nn.Module, paths: Sequence[str], new: nn.Module) -> nn.Module:
    """Put ``new`` at every path; returns the model (``new`` itself if a path is the root)."""
    for path in paths:
        if path == ROOT:
            return new
        parent_path, _, attribute = path.rpartition(".")
        parent = model.get_submodule(parent_path)
        setattr(parent, attribute, new)
    return model
