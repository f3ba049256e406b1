"""Variance-preserving initialisation for any network topology."""

from __future__ import annotations

import math
from collections.abc import MutableMapping

import torch

from .._core.network import Network
from .execute import contract_weight

__all__ = ["entry_sigma", "linear_default_std", "variance_preserving_"]

# Above this many dense entries the empirical correction is skipped (the analytic rule remains).
_CHECK_LIMIT = 1 << 22


def linear_default_std(in_features: int) -> float:
    """Standard deviation of ``nn.Linear``'s default weight, ``U(±1/√in)``: ``1/√(3·in)``."""
    return 1.0 / math.sqrt(3.0 * in_features)


def entry_sigma(network: Network, block_rms: float) -> float:
    """The one standard deviation of every tensor's i.i.d. entries that gives the materialized
    blocks (the contraction into ``network.weight_legs``) the root-mean-square ``block_rms``.

    Each block entry sums ``R`` uncorrelated products, ``R`` the product of the summed index
    sizes, so its variance is ``R · σ^{2N}`` for ``N`` tensors.
    """
    summed = math.prod(network.sizes[leg] for leg in network.summed_indices)
    return (block_rms**2 / summed) ** (1.0 / (2 * len(network.tensor_names)))


@torch.no_grad()
def variance_preserving_(
    tensors: MutableMapping[str, torch.Tensor],
    network: Network,
    std: float | None = None,
    *,
    generator: torch.Generator | None = None,
) -> None:
    r"""Fill ``tensors`` in place so the materialized weight has standard deviation ``std``.

    With i.i.d. zero-mean entries of variance ``σ_t²`` in every tensor ``t``, distinct
    configurations of the summed indices contribute uncorrelated terms, so each weight entry has
    variance ``R · Π_t σ_t²`` where ``R`` is the product of the summed index sizes, for any
    topology (bonds, hyperedges, shared open legs). Every tensor gets the same
    ``σ = (std² / R)^{1/(2N)}`` (``std² · P`` for the blocks of pass-through legs of total size
    ``P``, whose zeros count in the weight's root-mean-square). When the dense weight is small
    enough to form (≤ 4M entries), the tensors are then rescaled so the realised weight's
    root-mean-square is exactly ``std``.

    Parameters
    ----------
    tensors
        Tensor values keyed by name, modified in place.
    network
        The network they belong to.
    std
        Target standard deviation; default that of ``nn.Linear``'s weight.
    generator
        Random generator for reproducible draws.
    """
    target = linear_default_std(network.in_features) if std is None else float(std)
    count = len(network.tensor_names)
    # Pass-through legs leave a fraction 1/P of the weight's entries non-zero (P the product of
    # their sizes), so the blocks need √P times the whole matrix's root-mean-square.
    blocks = math.prod(network.sizes[leg] for leg in network.passthrough)
    sigma = entry_sigma(network, target * math.sqrt(blocks))
    for name in network.tensor_names:
        tensors[name].normal_(0.0, sigma, generator=generator)
    # Not on the meta device (no values yet: to_empty() then reset_parameters() sets them).
    on_meta = any(tensors[name].is_meta for name in network.tensor_names)
    if network.dense_params <= _CHECK_LIMIT and target > 0 and not on_meta:
        weight = contract_weight(network, tensors)
        # |w|², so that complex weights (variance split between real and imaginary parts)
        # get nn.Linear's scale too.
        realised = weight.abs().double().pow(2).mean().sqrt().item()
        if realised > 0:
            scale = (target / realised) ** (1.0 / count)
            for name in network.tensor_names:
                tensors[name].mul_(scale)
