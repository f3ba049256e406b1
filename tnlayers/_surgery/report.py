"""What compression did, per replaced and per kept layer, and the spec to restore it.

The report is also the checkpoint's recipe:
[`CompressionReport.to_json`][tnlayers.CompressionReport.to_json] writes which module paths
were replaced by which class holding which network (as JSON), and [`restore`][tnlayers.restore]
replays it on a freshly built dense model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .._core.network import Network
from .._core.table import format_table, si
from .targets import Skipped

__all__ = ["SPEC_FORMAT", "BudgetSummary", "CompressionReport", "LayerCompression"]

SPEC_FORMAT = "tnlayers.compress"
SPEC_VERSION = 1


@dataclass(frozen=True)
class LayerCompression:
    """One replaced layer.

    Attributes
    ----------
    name
        Its first path in the model (``""`` for the model itself).
    kind
        ``"Linear"``, ``"Conv1d"``, ``"Conv2d"`` or ``"Conv1D"`` (Hugging Face).
    replacement
        The new layer's class.
    setting
        Rank, bonds, terms or fitted size, in words.
    params_before, params_after
        Weights (bias excluded).
    weight_error
        ``‖W − W̃‖_F / ‖W‖_F`` of the new layer's materialized weight.
    flops_before, flops_after
        FLOPs of an inference call at the report's batch size, as the layer runs it (a weight
        the new layer materializes is built once and cached, so only its GEMM counts); ``None``
        when unknown: a convolution without ``input_size``.
    paths
        Every path at which the layer occurs (a shared module has several).
    shape
        ``(out_features, in_features)`` of the weight matrix.
    structure
        ``"low_rank"``, ``"mpo"``, ``"kronecker"``, ``"tensor_ring"``, ``"btt"`` or ``"network"``.
    network
        The replacement's network.
    choice
        With ``method="auto"``: why this structure (every structure's error within the layer's
        share).
    """

    name: str
    kind: str
    replacement: str
    setting: str
    params_before: int
    params_after: int
    weight_error: float
    flops_before: int | None
    flops_after: int | None
    paths: tuple[str, ...] = ()
    shape: tuple[int, int] = (0, 0)
    structure: str = ""
    network: Network | None = field(default=None, repr=False)
    choice: str = ""


@dataclass(frozen=True)
class BudgetSummary:
    """A model-level budget: what was asked and what was reached (whole model, biases included)."""

    target_ratio: float
    model_params_before: int
    model_params_after: int

    @property
    def achieved_ratio(self) -> float:
        """``model_params_after / model_params_before``."""
        return self.model_params_after / self.model_params_before


@dataclass(frozen=True)
class CompressionReport:
    """What [`compress`][tnlayers.compress] did, layer by layer.

    Attributes
    ----------
    layers
        The replaced layers.
    batch
        The batch size of the FLOP counts.
    skipped
        Matching layers kept as they were, each with the reason.
    unfused
        Paths of ``nn.MultiheadAttention`` modules turned into
        [`UnfusedMultiheadAttention`][tnlayers.UnfusedMultiheadAttention] so that their
        projections could be replaced.
    budget
        The model-level budget, when ``total_param_ratio`` was given.
    method
        The method used.
    """

    layers: tuple[LayerCompression, ...]
    batch: int
    skipped: tuple[Skipped, ...] = ()
    unfused: tuple[str, ...] = ()
    budget: BudgetSummary | None = None
    method: str = ""

    @property
    def params_before(self) -> int:
        """Weights of the replaced layers before."""
        return sum(r.params_before for r in self.layers)

    @property
    def params_after(self) -> int:
        """Weights of the replacements."""
        return sum(r.params_after for r in self.layers)

    @property
    def compression_ratio(self) -> float:
        """``params_after / params_before`` over the replaced layers: below 1 means fewer
        parameters, as every ratio in tnlayers (MPO-Net's ρ; QIANets quote its inverse)."""
        return self.params_after / self.params_before if self.layers else 1.0

    def __str__(self) -> str:
        rows = [["layer", "was", "shape", "now", "setting", "params", "weight error", "FLOPs"]]
        for r in self.layers:
            flops = (
                "—"
                if r.flops_before is None or r.flops_after is None
                else f"{si(r.flops_before)} → {si(r.flops_after)}"
            )
            rows.append(
                [
                    (r.name or "(model)")
                    + (f" (+{len(r.paths) - 1} shared)" if len(r.paths) > 1 else ""),
                    r.kind,
                    f"{r.shape[0]}×{r.shape[1]}",
                    r.replacement,
                    r.setting,
                    f"{r.params_before:,} → {r.params_after:,}",
                    f"{r.weight_error:.3g}",
                    flops,
                ]
            )
        lines = [format_table(rows)]
        ratio = self.compression_ratio
        lines.append(
            f"{len(self.layers)} layer(s): {self.params_before:,} → {self.params_after:,} weights "
            f"(ratio {ratio:.3g}"
            + (f", {1 / ratio:.3g}× fewer" if ratio > 0 else "")
            + f"); FLOPs per forward pass at batch {self.batch}"
        )
        if self.budget is not None:
            b = self.budget
            lines.append(
                f"whole model: {b.model_params_before:,} → {b.model_params_after:,} parameters "
                f"(ratio {b.achieved_ratio:.3g}; target {b.target_ratio:.3g})"
            )
        choices = [r for r in self.layers if r.choice]
        if choices:
            lines.append("why each structure (relative weight error within the layer's share):")
            lines += [f"  {r.name}: {r.choice}" for r in choices]
        if self.unfused:
            lines.append(
                "attention unfused (its q/k/v/out projections made separate): "
                + ", ".join(self.unfused)
            )
        if self.skipped:
            lines.append("kept as they were:")
            lines += [f"  {s.name or '(model)'} ({s.kind}): {s.reason}" for s in self.skipped]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The restore spec as plain data (see `to_json`)."""
        from .. import __version__

        return {
            "format": SPEC_FORMAT,
            "version": SPEC_VERSION,
            "tnlayers": __version__,
            "method": self.method,
            "unfused_attention": list(self.unfused),
            "layers": [
                {
                    "paths": list(r.paths or (r.name,)),
                    "kind": r.kind,
                    "shape": list(r.shape),
                    "replacement": r.replacement,
                    "structure": r.structure,
                    "setting": r.setting,
                    "network": None if r.network is None else r.network.to_dict(),
                }
                for r in self.layers
            ],
        }

    def to_json(self, **kwargs: Any) -> str:
        """What was replaced by what, as JSON: the spec [`restore`][tnlayers.restore] applies.

        Module paths, each replacement's class and network, and the attention modules that were
        unfused; no weights (those are in the compressed model's ``state_dict``).
        ``kwargs`` go to ``json.dumps`` (e.g. ``indent=1``).
        """
        return json.dumps(self.to_dict(), **kwargs)
