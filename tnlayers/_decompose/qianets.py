"""Compress: the QIANets steps (Balapanov et al. 2024) — staged pruning with "entanglement", and
annealing-style factorisation. Truncated SVD is
[`truncated_svd`][tnlayers.compression.truncated_svd] and [`compress`][tnlayers.compress] with
``method="low_rank"``.

Pruning: importance ``|W|``, probabilities ``softmax(vec |W|)`` per layer, a threshold
at the α-quantile of those probabilities (softmax is monotone, so this is magnitude pruning at
the α-quantile of ``|W|``), applied in stages; each newly pruned weight's flat neighbours are
pruned too with probability ``p_entangle``. Masks go through ``torch.nn.utils.prune``, so they
persist through fine-tuning and ``prune.remove`` makes them permanent.

Factorisation (their annealing): ``W ≈ W₁ W₂`` by L-BFGS in rounds whose step size decays
geometrically (the paper's "annealing"), from a random start (the paper's) or an SVD warm start.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn
from torch.nn.utils import prune

from .._core.errors import OptionError

__all__ = ["AnnealedFactors", "PruningReport", "anneal_factorize", "qianets_prune"]


@dataclass(frozen=True)
class PruningReport:
    """Per pruned layer: ``(name, weights, pruned weights)``, after all stages."""

    layers: tuple[tuple[str, int, int], ...]
    alpha: float
    stages: int
    p_entangle: float

    @property
    def pruned_fraction(self) -> float:
        """Pruned weights over all weights of the pruned layers."""
        return sum(p for _, _, p in self.layers) / sum(n for _, n, _ in self.layers)

    def __str__(self) -> str:
        lines = [
            f"{name}: {pruned:,} of {total:,} weights pruned ({pruned / total:.1%})"
            for name, total, pruned in self.layers
        ]
        return "\n".join(
            [
                *lines,
                f"overall {self.pruned_fraction:.1%} (α = {self.alpha}, {self.stages} stages, "
                f"p_entangle = {self.p_entangle}); masks are unstructured: dense kernels still "
                "do every multiplication",
            ]
        )


def _targets(
    model: nn.Module, types: tuple[type[nn.Module], ...], names: Iterable[str] | None
) -> list[tuple[str, nn.Module]]:
    wanted = None if names is None else set(names)
    found: list[tuple[str, nn.Module]] = [
        (name, m)
        for name, m in model.named_modules()
        if isinstance(m, types) and (wanted is None or name in wanted)
    ]
    if not found:
        layers = [n for n, m in model.named_modules() if isinstance(m, nn.Linear | nn.Conv2d)]
        raise OptionError(
            f"no layer to prune among types {[t.__name__ for t in types]} and names {names}; "
            f"the model's Linear/Conv2d layers are {layers}"
        )
    return found


def _tensor(module: nn.Module, name: str) -> torch.Tensor:
    """A module's tensor attribute (``nn.Module.__getattr__`` is typed as returning modules too)."""
    return cast(torch.Tensor, getattr(module, name))


def qianets_prune(
    model: nn.Module,
    alpha: float,
    *,
    stages: int = 5,
    p_entangle: float = 0.5,
    types: tuple[type, ...] = (nn.Conv2d,),
    names: Iterable[str] | None = None,
    generator: torch.Generator | None = None,
) -> PruningReport:
    """Prune ``model`` in place, QIANets style (QIANets' pruning).

    Stage ``s = 1 … S`` raises each layer's sparsity to ``α·s/S`` by pruning the weights of
    lowest softmax importance (exact counts: ties broken by position), then prunes each newly
    pruned weight's neighbours ``t − 1`` and ``t + 1`` (flat C order) with probability
    ``p_entangle``, independently and without a cascade. With ``p_entangle = 0`` exactly
    ``round(α·N)`` weights of each layer end up pruned; one stage with entanglement prunes
    ``1 − (1 − α)(1 − α·p_e)²`` in expectation (away from the edges).

    Parameters
    ----------
    model
        Pruned in place (masks via ``torch.nn.utils.prune``: ``weight_orig`` and ``weight_mask``).
    alpha
        Target sparsity from importance alone, in ``[0, 1)``.
    stages
        ``S`` (the code's 5).
    p_entangle
        Neighbour pruning probability (the code's 0.5).
    types, names
        Which layers: by type (QIANets prune every ``nn.Conv2d``) and optionally exact names.
    generator
        For the entanglement draws.

    Returns
    -------
    PruningReport
    """
    if not 0 <= alpha < 1:
        raise OptionError(f"alpha is a fraction of weights to prune, in [0, 1); got {alpha}")
    if not 0 <= p_entangle <= 1:
        raise OptionError(f"p_entangle is a probability, got {p_entangle}")
    if stages < 1:
        raise OptionError(f"stages must be at least 1, got {stages}")
    targets = _targets(model, types, names)
    for stage in range(1, stages + 1):
        for _, module in targets:
            _prune_stage(module, alpha * stage / stages, p_entangle, generator)
    layers = tuple(
        (name, _tensor(m, "weight").numel(), int((_tensor(m, "weight_mask") == 0).sum()))
        for name, m in targets
    )
    return PruningReport(layers, alpha, stages, p_entangle)


