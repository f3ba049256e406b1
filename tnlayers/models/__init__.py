"""The seed papers' models, in dense and tensor-network form.

- MPO-Net (seed 003): [`FC2`][tnlayers.models.FC2] and [`LeNet5`][tnlayers.models.LeNet5].
"""

from ._mponet import FC2 as FC2
from ._mponet import LeNet5 as LeNet5

__all__ = ["FC2", "LeNet5"]
