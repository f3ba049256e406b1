"""The built-in networks of the four papers, by name (used by the CLI and the demo)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .builders import kronecker, low_rank, mpo
from .network import Network

__all__ = ["CATALOGUE", "Entry"]


@dataclass(frozen=True)
class Entry:
    """A named built-in network: which paper, what it is, and how to build it."""

    paper: str
    description: str
    build: Callable[[], Network]


CATALOGUE: dict[str, Entry] = {
    "fc2-mpo1-d2": Entry(
        "MPO-Net (Gao 2020)",
        "FC2 layer 1, M_{4,7,7,4}^{4,4,4,4}(2)",
        lambda: mpo((4, 7, 7, 4), (4, 4, 4, 4), 2),
    ),
    "fc2-mpo1-d16": Entry(
        "MPO-Net (Gao 2020)",
        "FC2 layer 1, M_{4,7,7,4}^{4,4,4,4}(16)",
        lambda: mpo((4, 7, 7, 4), (4, 4, 4, 4), 16),
    ),
    "fc2-mpo2": Entry(
        "MPO-Net (Gao 2020)",
        "FC2 layer 2, M_{4,4,4,4}^{1,1,10,1}(4)",
        lambda: mpo((4, 4, 4, 4), (1, 1, 10, 1), 4),
    ),
    "lenet5-mpo1": Entry(
        "MPO-Net (Gao 2020)",
        "LeNet-5 FC 400→120, M_{2,10,10,2}^{2,5,6,2}(4)",
        lambda: mpo((2, 10, 10, 2), (2, 5, 6, 2), 4),
    ),
    "lenet5-mpo2": Entry(
        "MPO-Net (Gao 2020)",
        "LeNet-5 FC 120→84, M_{2,5,6,2}^{2,3,7,2}(4)",
        lambda: mpo((2, 5, 6, 2), (2, 3, 7, 2), 4),
    ),
    "lenet5-mpo3": Entry(
        "MPO-Net (Gao 2020)",
        "LeNet-5 FC 84→10, M_{2,3,7,2}^{1,5,2,1}(2)",
        lambda: mpo((2, 3, 7, 2), (1, 5, 2, 1), 2),
    ),
    "qimlp-2b": Entry(
        "QiMLP (Zhang 2025)",
        "MNIST hidden layer, 2 bodies (28,28)→(28,28), K=1",
        lambda: kronecker((28, 28), (28, 28), 1),
    ),
    "qimlp-3b": Entry(
        "QiMLP (Zhang 2025)",
        "MNIST hidden layer, 3 bodies (7,7,16)→(16,7,7), K=1",
        lambda: kronecker((7, 7, 16), (16, 7, 7), 1),
    ),
    "qimlp-4b": Entry(
        "QiMLP (Zhang 2025)",
        "MNIST hidden layer, 4 bodies (4,7,4,7)→(7,4,7,4), K=1",
        lambda: kronecker((4, 7, 4, 7), (7, 4, 7, 4), 1),
    ),
    "qimlp-2b-k4": Entry(
        "QiMLP (Zhang 2025)",
        "MNIST hidden layer, 2 bodies, K=4 copies",
        lambda: kronecker((28, 28), (28, 28), 4),
    ),
    "low-rank-16": Entry(
        "QIANets (Balapanov 2024)",
        "truncated-SVD 784→256 at rank 16",
        lambda: low_rank(784, 256, 16),
    ),
}
