"""Re-estimate batch-norm statistics after compression changed what the layers feed them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.optim.swa_utils import update_bn

from .._core.errors import OptionError

__all__ = ["recalibrate_batchnorm"]


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module,
    batches: Iterable[torch.Tensor | tuple[torch.Tensor, ...] | list[torch.Tensor]],
) -> int:
    """Recompute every batch norm's running mean and variance from ``batches``.

    A compressed layer's outputs differ a little from the dense one's, and the batch norms after
    it still normalise with the dense statistics: a compressed CNN can sit at chance accuracy
    until they are re-estimated (QIANets' models do). This resets each ``BatchNorm1d/2d/3d``
    (and ``SyncBatchNorm``) with running statistics and averages them over all ``batches``
    (``momentum=None``: a cumulative average, not an exponential one), in training mode with
    gradients off — ``torch.optim.swa_utils.update_bn`` does the work; no parameter changes.
    Every module's own mode and each norm's momentum are restored afterwards.

    Parameters
    ----------
    model
        The model.
    batches
        Inputs, e.g. a ``DataLoader``: from a tuple or list (an ``(x, y)`` pair) the first
        element is the input.

    Returns
    -------
    int
        The number of batches seen.

    Raises
    ------
    OptionError
        If the model has no batch norm with running statistics, or ``batches`` is empty.
    """
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    if not norms:
        raise OptionError("the model has no batch norm with running statistics to recalibrate")
    modes = {m: m.training for m in model.modules()}
    seen = 0

    def counted() -> Iterator[torch.Tensor | tuple[torch.Tensor, ...] | list[torch.Tensor]]:
        nonlocal seen
        for batch in batches:
            seen += 1
            yield batch

    try:
        update_bn(counted(), model)
    finally:
        for module, training in modes.items():  # each module's own mode, not the root's
            module.training = training
    if not seen:
        raise OptionError("batches was empty: no statistics to recalibrate from")
    return seen
