"""Compress: swap a trained model's weight matrices for tensor-network layers.

[`compress`][tnlayers.compress] walks any model — shared submodules, the root, attention, Hugging
Face's ``Conv1D`` included — picks layers by name pattern, type and size, approximates each weight
by the chosen method (or any network, fitted), and returns the new model with a
[`CompressionReport`][tnlayers.CompressionReport] that is also the recipe to
[`restore`][tnlayers.restore] a checkpoint.
"""

from __future__ import annotations

import copy
import fnmatch
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Literal, cast

import torch
from torch import nn

from .._analysis.summary import samples_per_layer
from .._core.errors import OptionError
from .._core.network import Network
from .budget import allocate
from .build import build_layer, layer_class
from .decompose import (
    AUTO_STRUCTURES,
    Candidate,
    Option,
    fitted,
    kronecker_candidate,
    ladder,
    mpo_candidate,
    svd_ladder,
)
from .fastpaths import disable_fused_paths
from .report import BudgetSummary, CompressionReport, LayerCompression
from .targets import Skipped, Target, find_targets, occurrences, replace_module, unfuse_attention

__all__ = ["compress"]

Method = Literal["low_rank", "mpo", "kronecker", "auto"]
NetworkBuilder = Callable[[int, int], Network]
METHODS = ("low_rank", "mpo", "kronecker", "auto")


def _positive_int(name: str, value: object) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise OptionError(f"{name} must be a positive integer, got {value!r}")


