"""Chen et al.'s hybrid quantum-inspired networks and their classical baselines.

QRFNN / QDFNN / TQFNN (eqs. 7, 8, 10): a classical input layer (only when the input size differs
from the circuit's), amplitude encoding, ``L`` Givens circuit layers joined by residual (adaptive
λ), dense (λ_{l,j} over all earlier states) or no connections, and a classical output layer.
QRCNN / QDCNN / TQCNN put a small convolutional front end before them (our assumption: the paper
gives no architecture). The baselines replace the circuit layers by classical hidden layers of the
same width.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

from .._circuits.encoding import AmplitudeEncoding
from .._circuits.givens_layer import GivensLinear
from .._core.errors import OptionError

__all__ = [
    "QDCNN",
    "QDFNN",
    "QRCNN",
    "QRFNN",
    "TQCNN",
    "TQFNN",
    "BaselineCNN",
    "BaselineMLP",
    "CircuitStack",
    "HybridCNN",
    "HybridFNN",
]

Connection = Literal["residual", "dense", "none"]


class CircuitStack(nn.Module):
    r"""``L`` Givens circuit layers with residual, dense or no connections.

    - residual (eq. 7): ``ψ_l = U_{l−1} ψ_{l−1} + λ_{l−1} ψ_{l−1}``, one λ per layer, starting at 1;
    - dense (eq. 8): ``ψ_l = U_{l−1} ψ_{l−1} + Σ_{j<l} λ_{l,j} ψ_j``, L(L + 1)/2 λ's, starting at
      ``1/l``;
    - none (the ablation's TQ models): ``ψ_l = U_{l−1} ψ_{l−1}``.

    No renormalisation after the addition (eq. 7 has none). ``activation``, if given, is applied
    to every state but the last.

    Parameters
    ----------
    n
        The state dimension.
    layers
        ``L``, the number of circuit layers.
    connection
        ``"residual" | "dense" | "none"``.
    layout
        The circuits' layout (``"v"``, Chen et al.'s, by default).
    activation
        Optional nonlinearity between circuit layers.

    Shapes
    ------
    ``(..., n) → (..., n)``
    """

    def __init__(
        self,
        n: int,
        layers: int = 2,
        connection: Connection = "residual",
        *,
        layout: Literal["v", "reck", "clements"] = "v",
        activation: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        if connection not in ("residual", "dense", "none"):
            raise OptionError(
                f"unknown connection {connection!r}; choose 'residual', 'dense' or 'none'"
            )
        if layers < 1:
            raise OptionError(f"a circuit stack needs at least one layer, got {layers}")
        self.connection = connection
        self.activation = activation
        self.circuits = nn.ModuleList(GivensLinear(n, layout=layout) for _ in range(layers))
        if connection == "residual":
            self.lambdas = nn.Parameter(torch.ones(layers))
        elif connection == "dense":
            # λ_{l,j} for l = 1..L, j = 0..l−1, stored flat at l(l−1)/2 + j.
            self.lambdas = nn.Parameter(
                torch.tensor([1.0 / depth for depth in range(1, layers + 1) for _ in range(depth)])
            )
        else:
            self.register_parameter("lambdas", None)

    def dense_lambda(self, l: int, j: int) -> torch.Tensor:  # noqa: E741
        """``λ_{l,j}`` of eq. 8 (``1 ≤ l ≤ L``, ``0 ≤ j < l``)."""
        return self.lambdas[l * (l - 1) // 2 + j]

    def forward(self, psi: torch.Tensor) -> torch.Tensor:
        states = [psi]
        last = len(self.circuits)
        for l, circuit in enumerate(self.circuits, start=1):  # noqa: E741
            new = circuit(states[-1])
            if self.connection == "residual":
                new = new + self.lambdas[l - 1] * states[-1]
            elif self.connection == "dense":
                for j in range(l):
                    new = new + self.dense_lambda(l, j) * states[j]
            if self.activation is not None and l < last:
                new = self.activation(new)
            states.append(new)
        return states[-1]


class HybridFNN(nn.Module):
    """Classical input layer (if needed) → amplitude encoding → circuit stack → classical output.

    Parameters
    ----------
    in_features
        Input size ``d``.
    classes
        Output size (logits; softmax is in the loss).
    n
        The circuits' dimension (default ``d``: no input layer, the raw features are encoded).
    layers, connection, layout, activation
        As for [`CircuitStack`][tnlayers.models.CircuitStack].

    Shapes
    ------
    ``(batch, d) → (batch, classes)``
    """

    def __init__(
        self,
        in_features: int,
        classes: int,
        n: int | None = None,
        *,
        layers: int = 2,
        connection: Connection = "residual",
        layout: Literal["v", "reck", "clements"] = "v",
        activation: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        n = in_features if n is None else n
        self.input = nn.Identity() if n == in_features else nn.Linear(in_features, n)
        self.encode = AmplitudeEncoding(n)
        self.stack = CircuitStack(n, layers, connection, layout=layout, activation=activation)
        self.output = nn.Linear(n, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.stack(self.encode(self.input(x))))


class QRFNN(HybridFNN):
    """[`HybridFNN`][tnlayers.models.HybridFNN] with residual connections (eq. 7)."""

    def __init__(self, in_features: int, classes: int, n: int | None = None, **kwargs) -> None:
        super().__init__(in_features, classes, n, connection="residual", **kwargs)


class QDFNN(HybridFNN):
    """[`HybridFNN`][tnlayers.models.HybridFNN] with dense connections (eq. 8)."""

    def __init__(self, in_features: int, classes: int, n: int | None = None, **kwargs) -> None:
        super().__init__(in_features, classes, n, connection="dense", **kwargs)


class TQFNN(HybridFNN):
    """[`HybridFNN`][tnlayers.models.HybridFNN] without connections (the ablation)."""

    def __init__(self, in_features: int, classes: int, n: int | None = None, **kwargs) -> None:
        super().__init__(in_features, classes, n, connection="none", **kwargs)


def conv_features(in_channels: int) -> nn.Sequential:
    """our front end: two (3×3 conv, LeakyReLU, 2×2 max-pool) stages, 8 and 16 channels."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 8, 3, padding=1),
        nn.LeakyReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.LeakyReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
    )


