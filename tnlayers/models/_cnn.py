"""Small ResNet- and DenseNet-style CNNs for QIANets' compression experiments at CPU scale.

At CPU scale: the paper's ImageNet backbones at 224 × 224 do not fit a 2-core CPU; these keep their
defining blocks (residual BasicBlocks; dense blocks with transitions) at MNIST size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["SmallDenseNet", "SmallResNet"]


class _BasicBlock(nn.Module):
    """conv3×3–BN–ReLU–conv3×3–BN, plus the input (1×1 conv + BN when the shape changes)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class SmallResNet(nn.Module):
    """A ResNet-8-style CNN: stem, one BasicBlock per stage, global pooling, Linear.

    Parameters
    ----------
    in_channels, classes
        Input channels and output classes.
    widths
        Channels of the stages; every stage after the first halves the resolution.

    Shapes
    ------
    ``(batch, in_channels, H, W) → (batch, classes)``
    """

    def __init__(
        self, in_channels: int = 1, classes: int = 10, widths: Sequence[int] = (16, 32, 64)
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(),
        )
        stages = []
        channels = widths[0]
        for i, width in enumerate(widths):
            stages.append(_BasicBlock(channels, width, 1 if i == 0 else 2))
            channels = width
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.stages(self.stem(x)).mean(dim=(2, 3)))


class _DenseLayer(nn.Module):
    def __init__(self, in_channels: int, growth: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_channels)
        self.conv = nn.Conv2d(in_channels, growth, 3, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((x, self.conv(torch.relu(self.bn(x)))), 1)


class SmallDenseNet(nn.Module):
    """A DenseNet-style CNN: stem, dense blocks (each layer adds ``growth`` channels) with
    transitions (BN–ReLU–1×1 conv halving the channels, 2×2 average pooling), global pooling,
    Linear.

    Parameters
    ----------
    in_channels, classes
        Input channels and output classes.
    growth
        Channels each dense layer adds.
    blocks
        Dense layers per block.
    stem_channels
        Channels after the stem convolution.
    """

    def __init__(
        self,
        in_channels: int = 1,
        classes: int = 10,
        growth: int = 12,
        blocks: Sequence[int] = (4, 4),
        stem_channels: int = 16,
    ) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, stem_channels, 3, 1, 1, bias=False)
        parts: list[nn.Module] = []
        channels = stem_channels
        for i, count in enumerate(blocks):
            for _ in range(count):
                parts.append(_DenseLayer(channels, growth))
                channels += growth
            if i < len(blocks) - 1:
                parts += [
                    nn.BatchNorm2d(channels),
                    nn.ReLU(),
                    nn.Conv2d(channels, channels // 2, 1, bias=False),
                    nn.AvgPool2d(2),
                ]
                channels //= 2
        self.features = nn.Sequential(*parts, nn.BatchNorm2d(channels), nn.ReLU())
        self.fc = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(self.stem(x)).mean(dim=(2, 3)))
