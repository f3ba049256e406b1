"""MPO-Net's MNIST models (Gao et al. 2020 and the authors' code): FC2 and LeNet-5, dense or
with MPO layers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from .._core.errors import OptionError
from .._layers.mpo import MPOLinear

__all__ = ["FC2", "LeNet5"]

ModelInit = Literal["paper", "variance"]

# The paper's MPO shapes: (in_dims, out_dims) per replaced layer.
FC2_SHAPES = (((4, 7, 7, 4), (4, 4, 4, 4)), ((4, 4, 4, 4), (1, 1, 10, 1)))
FC2_SECOND_BOND = 4
LENET5_SHAPES = (
    ((2, 10, 10, 2), (2, 5, 6, 2)),
    ((2, 5, 6, 2), (2, 3, 7, 2)),
    ((2, 3, 7, 2), (1, 5, 2, 1)),
)
LENET5_BONDS = (4, 4, 2)


def _check_init(init: str) -> None:
    if init not in ("paper", "variance"):
        raise OptionError(f"unknown init {init!r}; choose 'paper' or 'variance'")


def _dense(fan_in: int, fan_out: int, bias: bool, init: ModelInit) -> nn.Linear:
    layer = nn.Linear(fan_in, fan_out, bias=bias)
    if init == "paper":
        # The authors' baseline FC2: truncated normal, std 0.1, no bias.
        nn.init.trunc_normal_(layer.weight, std=0.1, a=-0.2, b=0.2)
    return layer


def _mpo(
    shape: tuple[tuple[int, ...], tuple[int, ...]], bond: int, bias: bool, init: ModelInit
) -> MPOLinear:
    ins, outs = shape
    return MPOLinear(
        int(torch.tensor(ins).prod()),
        int(torch.tensor(outs).prod()),
        bias,
        bond=bond,
        in_dims=ins,
        out_dims=outs,
        init=init,
    )


class FC2(nn.Module):
    r"""784-256-10 with a ReLU, dense or as MPO-Net (``bond=D``).

    MPO form: layer 1 ``M_{4,7,7,4}^{4,4,4,4}(D)``, layer 2 ``M_{4,4,4,4}^{1,1,10,1}(4)``, with
    biases (the authors' MPO layers have them); the dense baseline has none, as in their code.

    Parameters
    ----------
    bond
        ``None`` for the dense baseline, else the first layer's bond ``D``.
    init
        ``"paper"``: the authors' (dense: truncated normal 0.1; MPO: per-core truncated Glorot,
        zero biases). ``"variance"``: ``nn.Linear``'s default and tnlayers' variance-matched cores.

    Shapes
    ------
    input ``(B, 784)`` or ``(B, 1, 28, 28)``; output ``(B, 10)`` logits.

    Examples
    --------
    >>> from tnlayers.analysis import compression_ratio
    >>> sum(m.num_params for m in FC2(bond=2).modules() if hasattr(m, "num_params"))
    1024
    >>> round(compression_ratio(FC2(bond=16)), 4)
    0.0767
    """

    def __init__(self, bond: int | None = None, *, init: ModelInit = "paper") -> None:
        super().__init__()
        _check_init(init)
        self.bond = bond
        self.fc1: nn.Module
        self.fc2: nn.Module
        if bond is None:
            self.fc1 = _dense(784, 256, False, init)
            self.fc2 = _dense(256, 10, False, init)
        else:
            self.fc1 = _mpo(FC2_SHAPES[0], bond, True, init)
            self.fc2 = _mpo(FC2_SHAPES[1], FC2_SECOND_BOND, True, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


class LeNet5(nn.Module):
    r"""LeNet-5 of MPO-Net: two 5×5 convolutions, then 400-120-84-10, dense or MPO.

    conv 1→6 (same padding), ReLU, max-pool 2 → conv 6→16 (valid), ReLU, max-pool 2 → flatten in
    the authors' NHWC order (channels last) → 400→120, ReLU → 120→84, ReLU → 84→10. The MPO form
    replaces the three fully connected layers by ``M_{2,10,10,2}^{2,5,6,2}(4)``,
    ``M_{2,5,6,2}^{2,3,7,2}(4)`` and ``M_{2,3,7,2}^{1,5,2,1}(2)``; convolutions stay dense.

    Parameters
    ----------
    mpo
        Use MPO fully connected layers.
    bonds
        Bond sizes of the three MPOs (the paper's ``(4, 4, 2)``).
    init
        ``"paper"`` (per-core truncated Glorot for MPOs, zero biases) or ``"variance"``; the
        convolutions and dense layers use torch's defaults either way.

    Shapes
    ------
    input ``(B, 1, 28, 28)`` or ``(B, 784)``; output ``(B, 10)`` logits.

    Examples
    --------
    >>> from tnlayers.analysis import compression_ratio
    >>> round(compression_ratio(LeNet5(mpo=True)), 4)
    0.0485
    """

    def __init__(
        self,
        mpo: bool = False,
        *,
        bonds: Sequence[int] = LENET5_BONDS,
        init: ModelInit = "paper",
    ) -> None:
        super().__init__()
        _check_init(init)
        if len(bonds) != 3:
            raise OptionError(f"LeNet5 has three MPO layers: give three bonds, got {bonds!r}")
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding="same"),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        fcs: list[nn.Module]
        if mpo:
            fcs = [
                _mpo(shape, bond, True, init)
                for shape, bond in zip(LENET5_SHAPES, bonds, strict=True)
            ]
        else:
            fcs = [nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)]
        self.classifier = nn.Sequential(fcs[0], nn.ReLU(), fcs[1], nn.ReLU(), fcs[2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.features(x.reshape(-1, 1, 28, 28))
        return self.classifier(maps.permute(0, 2, 3, 1).flatten(1))