def _ratio(name: str, value: object, upper: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise OptionError(f"{name} must be a finite number, got {value!r}")
    if value <= 0 or (upper is not None and value > upper):
        bound = f"in (0, {upper:g}]" if upper is not None else "positive"
        raise OptionError(f"{name} must be {bound}, got {value!r}")


def _validate(method: str, settings: dict[str, object], network: object) -> None:
    rank, rel_error, param_ratio, total = (
        settings["rank"], settings["rel_error"], settings["param_ratio"],
        settings["total_param_ratio"],
    )  # fmt: skip
    _positive_int("rank", rank)
    _positive_int("max_bond", settings["max_bond"])
    _positive_int("terms", settings["terms"])
    _positive_int("cores", settings["cores"])
    _ratio("param_ratio", param_ratio, None)
    _ratio("total_param_ratio", total, 1.0)
    if rel_error is not None and (
        isinstance(rel_error, bool)
        or not isinstance(rel_error, int | float)
        or not 0 <= rel_error < 1
    ):
        raise OptionError(f"rel_error must be a number in [0, 1), got {rel_error!r}")
    given = [k for k, v in settings.items() if v is not None]
    if network is not None:
        if given:
            raise OptionError(
                f"network= fixes each layer's structure and size; {', '.join(given)} do not "
                "apply (use a builder that takes the size you want)"
            )
        return
    if method not in METHODS:
        raise OptionError(f"unknown method {method!r}; choose one of {METHODS} or give network=")
    allowed = {
        "low_rank": {"rank", "rel_error", "param_ratio", "total_param_ratio"},
        "mpo": {"max_bond", "rel_error", "param_ratio", "total_param_ratio", "cores"},
        "kronecker": {"terms", "rel_error", "param_ratio", "total_param_ratio"},
        "auto": {"param_ratio", "total_param_ratio", "cores"},
    }[method]
    wrong = [k for k in given if k not in allowed]
    if wrong:
        raise OptionError(
            f"method={method!r} does not take {', '.join(wrong)}; it takes "
            f"{', '.join(sorted(allowed))}"
        )
    sizes = set(given) - {"cores"}
    if method == "mpo":
        # TT-SVD truncates by a bond cap and an error target together; budgets stand alone.
        valid = ({"max_bond"}, {"rel_error"}, {"max_bond", "rel_error"}, {"param_ratio"},
                 {"total_param_ratio"})  # fmt: skip
        if sizes not in valid:
            raise OptionError(
                "method='mpo' needs max_bond= (largest bond) and/or rel_error= (TT-SVD's "
                "truncation), or one of param_ratio=, total_param_ratio="
                + (f"; got {', '.join(sorted(sizes))}" if sizes else "")
            )
        return
    if method == "kronecker" and not sizes:
        return  # one term
    if len(sizes) != 1:
        choices = ", ".join(f"{k}=" for k in sorted(allowed - {"cores"}))
        raise OptionError(
            f"method={method!r} needs exactly one of {choices}; got {given or 'none'}"
        )


def _count(model: nn.Module) -> int:
    """Parameters of the model, each shared one once (a lazy one, not yet sized, as 0)."""
    return sum(
        0 if isinstance(p, nn.parameter.UninitializedParameter) else p.numel()
        for p in model.parameters()
    )


def _within(options: Sequence[Option], share: float) -> Option | None:
    fitting = [o for o in options if o.params <= share]
    return fitting[-1] if fitting else None


def _auto(
    matrix: torch.Tensor,
    share: float,
    cores: int | None,
    known: Mapping[str, Sequence[Option]] | None = None,
) -> tuple[Candidate | None, str]:
    """The structure with the least error within ``share`` parameters, and the comparison.

    ``known``: ladders already built for this matrix (the budget's low-rank one), not redone.
    """
    results: list[Candidate] = []
    for structure in AUTO_STRUCTURES:
        options = (known or {}).get(structure)
        if options is None:
            options = ladder(structure, matrix, cores=cores)
        option = _within(options, share)
        if option is not None:
            results.append(option.make())
    if not results:
        return None, ""
    ranked = sorted(results, key=lambda c: c.error)
    best = ranked[0]
    why = (
        f"{best.structure} ({best.setting}) has the least error within {share:,.0f} weights: "
        + ", ".join(f"{c.structure} {c.error:.3g}" for c in ranked)
    )
    return best, why


def _per_layer(
    target: Target, method: str, settings: dict[str, object], builder: NetworkBuilder | None
) -> tuple[Candidate | None, str, str]:
    """One layer's candidate (or ``None``: nothing fits), the auto comparison, and a reason."""
    matrix = target.matrix()
    rank = cast(int | None, settings["rank"])
    rel_error = cast(float | None, settings["rel_error"])
    param_ratio = cast(float | None, settings["param_ratio"])
    cores = cast(int | None, settings["cores"])
    if builder is not None:
        network = builder(target.shape[1], target.shape[0])
        if not isinstance(network, Network):
            raise OptionError(
                f"the network builder returned {type(network).__name__} for layer "
                f"{target.name!r}; it must return a tnlayers.Network"
            )
        setting = f"fitted, {len(network.tensor_names)} tensors"
        return fitted("network", network, matrix, setting, thorough=True), "", ""
    if param_ratio is not None:  # the largest size within this layer's share
        share = param_ratio * target.params
        if method == "auto":
            candidate, why = _auto(matrix, share, cores)
            return candidate, why, f"no structure fits in {share:,.0f} weights"
        options = (
            svd_ladder(matrix) if method == "low_rank" else ladder(method, matrix, cores=cores)
        )
        option = _within(options, share)
        if option is not None:
            return option.make(), "", ""
        if not options:
            return None, "", f"no {method} replacement has fewer weights than it"
        return None, "", f"its smallest {method} replacement needs {options[0].params:,} weights"
    if method == "low_rank":
        options = svd_ladder(matrix)
        if rank is not None:
            return options[min(rank, len(options)) - 1].make(), "", ""
        assert rel_error is not None  # validated: low rank takes exactly one size
        return next(o for o in options if o.error <= rel_error).make(), "", ""
    if method == "mpo":
        bond = cast(int | None, settings["max_bond"])
        return mpo_candidate(matrix, max_bond=bond, rel_error=rel_error, cores=cores), "", ""
    if rel_error is not None:  # kronecker: the fewest terms within the error, else the most
        options = ladder("kronecker", matrix)
        if not options:
            return None, "", "no Kronecker sum has fewer weights than it"
        good = [o for o in options if o.error <= rel_error]
        return (good[0] if good else options[-1]).make(), "", ""
    return kronecker_candidate(matrix, cast(int | None, settings["terms"]) or 1), "", ""


def _check_patterns(names: Sequence[str] | None, model: nn.Module) -> None:
    if names is None:
        return
    if isinstance(names, str):
        raise OptionError(f"names must be a list of patterns, got the string {names!r}")
    paths = [p for ps in occurrences(model).values() for p in ps if p]
    for pattern in names:
        if not any(fnmatch.fnmatchcase(p, pattern) for p in paths):
            raise OptionError(
                f"the pattern {pattern!r} in names= matches no module of the model; module "
                f"paths look like: {', '.join(paths[:8])}{', …' if len(paths) > 8 else ''}"
            )


def compress(
    model: nn.Module,
    method: Method = "low_rank",
    *,
    network: NetworkBuilder | Mapping[str, NetworkBuilder] | None = None,
    names: Sequence[str] | None = None,
    types: tuple[type, ...] = (nn.Linear, nn.Conv1d, nn.Conv2d),
    min_params: int = 0,
    rank: int | None = None,
    rel_error: float | None = None,
    param_ratio: float | None = None,
    total_param_ratio: float | None = None,
    max_bond: int | None = None,
    terms: int | None = None,
    cores: int | None = None,
    batch: int = 64,
    input_size: Sequence[int] | None = None,
    only_if_smaller: bool = True,
    inplace: bool = False,
    progress: Callable[[str], None] | None = None,
) -> tuple[nn.Module, CompressionReport]:
    """Replace chosen layers by tensor-network layers initialised from their trained weights.

    Handles ``nn.Linear``, ``nn.Conv1d``, ``nn.Conv2d`` (grouped and depthwise included) and
    Hugging Face's ``Conv1D``. A module used at several places is replaced everywhere by one
    new module (the sharing is kept); the model itself may be a layer (then the returned model
    is the replacement). Each replacement keeps its layer's bias, device, dtype, training mode
    and ``requires_grad`` (frozen layers stay frozen). ``nn.MultiheadAttention`` modules whose
    projections are selected become
    [`UnfusedMultiheadAttention`][tnlayers.UnfusedMultiheadAttention] (the same function, its
    ``q_proj``/``k_proj``/``v_proj``/``out_proj`` separate layers); fused
    transformer fast paths that read weights directly are switched off where needed.

    Kept as they are, each with the reason in ``report.skipped``: layers whose weight is tied to
    another module's (an embedding and an output head: replacing one would untie them), lazy
    or parametrized layers, non-zero padding modes, and — unless ``only_if_smaller=False`` —
    layers whose replacement would not have fewer weights.

    Parameters
    ----------
    model
        Any model. Not modified unless ``inplace``.
    method
        ``"low_rank"`` (truncated SVD), ``"mpo"`` (TT-SVD, Gao et al. 2020), ``"kronecker"``
        (nearest sum of Kronecker products), or ``"auto"``: per layer, the structure among
        low rank, MPO, Kronecker, tensor ring and BTT with the least weight error within the
        layer's share of ``param_ratio`` / ``total_param_ratio`` (the report says why).
    network
        Instead of a method: a builder ``(in_features, out_features) -> Network``, or a mapping
        from name patterns to builders (the first matching pattern wins; unmatched layers are
        kept), fitted to each weight by [`fit`][tnlayers.fit].
    names
        Shell-style patterns (``fnmatch``) on module paths, e.g. ``["features.*", "fc1"]``;
        default: every path. A pattern that matches no module raises.
    types
        Layer types to consider (Hugging Face's ``Conv1D`` counts as ``nn.Linear``).
    min_params
        Skip layers with fewer weights.
    rank, rel_error, param_ratio, total_param_ratio
        The size: a fixed rank (low rank); the smallest size whose relative Frobenius error
        is at most ``rel_error``; the largest size within ``param_ratio`` of each layer's
        weights; or ``total_param_ratio``: the whole model's parameters after / before, split
        across the layers where it costs the least error (the sum of squared relative errors
        is minimised), the allocation and the total in the report.
    max_bond, cores
        MPO: the bond cap (as [`tt_svd`][tnlayers.tt_svd]) and the number of cores.
    terms
        Kronecker: the number of terms (default 1).
    batch, input_size
        FLOPs are counted for ``batch`` inputs; convolutions need ``input_size`` (one input's
        shape without the batch) to know their output size.
    only_if_smaller
        Keep a layer whose replacement would not have fewer weights (listed in ``skipped``).
    inplace
        Modify ``model`` itself instead of a deep copy.
    progress
        Called with each layer's name before it is compressed.

    Returns
    -------
    model, report
        The compressed model and the [`CompressionReport`][tnlayers.CompressionReport]; save
        ``report.to_json()`` with the ``state_dict`` to reload it with
        [`restore`][tnlayers.restore].

    Raises
    ------
    OptionError
        For unknown methods, missing, conflicting, non-positive or NaN settings, patterns that
        match nothing, no matching layer, or a budget that no allocation can meet.
    """
    settings: dict[str, object] = {
        "rank": rank, "rel_error": rel_error, "param_ratio": param_ratio,
        "total_param_ratio": total_param_ratio, "max_bond": max_bond, "terms": terms,
        "cores": cores,
    }  # fmt: skip
    _validate(method, settings, network)
    _positive_int("batch", batch)
    if isinstance(min_params, bool) or not isinstance(min_params, int) or min_params < 0:
        raise OptionError(f"min_params must be a non-negative integer, got {min_params!r}")
    if not isinstance(types, tuple) or not all(isinstance(t, type) for t in types):
        raise OptionError(f"types must be a tuple of classes, got {types!r}")
    _check_patterns(names, model)

    target_model = model if inplace else copy.deepcopy(model)
    target_model, unfused = unfuse_attention(target_model, names, types)
    targets, skipped, candidates = find_targets(target_model, names, types, min_params)
    if network is not None and not callable(network):
        patterns = dict(network)
        targets_with_builder = []
        for t in targets:
            pattern = next(
                (p for p in patterns if any(fnmatch.fnmatchcase(x, p) for x in t.paths)), None
            )
            if pattern is None:
                skipped.append(
                    Skipped(t.name, t.kind, t.shape, "no pattern of network= matches it")
                )
            else:
                targets_with_builder.append((t, patterns[pattern]))
    else:
        targets_with_builder = [(t, network) for t in targets]  # type: ignore[misc]
    if not targets_with_builder and not skipped:
        raise OptionError(
            f"no layer matches names={names!r}, types={[t.__name__ for t in types]}, "
            f"min_params={min_params}; the model's layers are: "
            + ("; ".join(candidates) if candidates else "none")
        )

    chosen: list[tuple[Target, Candidate, str]] = []
    model_before = _count(target_model)
    if total_param_ratio is not None:
        layer_targets = [t for t, _ in targets_with_builder]
        if not layer_targets:
            raise OptionError(
                "total_param_ratio: every matching layer was kept; nothing to compress"
            )
        # auto splits the budget by the singular-value spectra, then picks the structures.
        allocated = "low_rank" if method == "auto" else method
        ladders = []
        shrinkable = []
        for t in layer_targets:
            if progress is not None:
                progress(t.name)
            options = ladder(allocated, t.matrix(), cores=cores)
            if options:
                ladders.append(options)
                shrinkable.append(t)
            else:  # too small to shrink (a 2 × 2 kernel): it stays dense inside the budget
                skipped.append(Skipped(t.name, t.kind, t.shape,
                                       "no replacement has fewer weights than it"))  # fmt: skip
        layer_targets = shrinkable
        if not layer_targets:
            raise OptionError(
                "total_param_ratio: no matching layer has a replacement with fewer weights"
            )
        fixed = model_before - sum(t.params for t in layer_targets)
        budget = total_param_ratio * model_before - fixed
        if budget <= 0:
            raise OptionError(
                f"total_param_ratio={total_param_ratio} allows "
                f"{total_param_ratio * model_before:,.0f} parameters, but the parts that are not "
                f"compressed already hold {fixed:,}: no allocation meets it (compress more "
                "layers or raise the ratio)"
            )
        picks = allocate(ladders, budget, [t.name for t in layer_targets])
        for t, options, pick in zip(layer_targets, ladders, picks, strict=True):
            if method == "auto":
                share = options[pick].params
                candidate, why = _auto(t.matrix(), share, cores, known={"low_rank": options})
                assert candidate is not None
            else:
                candidate, why = options[pick].make(), ""
            chosen.append((t, candidate, why))
    else:
        for t, builder in targets_with_builder:
            if progress is not None:
                progress(t.name)
            candidate, why, reason = _per_layer(t, method, settings, builder)
            if candidate is None:
                skipped.append(
                    Skipped(t.name, t.kind, t.shape, f"nothing fits the budget: {reason}")
                )
                continue
            chosen.append((t, candidate, why))

    replaced: list[tuple[Target, nn.Module, Candidate, str]] = []
    for t, candidate, why in chosen:
        if only_if_smaller and candidate.params >= t.params:
            skipped.append(
                Skipped(
                    t.name, t.kind, t.shape,
                    f"its replacement ({candidate.setting}: {candidate.params:,} weights) would "
                    f"not be smaller than its {t.params:,} weights (only_if_smaller=False "
                    "replaces it anyway)",
                )
            )  # fmt: skip
            continue
        kind = layer_class(t.kind, t.module, candidate.structure)
        new = build_layer(t.kind, t.module, kind, candidate.network, candidate.tensors)
        replaced.append((t, new, candidate, why))
    if targets_with_builder and not replaced:
        # Layers could have been compressed, but no setting fitted any: say why, change nothing.
        reasons = "; ".join(f"{s.name or '(model)'}: {s.reason}" for s in skipped)
        raise OptionError(f"no layer was compressed with these settings — {reasons}")

    seen_before = samples_per_layer(target_model, batch, input_size) if input_size else {}
    for t, new, _, _ in replaced:
        target_model = replace_module(target_model, t.paths, new)
    disable_fused_paths(target_model)
    seen_after = samples_per_layer(target_model, batch, input_size) if input_size else {}

    layers = []
    for t, new, candidate, why in replaced:
        matrix = t.matrix()
        with torch.no_grad():
            approx = new.to_dense().reshape(matrix.shape).to(matrix.dtype)  # type: ignore[operator]
        norm = torch.linalg.norm(matrix).item()
        error = torch.linalg.norm(approx - matrix).item() / norm if norm else 0.0
        conv = t.kind in ("Conv1d", "Conv2d")
        rows = seen_before[t.module][1] if t.module in seen_before else None if conv else batch
        samples = seen_after[new][0] if new in seen_after else None if conv else batch
        layers.append(
            LayerCompression(
                name=t.name,
                kind=t.kind,
                replacement=type(new).__name__,
                setting=candidate.setting,
                params_before=t.params,
                params_after=candidate.params,
                weight_error=error,
                flops_before=None if rows is None else 2 * rows * t.shape[0] * t.shape[1],
                flops_after=None
                if samples is None
                else new.cost(samples, mode="inference").call_flops,  # type: ignore[operator]
                paths=t.paths,
                shape=t.shape,
                structure=candidate.structure,
                network=candidate.network,
                choice=why,
            )
        )
    summary = None
    if total_param_ratio is not None:
        after = _count(target_model)
        summary = BudgetSummary(float(total_param_ratio), model_before, after)
    report = CompressionReport(
        tuple(layers), batch, tuple(skipped), tuple(unfused), summary,
        "network" if network is not None else method,
    )  # fmt: skip
    return target_model, report
