"""Restore: rebuild a compressed model's skeleton from the report's spec, with no decomposition."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, cast

import torch
from torch import nn

from .._core.errors import OptionError, ShapeError
from .._core.network import Network
from .build import LAYER_CLASSES, build_layer, zero_values
from .fastpaths import disable_fused_paths
from .report import SPEC_FORMAT, SPEC_VERSION
from .targets import kind_of, matrix_shape, replace_module, unfuse_attention

__all__ = ["restore"]


def _parse(spec: str | bytes | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(spec, str | bytes):
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as error:
            raise OptionError(f"the spec is not valid JSON: {error}") from error
    if not isinstance(spec, Mapping) or spec.get("format") != SPEC_FORMAT:
        raise OptionError(
            "not a compression spec: expected the JSON of CompressionReport.to_json() (or its "
            f"parsed dict) with format {SPEC_FORMAT!r}"
        )
    if spec.get("version", 0) > SPEC_VERSION:
        raise OptionError(
            f"the spec has version {spec['version']}, newer than this tnlayers reads "
            f"({SPEC_VERSION}); upgrade tnlayers"
        )
    return spec


def restore(model: nn.Module, spec: str | bytes | Mapping[str, Any]) -> nn.Module:
    """Apply a compression spec to a freshly built dense model: the skeleton of the compressed one.

    Replaces, in place, the same modules by the same layer classes holding the same networks
    (their values zeros), unfuses the same attention modules — no trained weights needed, no
    decomposition run. The compressed model's ``state_dict`` then loads with ``strict=True``
    and gives its outputs exactly.

    Parameters
    ----------
    model
        The dense model, built as the one that was compressed (its weights do not matter).
        Modified in place, like ``load_state_dict``.
    spec
        ``report.to_json()`` of [`compress`][tnlayers.compress], or its parsed dict.

    Returns
    -------
    nn.Module
        The model (the replacement itself if the spec replaced the model's root).

    Raises
    ------
    OptionError
        If the spec is not one, or names a module path the model lacks.
    ShapeError
        If a module at a spec's path is not the layer type or size that was compressed.

    Examples
    --------
    >>> import torch, tnlayers
    >>> def build():
    ...     return torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.Linear(16, 4))
    >>> small, report = tnlayers.compress(build(), rank=2)
    >>> spec, state = report.to_json(), small.state_dict()  # save both
    >>> again = tnlayers.restore(build(), spec)
    >>> again.load_state_dict(state)  # strict
    <All keys matched successfully>
    """
    parsed = _parse(spec)
    unfused = list(parsed.get("unfused_attention", []))
    if unfused:
        patterns = [f"{path}.*" if path else "*" for path in unfused]
        model, done = unfuse_attention(model, patterns, (nn.Linear,))
        missing = sorted(set(unfused) - set(done))
        if missing:
            raise OptionError(
                f"the spec unfuses attention at {missing}, but the model has no "
                "nn.MultiheadAttention there"
            )
    for entry in parsed.get("layers", []):
        paths = list(entry["paths"])
        try:
            module = model if paths[0] == "" else model.get_submodule(paths[0])
        except AttributeError as error:
            raise OptionError(
                f"the spec replaces {paths[0]!r}, but the model has no such module ({error})"
            ) from error
        kind = kind_of(module)
        if kind is None or kind != entry["kind"]:
            raise ShapeError(
                f"the spec replaces {paths[0]!r}, a {entry['kind']}, but the model has a "
                f"{type(module).__name__} there"
            )
        network = Network.from_dict(entry["network"])
        shape = tuple(entry["shape"])
        weight = cast(torch.Tensor, module.weight)
        actual = matrix_shape(kind, weight)
        if actual != shape:
            raise ShapeError(
                f"the spec replaces {paths[0]!r}, a {shape[0]} × {shape[1]} weight, but the "
                f"model's is {actual[0]} × {actual[1]}: build the model with the same sizes"
            )
        if entry["replacement"] not in LAYER_CLASSES:
            raise OptionError(f"unknown replacement {entry['replacement']!r} in the spec")
        new = build_layer(kind, module, entry["replacement"], network, zero_values(network, weight))
        model = replace_module(model, paths, new)
    disable_fused_paths(model)
    return model
