"""The seed papers' models, in dense and tensor-network form.

- MPO-Net (seed 003): [`FC2`][tnlayers.models.FC2] and [`LeNet5`][tnlayers.models.LeNet5].
- QiMLP (seed 000): [`QiMLP`][tnlayers.models.QiMLP] and its control [`MLP`][tnlayers.models.MLP].
"""

from ._mponet import FC2 as FC2
from ._mponet import LeNet5 as LeNet5
from ._qimlp import MLP as MLP
from ._qimlp import QiMLP as QiMLP

__all__ = ["FC2", "MLP", "LeNet5", "QiMLP"]
