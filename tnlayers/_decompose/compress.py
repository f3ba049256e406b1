"""Compress: swap a trained model's Linear and Conv2d layers for tensor-network layers.

[`compress`][tnlayers.compress] walks any model (nested and shared submodules included), picks
layers by name pattern, type or size, replaces each by a layer initialised from its trained
weight (low rank by truncated SVD, MPO by TT-SVD, Kronecker by the nearest sum) and returns the
new model with a [`CompressionReport`][tnlayers.CompressionReport]: parameters, relative weight
error and FLOPs before and after, per layer.
"""

from __future__ import annotations

import copy
import fnmatch
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, cast

import torch
from torch import nn

from .._analysis.summary import samples_per_layer
from .._core.builders import low_rank
from .._core.cost import CostReport, StrategyCost
from .._core.errors import OptionError
from .._core.plan import MachineModel
from .._core.table import format_table
from .._layers.conv import conv_output_size
from .._layers.kron import KronLinear
from .._layers.linear import TNLinear
from .._layers.mpo import MPOConv2d, MPOLinear

__all__ = ["CompressionReport", "LayerCompression", "LowRankConv2d", "compress", "truncated_svd"]

Method = Literal["low_rank", "mpo", "kronecker"]


def truncated_svd(
    matrix: torch.Tensor, rank: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``U_r, S_r, V_rᵀ`` of a matrix ``(m, n)``: the best rank-``r`` approximation (Eckart–Young).

    Returns
    -------
    U, S, Vh
        ``(m, r)``, ``(r,)``, ``(r, n)`` with ``U @ diag(S) @ Vh`` the approximation; its squared
        Frobenius error is the sum of the discarded ``σ_i²``.
    """
    u, s, vh = torch.linalg.svd(matrix.detach(), full_matrices=False)
    return u[:, :rank], s[:rank], vh[:rank]


class LowRankConv2d(nn.Sequential):
    """A ``k×k`` convolution ``C_in → r`` then a ``1×1`` convolution ``r → C_out`` (with bias).

    The factorised form of a convolution whose flattened ``(C_out, C_in·kh·kw)`` kernel has rank
    ``r``: ``r(C_in·kh·kw + C_out)`` weights instead of ``C_out·C_in·kh·kw`` (QIANets' SVD).

    Parameters
    ----------
    conv
        The convolution to factorise (its geometry and bias are kept).
    rank
        ``r``.
    factors
        ``(W₁ (C_out, r), W₂ (r, C_in·kh·kw))`` with ``W ≈ W₁W₂`` (e.g. from
        [`anneal_factorize`][tnlayers.compression.anneal_factorize]); default: the truncated SVD,
        split as ``(U√Σ, √Σ Vᵀ)``.
    """

    def __init__(
        self,
        conv: nn.Conv2d,
        rank: int,
        factors: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        first = nn.Conv2d(
            conv.in_channels,
            rank,
            conv.kernel_size,  # type: ignore[arg-type]
            conv.stride,  # type: ignore[arg-type]
            conv.padding,  # type: ignore[arg-type]
            conv.dilation,  # type: ignore[arg-type]
            bias=False,
            padding_mode=conv.padding_mode,
            device=conv.weight.device,
            dtype=conv.weight.dtype,
        )
        second = nn.Conv2d(
            rank,
            conv.out_channels,
            1,
            bias=conv.bias is not None,
            device=conv.weight.device,
            dtype=conv.weight.dtype,
        )
        super().__init__(first, second)
        if factors is None:
            u, s, vh = truncated_svd(conv.weight.reshape(conv.out_channels, -1), rank)
            factors = (u * s.sqrt(), s.sqrt()[:, None] * vh)
        left, right = factors
        with torch.no_grad():
            first.weight.copy_(right.reshape(first.weight.shape))
            second.weight.copy_(left.reshape(second.weight.shape))
            if conv.bias is not None:
                assert second.bias is not None
                second.bias.copy_(conv.bias)

    @property
    def kernel_size(self) -> tuple[int, int]:
        """The first convolution's ``(kh, kw)``."""
        first = self[0]
        assert isinstance(first, nn.Conv2d)
        return cast(tuple[int, int], first.kernel_size)

    @property
    def rank(self) -> int:
        """``r``: the channels between the two convolutions."""
        return _weight(self[0]).shape[0]

    @property
    def in_features(self) -> int:
        """``C_in·kh·kw``: the flattened kernel's columns."""
        return _weight(self[0])[0].numel()

    @property
    def out_features(self) -> int:
        """``C_out``."""
        return _weight(self[1]).shape[0]

    @property
    def num_params(self) -> int:
        """``r(C_in·kh·kw + C_out)``, bias excluded."""
        return self.rank * (self.in_features + self.out_features)

    def to_dense(self) -> torch.Tensor:
        """The equivalent flattened kernel, shape ``(C_out, C_in·kh·kw)``; differentiable.

        ``.reshape(C_out, C_in, kh, kw)`` gives the ``nn.Conv2d`` weight.
        """
        return _weight(self[1]).flatten(1) @ _weight(self[0]).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve ``x`` of shape ``(B, C_in, H, W)``; remembers ``(H, W)`` for ``cost``."""
        self._last_image_size = (int(x.shape[-2]), int(x.shape[-1]))
        return super().forward(x)

    def chosen_strategy(self, batch: int, *, training: bool | None = None) -> str:
        """Always ``"factored"``: the two convolutions, one after the other."""
        return "factored"

    def cost(
        self,
        batch: int = 64,
        *,
        mode: Literal["training", "inference"] = "training",
        image_size: tuple[int, int] | None = None,
    ) -> CostReport:
        """The cost report for ``batch`` images of ``image_size`` (default: the last input's).

        One strategy, ``factored``: the ``k×k`` convolution to ``r`` channels then the ``1×1``
        one, on the ``batch·H_out·W_out`` output positions.
        """
        if mode not in ("training", "inference"):
            raise OptionError(f"mode must be 'training' or 'inference', got {mode!r}")
        size = image_size or getattr(self, "_last_image_size", None)
        if size is None:
            raise OptionError(
                "LowRankConv2d.cost needs image_size=(H, W): its rows are batch · H_out · W_out "
                "(or run the layer once and it uses that input's size)"
            )
        first = self[0]
        assert isinstance(first, nn.Conv2d)
        h, w = conv_output_size(
            size,
            first.kernel_size,  # type: ignore[arg-type]
            first.stride,  # type: ignore[arg-type]
            first.padding,  # type: ignore[arg-type]
            first.dilation,  # type: ignore[arg-type]
        )
        rows, r = batch * h * w, self.rank
        flops = 2 * rows * r * (self.in_features + self.out_features)
        itemsize = _weight(first).element_size()
        model = MachineModel.for_device(_weight(first).device.type)
        seconds = 2 * model.op_overhead + flops / model.peak_flops
        factored = StrategyCost(
            name="factored",
            flops=flops,
            training_flops=3 * flops,
            calls=2,
            largest_intermediate=rows * max(r, self.out_features),
            saved_for_backward=rows * r,
            predicted_time_s=seconds,
            predicted_training_time_s=3 * seconds,
            forms_dense_weight=False,
        )
        return CostReport(
            subject=f"low-rank convolution, rank {r}, images {size[0]}×{size[1]}",
            batch=rows,
            itemsize=itemsize,
            mode=mode,
            in_features=self.in_features,
            out_features=self.out_features,
            params=self.num_params,
            dense_params=self.in_features * self.out_features,
            strategies={"factored": factored},
            strategy="factored",
            reason="factored: the only strategy (two convolutions)",
            details=(f"rows         {batch} images × {h}·{w} output positions = {rows:,}",),
        )


@dataclass(frozen=True)
class LayerCompression:
    """One replaced layer.

    Attributes
    ----------
    name
        Its name in the model (the first, if the module is shared).
    kind
        ``"Linear"`` or ``"Conv2d"``.
    replacement
        The new layer's type.
    setting
        Rank, bond or terms used.
    params_before, params_after
        Weights (bias excluded).
    weight_error
        ``‖W − W̃‖_F / ‖W‖_F`` of the materialized new weight.
    flops_before, flops_after
        Forward FLOPs at the report's batch size (``None`` when unknown: a convolution without
        ``input_size``).
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


@dataclass(frozen=True)
class CompressionReport:
    """What [`compress`][tnlayers.compress] did, layer by layer."""

    layers: tuple[LayerCompression, ...]
    batch: int

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
        rows = [["layer", "was", "now", "setting", "params", "weight error", "FLOPs"]]
        for r in self.layers:
            flops = (
                "—"
                if r.flops_before is None or r.flops_after is None
                else f"{r.flops_before:.3g} → {r.flops_after:.3g}"
            )
            rows.append(
                [
                    r.name,
                    r.kind,
                    r.replacement,
                    r.setting,
                    f"{r.params_before:,} → {r.params_after:,}",
                    f"{r.weight_error:.3g}",
                    flops,
                ]
            )
        return (
            format_table(rows)
            + f"\n{len(self.layers)} layer(s): {self.params_before:,} → {self.params_after:,} "
            f"weights (ratio {self.compression_ratio:.3g}, {1 / self.compression_ratio:.3g}× "
            f"fewer), FLOPs at batch {self.batch}"
        )


def _rank_for(
    singular: torch.Tensor,
    shape: tuple[int, int],
    rank: int | None,
    rel_error: float | None,
    param_ratio: float | None,
) -> int:
    """The rank given, or the smallest meeting ``rel_error``, or the largest within budget."""
    full = singular.numel()
    if rank is not None:
        return max(1, min(int(rank), full))
    if rel_error is not None:
        energy = singular.double().square()
        # tail[r] = ‖discarded‖² when keeping r singular values.
        tail = [*energy.flip(0).cumsum(0).flip(0).tolist(), 0.0]
        total = tail[0]
        return next(r for r in range(1, full + 1) if tail[r] <= rel_error**2 * total)
    m, n = shape
    return max(1, min(full, math.floor(param_ratio * m * n / (m + n))))  # type: ignore[operator]


def _replace(
    module: nn.Linear | nn.Conv2d,
    method: Method,
    rank: int | None,
    rel_error: float | None,
    param_ratio: float | None,
    max_bond: int | None,
    terms: int,
) -> tuple[TNLinear | LowRankConv2d, str]:
    weight = module.weight.detach()
    flat = weight.reshape(weight.shape[0], -1)
    if method == "low_rank":
        u, s, vh = truncated_svd(flat, flat.shape[1])
        r = _rank_for(s, tuple(flat.shape), rank, rel_error, param_ratio)  # type: ignore[arg-type]
        if isinstance(module, nn.Conv2d):
            return LowRankConv2d(module, r), f"rank {r}"
        root = s[:r].sqrt()
        net = low_rank(module.in_features, module.out_features, r)
        bias = None if module.bias is None else module.bias.detach()
        values = {"U": u[:, :r] * root, "V": root[:, None] * vh[:r]}
        return TNLinear.from_tensors(net, values, bias), f"rank {r}"
    if method == "mpo":
        if max_bond is None and rel_error is None and param_ratio is None:
            raise OptionError(
                "method='mpo' needs max_bond= (largest bond), rel_error= or param_ratio="
            )
        build = MPOConv2d.from_conv if isinstance(module, nn.Conv2d) else MPOLinear.from_linear
        if param_ratio is not None and max_bond is None:
            new = _largest_within(
                lambda b: build(module, max_bond=b, rel_error=rel_error),  # type: ignore[arg-type]
                param_ratio * weight.numel(),
            )
        else:
            new = build(module, max_bond=max_bond, rel_error=rel_error)  # type: ignore[arg-type]
        sizes = new.network.sizes
        return new, "bonds " + ",".join(str(sizes[b]) for b in new.network.bonds)
    if isinstance(module, nn.Conv2d):
        raise OptionError(
            "method='kronecker' compresses nn.Linear layers only; select them with "
            "types=(nn.Linear,) or use method='low_rank' or 'mpo' for convolutions"
        )
    if param_ratio is not None:
        per_term = KronLinear.from_linear(module, 1).num_params
        terms = max(1, math.floor(param_ratio * weight.numel() / per_term))
    return KronLinear.from_linear(module, terms), f"{terms} term(s)"


def _largest_within(build: Callable[[int], TNLinear], budget: float) -> TNLinear:
    """The layer of the largest bond cap whose parameters fit ``budget`` (bond 1 at least).

    Parameters grow with the cap until no singular value is cut any more; stop there.
    """
    best = build(1)
    bond = 2
    while True:
        candidate = build(bond)
        if candidate.num_params > budget or candidate.num_params == best.num_params:
            return best
        best, bond = candidate, bond + 1


def compress(
    model: nn.Module,
    method: Method = "low_rank",
    *,
    names: Sequence[str] | None = None,
    types: tuple[type, ...] = (nn.Linear, nn.Conv2d),
    min_params: int = 0,
    rank: int | None = None,
    rel_error: float | None = None,
    param_ratio: float | None = None,
    max_bond: int | None = None,
    terms: int = 1,
    batch: int = 64,
    input_size: Sequence[int] | None = None,
    only_if_smaller: bool = False,
    inplace: bool = False,
    progress: Callable[[str], None] | None = None,
) -> tuple[nn.Module, CompressionReport]:
    """Replace chosen ``nn.Linear`` / ``nn.Conv2d`` layers by layers built from their weights.

    Parameters
    ----------
    model
        Any model; nested modules are walked, and a module shared by several parents is
        replaced once (every parent then holds the same new module).
    method
        ``"low_rank"``: truncated SVD (``TNLinear`` of a two-node network for Linear layers,
        [`LowRankConv2d`][tnlayers.compression.LowRankConv2d] for convolutions); ``"mpo"``: TT-SVD
        ([`MPOLinear`][tnlayers.MPOLinear], [`MPOConv2d`][tnlayers.MPOConv2d]);
        ``"kronecker"``: nearest sum of ``terms`` Kronecker products (Linear only).
    names
        Shell-style patterns (``fnmatch``) on module names, e.g. ``["features.*", "fc1"]``;
        default: every name.
    types
        Layer types to consider.
    min_params
        Skip layers with fewer weights.
    rank, rel_error, param_ratio
        Low rank: a fixed rank; or the smallest rank whose relative Frobenius error is at most
        ``rel_error``; or the largest rank keeping at most ``param_ratio`` of the weights. MPO:
        ``rel_error`` is TT-SVD's ``rel_error``, and ``param_ratio`` picks the largest bond cap
        within that share of the weights. Kronecker: ``param_ratio`` picks the most terms
        within it.
    max_bond
        MPO: the largest bond (a cap, as in [`tt_svd`][tnlayers.tt_svd]; an exact bond size is
        ``bond`` in [`mpo`][tnlayers.mpo] and the layers).
    terms
        Kronecker: the number of terms.
    batch, input_size
        FLOPs are counted for ``batch`` inputs; convolutions need ``input_size`` (one input's
        shape without the batch) to know their output size.
    only_if_smaller
        Keep a layer as it is when its replacement would not have fewer weights (e.g. rank 10
        for a 3×3 convolution of one input channel); such layers are not in the report.
    inplace
        Modify ``model`` itself instead of a deep copy.
    progress
        Called with each layer's name before it is compressed (e.g. a progress bar's update).

    Returns
    -------
    model, report
        The compressed model (a copy unless ``inplace``) and the per-layer report.

    Raises
    ------
    OptionError
        If no layer matches (the message lists the candidates), or the method's settings are
        missing or inconsistent.
    """
    if method not in ("low_rank", "mpo", "kronecker"):
        raise OptionError(f"unknown method {method!r}; choose 'low_rank', 'mpo' or 'kronecker'")
    if method == "low_rank" and sum(v is not None for v in (rank, rel_error, param_ratio)) != 1:
        raise OptionError("method='low_rank' needs exactly one of rank=, rel_error=, param_ratio=")
    target = model if inplace else copy.deepcopy(model)
    chosen: dict[nn.Module, str] = {}
    candidates = []
    for name, module in target.named_modules():
        if not isinstance(module, nn.Linear | nn.Conv2d):
            continue
        candidates.append(f"{name} ({type(module).__name__}, {module.weight.numel():,} weights)")
        if (
            isinstance(module, types)
            and module.weight.numel() >= min_params
            and (names is None or any(fnmatch.fnmatchcase(name, p) for p in names))
            and module not in chosen
        ):
            chosen[module] = name
    if not chosen:
        raise OptionError(
            f"no layer matches names={names!r}, types={[t.__name__ for t in types]}, "
            f"min_params={min_params}; the model's Linear/Conv2d layers are: "
            + ("; ".join(candidates) if candidates else "none")
        )
    seen_before = samples_per_layer(target, batch, input_size) if input_size else {}
    replacements: dict[nn.Module, tuple[TNLinear | LowRankConv2d, str]] = {}
    for module, name in chosen.items():
        if progress is not None:
            progress(name)
        replacement = _replace(module, method, rank, rel_error, param_ratio, max_bond, terms)  # type: ignore[arg-type]
        if only_if_smaller and replacement[0].num_params >= _weight(module).numel():
            continue
        replacements[module] = replacement
    chosen = {m: n for m, n in chosen.items() if m in replacements}
    for parent in list(target.modules()):
        for child_name, child in list(parent.named_children()):
            if child in replacements:
                setattr(parent, child_name, replacements[child][0])
    seen_after = samples_per_layer(target, batch, input_size) if input_size else {}
    layers = []
    for module, name in chosen.items():
        new, setting = replacements[module]
        weight = _weight(module).detach()
        with torch.no_grad():
            approx = new.to_dense().reshape(weight.shape)
        error = (torch.linalg.norm(approx - weight) / torch.linalg.norm(weight)).item()
        conv = isinstance(module, nn.Conv2d)
        rows = seen_before[module][1] if module in seen_before else None if conv else batch
        samples = seen_after[new][0] if new in seen_after else None if conv else batch
        layers.append(
            LayerCompression(
                name=name,
                kind=type(module).__name__,
                replacement=type(new).__name__,
                setting=setting,
                params_before=weight.numel(),
                params_after=new.num_params,
                weight_error=error,
                flops_before=None if rows is None else 2 * rows * weight[0].numel() * len(weight),
                flops_after=None
                if samples is None
                else new.cost(samples, mode="inference").chosen.flops,
            )
        )
    return target, CompressionReport(tuple(layers), batch)


def _weight(module: nn.Module) -> torch.Tensor:
    """A layer's ``weight`` (``nn.Module.__getattr__`` is typed as returning modules too)."""
    return cast(torch.Tensor, module.weight)