@torch.no_grad()
def _prune_stage(
    module: nn.Module, sparsity: float, p_entangle: float, generator: torch.Generator | None
) -> None:
    weight = _tensor(module, "weight").detach()
    mask = getattr(module, "weight_mask", torch.ones_like(weight)).reshape(-1).clone()
    importance = torch.softmax((weight.reshape(-1) * mask).abs().double(), 0)
    importance[mask == 0] = -1.0  # already pruned: always below the threshold
    count = round(sparsity * mask.numel())
    newly = torch.zeros_like(mask, dtype=torch.bool)
    if count > 0:
        order = torch.argsort(importance, stable=True)[:count]
        newly[order] = True
        newly &= mask != 0
    if p_entangle > 0 and newly.any():
        # Each newly pruned weight tries each neighbour with its own draw (QIANets' pruning).
        draws = (torch.rand(2, newly.numel(), generator=generator) < p_entangle).to(newly.device)
        spread = torch.zeros_like(newly)
        spread[1:] |= newly[:-1] & draws[0, :-1]
        spread[:-1] |= newly[1:] & draws[1, 1:]
        newly |= spread
    mask[newly] = 0
    if hasattr(module, "weight_mask"):  # (prune.is_pruned would also look at submodules)
        prune.remove(module, "weight")  # fold the old mask in; the new one contains it
    prune.custom_from_mask(module, "weight", mask.view_as(weight))


@dataclass(frozen=True)
class AnnealedFactors:
    """The result of [`anneal_factorize`][tnlayers.compression.anneal_factorize].

    Attributes
    ----------
    left, right
        ``W₁ (m, r)`` and ``W₂ (r, n)``.
    losses
        ``‖W − W₁W₂‖_F²`` at the start and after every round (non-increasing).
    relative_error
        ``‖W − W₁W₂‖_F / ‖W‖_F`` at the end.
    """

    left: torch.Tensor
    right: torch.Tensor
    losses: tuple[float, ...]
    relative_error: float


def anneal_factorize(
    matrix: torch.Tensor,
    rank: int,
    *,
    rounds: int = 5,
    lr: float = 1.0,
    decay: float = 0.5,
    max_iter: int = 20,
    init: str = "random",
    generator: torch.Generator | None = None,
) -> AnnealedFactors:
    """``W ≈ W₁ W₂`` by L-BFGS rounds with a geometrically decaying step (QIANets' annealing).

    Round ``t`` runs ``torch.optim.LBFGS`` (strong-Wolfe line search, ``max_iter`` iterations)
    with step size ``lr·decayᵗ`` on ``‖W − W₁W₂‖_F²``. A round that does not lower the loss is
    undone, so the recorded losses never increase. The loss can never go below the SVD optimum
    ``Σ_{i>r} σ_i²``.

    Parameters
    ----------
    matrix
        ``(m, n)``; a conv kernel is flattened to ``(C_out, C_in·kh·kw)`` first.
    rank
        ``r``.
    rounds, lr, decay, max_iter
        The annealing schedule (defaults: 5 rounds, 1.0, 0.5, 20).
    init
        ``"random"`` (``N(0, 1)`` factors, the paper's) or ``"svd"`` (the truncated SVD: already
        optimal, a departure from the paper offered for comparison).
    generator
        For the random start.
    """
    if init not in ("random", "svd"):
        raise OptionError(f"init must be 'random' or 'svd', got {init!r}")
    target = matrix.detach().reshape(matrix.shape[0], -1).double()
    m, n = target.shape
    if not 1 <= rank <= min(m, n):
        raise OptionError(f"rank must be in 1..{min(m, n)} for a {m}×{n} matrix, got {rank}")
    if init == "svd":
        u, s, vh = torch.linalg.svd(target, full_matrices=False)
        left, right = u[:, :rank] * s[:rank].sqrt(), s[:rank].sqrt()[:, None] * vh[:rank]
    else:
        left = torch.randn(m, rank, dtype=torch.float64, generator=generator)
        right = torch.randn(rank, n, dtype=torch.float64, generator=generator)
    # One flat parameter: L-BFGS flattens gradients with .view, which fails on the
    # non-contiguous gradients a matrix product gives its factors.
    flat = torch.cat((left.reshape(-1), right.reshape(-1))).requires_grad_()
    split = m * rank

    def loss() -> torch.Tensor:
        w1, w2 = flat[:split].view(m, rank), flat[split:].view(rank, n)
        return (target - w1 @ w2).square().sum()

    losses = [loss().item()]
    for t in range(rounds):
        saved = flat.detach().clone()
        optimizer = torch.optim.LBFGS(
            [flat], lr=lr * decay**t, max_iter=max_iter, line_search_fn="strong_wolfe"
        )

        def closure(optimizer: torch.optim.Optimizer = optimizer) -> torch.Tensor:
            optimizer.zero_grad()
            value = loss()
            value.backward()
            return value

        optimizer.step(closure)
        current = loss().item()
        if not current <= losses[-1]:  # also catches NaN
            with torch.no_grad():
                flat.copy_(saved)
            current = losses[-1]
        losses.append(current)
    left, right = flat.detach()[:split].view(m, rank), flat.detach()[split:].view(rank, n)
    norm = target.square().sum().item()
    dtype = matrix.dtype
    return AnnealedFactors(
        left.to(dtype),
        right.to(dtype),
        tuple(losses),
        math.sqrt(losses[-1] / norm) if norm > 0 else 0.0,
    )
