"""The four papers' models, in dense and tensor-network form.

- MPO-Net (Gao et al. 2020): [`FC2`][tnlayers.models.FC2] and [`LeNet5`][tnlayers.models.LeNet5].
- QiMLP (Zhang et al. 2025): [`QiMLP`][tnlayers.models.QiMLP] and its control
  [`MLP`][tnlayers.models.MLP].
- Hybrid quantum-inspired networks (Chen et al. 2024): [`QRFNN`][tnlayers.models.QRFNN],
  [`QDFNN`][tnlayers.models.QDFNN], [`TQFNN`][tnlayers.models.TQFNN], their convolutional
  versions [`QRCNN`][tnlayers.models.QRCNN], [`QDCNN`][tnlayers.models.QDCNN],
  [`TQCNN`][tnlayers.models.TQCNN], and the baselines [`BaselineMLP`][tnlayers.models.BaselineMLP]
  and [`BaselineCNN`][tnlayers.models.BaselineCNN].
- Compression experiments (QIANets, Balapanov et al. 2024):
  [`SmallResNet`][tnlayers.models.SmallResNet] and
  [`SmallDenseNet`][tnlayers.models.SmallDenseNet].
"""

from ._cnn import SmallDenseNet as SmallDenseNet
from ._cnn import SmallResNet as SmallResNet
from ._hybrid import QDCNN as QDCNN
from ._hybrid import QDFNN as QDFNN
from ._hybrid import QRCNN as QRCNN
from ._hybrid import QRFNN as QRFNN
from ._hybrid import TQCNN as TQCNN
from ._hybrid import TQFNN as TQFNN
from ._hybrid import BaselineCNN as BaselineCNN
from ._hybrid import BaselineMLP as BaselineMLP
from ._hybrid import CircuitStack as CircuitStack
from ._hybrid import HybridCNN as HybridCNN
from ._hybrid import HybridFNN as HybridFNN
from ._mponet import FC2 as FC2
from ._mponet import LeNet5 as LeNet5
from ._qimlp import MLP as MLP
from ._qimlp import QiMLP as QiMLP

__all__ = [
    "FC2",
    "MLP",
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
    "LeNet5",
    "QiMLP",
    "SmallDenseNet",
    "SmallResNet",
]