def _flat_size(image_size: int) -> int:
    return 16 * (image_size // 4) ** 2


class HybridCNN(nn.Module):
    """Conv front end → Linear(→ n) → amplitude encoding → circuit stack → Linear(n → classes).

    Parameters
    ----------
    in_channels, image_size
        Input images are ``(batch, in_channels, image_size, image_size)``.
    classes
        Output size.
    n
        The circuits' dimension (16 = 4 qubits by default; our choice, the paper gives none).
    layers, connection, layout, activation
        As for [`CircuitStack`][tnlayers.models.CircuitStack].
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        classes: int,
        n: int = 16,
        *,
        layers: int = 2,
        connection: Connection = "residual",
        layout: Literal["v", "reck", "clements"] = "v",
        activation: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.features = conv_features(in_channels)
        self.input = nn.Linear(_flat_size(image_size), n)
        self.encode = AmplitudeEncoding(n)
        self.stack = CircuitStack(n, layers, connection, layout=layout, activation=activation)
        self.output = nn.Linear(n, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.stack(self.encode(self.input(self.features(x)))))


class QRCNN(HybridCNN):
    """[`HybridCNN`][tnlayers.models.HybridCNN] with residual connections."""

    def __init__(self, in_channels: int, image_size: int, classes: int, **kwargs) -> None:
        super().__init__(in_channels, image_size, classes, connection="residual", **kwargs)


class QDCNN(HybridCNN):
    """[`HybridCNN`][tnlayers.models.HybridCNN] with dense connections."""

    def __init__(self, in_channels: int, image_size: int, classes: int, **kwargs) -> None:
        super().__init__(in_channels, image_size, classes, connection="dense", **kwargs)


class TQCNN(HybridCNN):
    """[`HybridCNN`][tnlayers.models.HybridCNN] without connections (the ablation)."""

    def __init__(self, in_channels: int, image_size: int, classes: int, **kwargs) -> None:
        super().__init__(in_channels, image_size, classes, connection="none", **kwargs)


def _hidden(n: int, layers: int) -> nn.ModuleList:
    # Each block ends in its activation, so an attack on a block's output (form ②) is added
    # after the nonlinearity, as Chen et al. describe for classical networks.
    return nn.ModuleList(nn.Sequential(nn.Linear(n, n), nn.LeakyReLU()) for _ in range(layers))


class BaselineMLP(nn.Module):
    """Chen et al.'s classical control: ``L`` hidden LeakyReLU layers of the circuits' width.

    ``d → n`` input layer only if ``d ≠ n``; for iris (``d = n = 4``, ``L = 2``) it is
    4 → 4 → 4 → 3 (our CPU-scale protocol). Attackable blocks are ``hidden.0``, ``hidden.1``, …
    """

    def __init__(self, in_features: int, classes: int, n: int | None = None, *, layers: int = 2):
        super().__init__()
        n = in_features if n is None else n
        self.input = (
            nn.Identity()
            if n == in_features
            else nn.Sequential(nn.Linear(in_features, n), nn.LeakyReLU())
        )
        self.hidden = _hidden(n, layers)
        self.output = nn.Linear(n, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input(x)
        for block in self.hidden:
            x = block(x)
        return self.output(x)


class BaselineCNN(nn.Module):
    """The same conv front end, then Linear(→ n) and ``L`` hidden LeakyReLU layers of width n.

    Chen et al.'s leaky-ReLU CNN baseline (its architecture is our assumption: the paper gives
    none). Its "rot-ReLU" variant is defined only in an unreachable supplement and is not provided.
    """

    def __init__(
        self, in_channels: int, image_size: int, classes: int, n: int = 16, *, layers: int = 2
    ) -> None:
        super().__init__()
        self.features = conv_features(in_channels)
        self.input = nn.Sequential(nn.Linear(_flat_size(image_size), n), nn.LeakyReLU())
        self.hidden = _hidden(n, layers)
        self.output = nn.Linear(n, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input(self.features(x))
        for block in self.hidden:
            x = block(x)
        return self.output(x)
