"""tnlayers: neural-network layers whose weights are tensor networks.

Declare a network ([`Network`][tnlayers.Network] or a builder such as [`mpo`][tnlayers.mpo]),
inspect its [`cost`][tnlayers.cost], and train it as a [`TNLinear`][tnlayers.TNLinear] layer.

The top level holds what a user meets first. The rest lives in four namespaces:
``tnlayers.circuits``, ``tnlayers.compression``, ``tnlayers.analysis`` and, for advanced use,
``tnlayers.contraction``; datasets in ``tnlayers.data``, the papers' models in
``tnlayers.models`` and the shared training loop in ``tnlayers.training``.
"""

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

# Torch-free names load at once: declaring a network, its cost and plan, drawing it, the
# errors (so ``tnlayers cost`` and ``tnlayers --help`` never wait for torch).
from ._circuits.declare import GivensCircuit as GivensCircuit
from ._circuits.declare import QubitCircuit as QubitCircuit
from ._core.builders import kronecker as kronecker
from ._core.builders import low_rank as low_rank
from ._core.builders import mpo as mpo
from ._core.cost import CostReport as CostReport
from ._core.cost import cost as cost
from ._core.draw import draw as draw
from ._core.errors import ArgumentTypeError as ArgumentTypeError
from ._core.errors import NetworkSpecError as NetworkSpecError
from ._core.errors import OptionError as OptionError
from ._core.errors import ShapeError as ShapeError
from ._core.errors import TNLayersError as TNLayersError
from ._core.network import Network as Network
from ._core.plan import plan as plan
from ._core.topologies import block_diagonal as block_diagonal
from ._core.topologies import btt as btt
from ._core.topologies import butterfly as butterfly
from ._core.topologies import cp as cp
from ._core.topologies import grid as grid
from ._core.topologies import monarch as monarch
from ._core.topologies import tensor_ring as tensor_ring
from ._core.topologies import tree as tree
from ._core.topologies import tucker as tucker

# Everything that needs torch loads on first use (PEP 562): ``tnlayers.TNLinear`` or
# ``from tnlayers import TNLinear`` imports its module then, and keeps the name here.
_LAZY: dict[str, tuple[str, str | None]] = {
    "analysis": (".analysis", None),
    "circuits": (".circuits", None),
    "compression": (".compression", None),
    "contraction": (".contraction", None),
    "data": (".data", None),
    "models": (".models", None),
    "training": (".training", None),
    "summary": ("._analysis.summary", "summary"),
    "GivensLinear": ("._circuits.givens_layer", "GivensLinear"),
    "QubitCircuitLinear": ("._circuits.qubit_layer", "QubitCircuitLinear"),
    "fit": ("._decompose.fit", "fit"),
    "nearest_kronecker": ("._decompose.kron", "nearest_kronecker"),
    "tt_svd": ("._decompose.mpo", "tt_svd"),
    "UnfusedMultiheadAttention": ("._layers.attention", "UnfusedMultiheadAttention"),
    "TNConv1d": ("._layers.conv", "TNConv1d"),
    "TNConv2d": ("._layers.conv", "TNConv2d"),
    "KronLinear": ("._layers.kron", "KronLinear"),
    "TNLinear": ("._layers.linear", "TNLinear"),
    "TNLinearBase": ("._layers.linear", "TNLinearBase"),
    "MPOConv2d": ("._layers.mpo", "MPOConv2d"),
    "MPOLinear": ("._layers.mpo", "MPOLinear"),
    "TensorNetworkLayer": ("._layers.protocol", "TensorNetworkLayer"),
    "cached": ("._layers.weight_cache", "cached"),
    "param_groups": ("._learning_rates", "param_groups"),
    "recalibrate_batchnorm": ("._surgery.batchnorm", "recalibrate_batchnorm"),
    "compress": ("._surgery.compress", "compress"),
    "CompressionReport": ("._surgery.report", "CompressionReport"),
    "restore": ("._surgery.restore", "restore"),
}

if TYPE_CHECKING:  # for type checkers, IDEs and the API docs: the same names, eagerly
    from . import analysis as analysis
    from . import circuits as circuits
    from . import compression as compression
    from . import contraction as contraction
    from . import data as data
    from . import models as models
    from . import training as training
    from ._analysis.summary import summary as summary
    from ._circuits.givens_layer import GivensLinear as GivensLinear
    from ._circuits.qubit_layer import QubitCircuitLinear as QubitCircuitLinear
    from ._decompose.fit import fit as fit
    from ._decompose.kron import nearest_kronecker as nearest_kronecker
    from ._decompose.mpo import tt_svd as tt_svd
    from ._layers.attention import UnfusedMultiheadAttention as UnfusedMultiheadAttention
    from ._layers.conv import TNConv1d as TNConv1d
    from ._layers.conv import TNConv2d as TNConv2d
    from ._layers.kron import KronLinear as KronLinear
    from ._layers.linear import TNLinear as TNLinear
    from ._layers.linear import TNLinearBase as TNLinearBase
    from ._layers.mpo import MPOConv2d as MPOConv2d
    from ._layers.mpo import MPOLinear as MPOLinear
    from ._layers.protocol import TensorNetworkLayer as TensorNetworkLayer
    from ._layers.weight_cache import cached as cached
    from ._learning_rates import param_groups as param_groups
    from ._surgery.batchnorm import recalibrate_batchnorm as recalibrate_batchnorm
    from ._surgery.compress import compress as compress
    from ._surgery.report import CompressionReport as CompressionReport
    from ._surgery.restore import restore as restore


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'tnlayers' has no attribute {name!r}") from None
    loaded = importlib.import_module(module, __name__)
    value = loaded if attribute is None else getattr(loaded, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


try:
    __version__ = version("tnlayers")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"

__all__ = [
    "ArgumentTypeError",
    "CompressionReport",
    "CostReport",
    "GivensCircuit",
    "GivensLinear",
    "KronLinear",
    "MPOConv2d",
    "MPOLinear",
    "Network",
    "NetworkSpecError",
    "OptionError",
    "QubitCircuit",
    "QubitCircuitLinear",
    "ShapeError",
    "TNConv1d",
    "TNConv2d",
    "TNLayersError",
    "TNLinear",
    "TNLinearBase",
    "TensorNetworkLayer",
    "UnfusedMultiheadAttention",
    "__version__",
    "analysis",
    "block_diagonal",
    "btt",
    "butterfly",
    "cached",
    "circuits",
    "compress",
    "compression",
    "contraction",
    "cost",
    "cp",
    "data",
    "draw",
    "fit",
    "grid",
    "kronecker",
    "low_rank",
    "models",
    "monarch",
    "mpo",
    "nearest_kronecker",
    "param_groups",
    "plan",
    "recalibrate_batchnorm",
    "restore",
    "summary",
    "tensor_ring",
    "training",
    "tree",
    "tt_svd",
    "tucker",
]
