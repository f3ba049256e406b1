"""QiMLP's models (Zhang et al. 2025): the dense MLP control and the M-body Kronecker MLPs."""

from __future__ import annotations

from typing import Literal, cast

import torch
from torch import nn

from .._core.errors import OptionError
from .._layers.kron import BiasForm, KronInit, KronLinear

__all__ = ["MLP", "QiMLP"]

Dataset = Literal["mnist", "cifar"]

# Factor sizes (input, hidden, output) per data set and number of bodies, and the bias mode the
# paper's parameter counts imply (MNIST: Kronecker biases; CIFAR 2b/3b: dense biases).
CONFIGS: dict[tuple[str, int], tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], str]] = {
    ("mnist", 2): ((28, 28), (28, 28), (2, 5), "kron"),
    ("mnist", 3): ((7, 7, 16), (16, 7, 7), (2, 5, 1), "kron"),
    ("mnist", 4): ((4, 7, 4, 7), (7, 4, 7, 4), (1, 10, 1, 1), "kron"),
    ("cifar", 2): ((48, 64), (64, 48), (2, 5), "full"),
    ("cifar", 3): ((12, 16, 16), (16, 16, 12), (1, 2, 5), "full"),
}
# Number of weight layers: MNIST 784-784-784-10, CIFAR-10 3072 ×4 hidden, then 10.
DEPTH = {"mnist": 3, "cifar": 5}
FEATURES = {"mnist": 784, "cifar": 3072}


def _check_dataset(dataset: str) -> None:
    if dataset not in DEPTH:
        raise OptionError(f"unknown dataset {dataset!r}; choose 'mnist' or 'cifar'")


class MLP(nn.Module):
    """The control: dense layers of the data set's width, GELU after all but the last, and
    Dropout(0.1) on the logits ("Dropout added to the third layer").

    Examples
    --------
    >>> sum(p.numel() for p in MLP("mnist").parameters())
    1238730
    """

    def __init__(self, dataset: Dataset = "mnist", dropout: float = 0.1) -> None:
        super().__init__()
        _check_dataset(dataset)
        width, depth = FEATURES[dataset], DEPTH[dataset]
        layers: list[nn.Module] = []
        for index in range(depth):
            last = index == depth - 1
            layers.append(nn.Linear(width, 10 if last else width))
            layers.append(nn.Dropout(dropout) if last else nn.GELU())
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x.flatten(1))


class QiMLP(nn.Module):
    r"""QiMLP: the MLP with every weight a sum of ``terms`` ``bodies``-body Kronecker products.

    Factor sizes follow QiMLP's configurations so that parameter counts equal the paper's: MNIST
    2b/3b/4b = 3,451 / 769 / 357 at ``terms=1`` (Kronecker biases), CIFAR-10 2b/3b = 38,010 /
    15,014 (dense biases). GELU follows every layer but the last; there is no Dropout.

    Parameters
    ----------
    bodies
        ``M``: 2, 3 or 4 (MNIST), 2 or 3 (CIFAR-10; the paper's 4-body CIFAR model cannot be
        reconstructed from its count).
    terms
        ``K``, the number of Kronecker products per layer.
    dataset
        ``"mnist"`` (784-784-784-10) or ``"cifar"`` (3072 ×4, then 10).
    bias_form
        ``"kron"`` or ``"full"``; default: what the paper's counts imply for the data set.
    out_dims
        Output factor sizes of the last layer (e.g. the released 4-body script's
        ``(1, 2, 5, 1)``, 349 parameters instead of 357).
    init
        ``"paper"`` (``N(0, 0.02²)`` factors, as the released code) or ``"variance"``.
    bias_init
        ``"normal"`` (default) or ``"zeros"`` for Kronecker biases; see
        [`KronLinear`][tnlayers.KronLinear].

    Examples
    --------
    >>> [sum(p.numel() for p in QiMLP(m).parameters()) for m in (2, 3, 4)]
    [3451, 769, 357]
    """

    def __init__(
        self,
        bodies: int = 2,
        terms: int = 1,
        *,
        dataset: Dataset = "mnist",
        bias_form: BiasForm | None = None,
        out_dims: tuple[int, ...] | None = None,
        init: KronInit = "paper",
        bias_init: Literal["normal", "zeros"] = "normal",
    ) -> None:
        super().__init__()
        _check_dataset(dataset)
        if (dataset, bodies) not in CONFIGS:
            known = sorted(m for d, m in CONFIGS if d == dataset)
            raise OptionError(f"{dataset} QiMLP comes with bodies in {known}, got {bodies!r}")
        ins, hidden, outs, default_bias = CONFIGS[(dataset, bodies)]
        outs = outs if out_dims is None else tuple(out_dims)
        form = cast(BiasForm, bias_form or default_bias)
        depth = DEPTH[dataset]
        layers: list[nn.Module] = []
        width = FEATURES[dataset]
        for index in range(depth):
            first, last = index == 0, index == depth - 1
            layers.append(
                KronLinear(
                    width,
                    10 if last else width,
                    terms=terms,
                    in_dims=ins if first else hidden,
                    out_dims=outs if last else hidden,
                    bias_form=form,
                    bias_init=bias_init,
                    init=init,
                )
            )
            if not last:
                layers.append(nn.GELU())
        self.bodies, self.terms = bodies, terms
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x.flatten(1))
