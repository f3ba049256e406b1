"""tnlayers: neural-network layers whose weights are tensor networks.

Declare a network ([`Network`][tnlayers.Network] or a builder such as [`mpo`][tnlayers.mpo]),
inspect its [`cost`][tnlayers.cost], and train it as a [`TNLinear`][tnlayers.TNLinear] layer.
"""

from importlib.metadata import PackageNotFoundError, version

from . import data as data
from . import models as models
from ._attacks import NOISE_VARIANTS as NOISE_VARIANTS
from ._attacks import Noise as Noise
from ._attacks import ParameterAttack as ParameterAttack
from ._attacks import corrupt as corrupt
from ._builders import kronecker as kronecker
from ._builders import low_rank as low_rank
from ._builders import mpo as mpo
from ._circuits import GivensCircuit as GivensCircuit
from ._circuits import QubitCircuit as QubitCircuit
from ._circuits import QubitGate as QubitGate
from ._compress import CompressionReport as CompressionReport
from ._compress import LayerCompression as LayerCompression
from ._compress import LowRankConv2d as LowRankConv2d
from ._compress import compress as compress
from ._compress import truncated_svd as truncated_svd
from ._correlation import Correlation as Correlation
from ._correlation import correlation_report as correlation_report
from ._correlation import plot_correlation as plot_correlation
from ._correlation import strong_correlation as strong_correlation
from ._correlation import von_neumann_entropy as von_neumann_entropy
from ._cost import CostReport as CostReport
from ._cost import cost as cost
from ._draw import draw as draw
from ._encoding import AmplitudeEncoding as AmplitudeEncoding
from ._encoding import amplitude_encode as amplitude_encode
from ._entropy_plot import plot_entanglement as plot_entanglement
from ._errors import ArgumentTypeError as ArgumentTypeError
from ._errors import NetworkSpecError as NetworkSpecError
from ._errors import OptionError as OptionError
from ._errors import ShapeError as ShapeError
from ._errors import TNLayersError as TNLayersError
from ._execute import Program as Program
from ._execute import compile_contraction as compile_contraction
from ._execute import contract_weight as contract_weight
from ._execute import run_program as run_program
from ._factorize import Factorization as Factorization
from ._factorize import factorize as factorize
from ._factorize import kronecker_factors as kronecker_factors
from ._finetune import FineTuneResult as FineTuneResult
from ._finetune import evaluate_accuracy as evaluate_accuracy
from ._finetune import fine_tune as fine_tune
from ._givens_layers import GivensLinear as GivensLinear
from ._givens_plan import GivensPlan as GivensPlan
from ._givens_plan import givens_plan as givens_plan
from ._init import variance_preserving_ as variance_preserving_
from ._interop import from_tensornetwork as from_tensornetwork
from ._interop import to_tensornetwork as to_tensornetwork
from ._kron import KroneckerApproximation as KroneckerApproximation
from ._kron import nearest_kronecker as nearest_kronecker
from ._kron_layers import KronLinear as KronLinear
from ._latency import LatencyReport as LatencyReport
from ._latency import measure_latency as measure_latency
from ._layer import TNLinear as TNLinear
from ._metrics import ClassificationReport as ClassificationReport
from ._metrics import classification_report as classification_report
from ._mpo import MPO as MPO
from ._mpo import Approximation as Approximation
from ._mpo import tt_svd as tt_svd
from ._mpo_layers import MPOConv2d as MPOConv2d
from ._mpo_layers import MPOLinear as MPOLinear
from ._network import Network as Network
from ._plan import Contraction as Contraction
from ._plan import MachineModel as MachineModel
from ._plan import Plan as Plan
from ._plan import Step as Step
from ._plan import StrategyPlan as StrategyPlan
from ._plan import plan as plan
from ._qianets import AnnealedFactors as AnnealedFactors
from ._qianets import PruningReport as PruningReport
from ._qianets import anneal_factorize as anneal_factorize
from ._qianets import qianets_prune as qianets_prune
from ._qubit_layers import QubitCircuitLinear as QubitCircuitLinear
from ._strategy import Decision as Decision
from ._summary import compression_ratio as compression_ratio
from ._summary import summary as summary
from ._weight_cache import cached as cached

try:
    __version__ = version("tnlayers")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"

__all__ = [
    "MPO",
    "NOISE_VARIANTS",
    "AmplitudeEncoding",
    "AnnealedFactors",
    "Approximation",
    "ArgumentTypeError",
    "ClassificationReport",
    "CompressionReport",
    "Contraction",
    "Correlation",
    "CostReport",
    "Decision",
    "Factorization",
    "FineTuneResult",
    "GivensCircuit",
    "GivensLinear",
    "GivensPlan",
    "KronLinear",
    "KroneckerApproximation",
    "LatencyReport",
    "LayerCompression",
    "LowRankConv2d",
    "MPOConv2d",
    "MPOLinear",
    "MachineModel",
    "Network",
    "NetworkSpecError",
    "Noise",
    "OptionError",
    "ParameterAttack",
    "Plan",
    "Program",
    "PruningReport",
    "QubitCircuit",
    "QubitCircuitLinear",
    "QubitGate",
    "ShapeError",
    "Step",
    "StrategyPlan",
    "TNLayersError",
    "TNLinear",
    "__version__",
    "amplitude_encode",
    "anneal_factorize",
    "cached",
    "classification_report",
    "compile_contraction",
    "compress",
    "compression_ratio",
    "contract_weight",
    "correlation_report",
    "corrupt",
    "cost",
    "data",
    "draw",
    "evaluate_accuracy",
    "factorize",
    "fine_tune",
    "from_tensornetwork",
    "givens_plan",
    "kronecker",
    "kronecker_factors",
    "low_rank",
    "measure_latency",
    "models",
    "mpo",
    "nearest_kronecker",
    "plan",
    "plot_correlation",
    "plot_entanglement",
    "qianets_prune",
    "run_program",
    "strong_correlation",
    "summary",
    "to_tensornetwork",
    "truncated_svd",
    "tt_svd",
    "variance_preserving_",
    "von_neumann_entropy",
]
