"""Dense → network: compress trained models, decompose single weights (TT-SVD, nearest Kronecker
sums, truncated SVD), QIANets' pruning and annealed factorisation (fine-tuning is in
``tnlayers.training``).
"""

from __future__ import annotations

from ._decompose.fit import NetworkFit as NetworkFit
from ._decompose.fit import fit as fit
from ._decompose.kron import KroneckerApproximation as KroneckerApproximation
from ._decompose.kron import nearest_kronecker as nearest_kronecker
from ._decompose.mpo import MPO as MPO
from ._decompose.mpo import Approximation as Approximation
from ._decompose.mpo import tt_svd as tt_svd
from ._decompose.qianets import AnnealedFactors as AnnealedFactors
from ._decompose.qianets import PruningReport as PruningReport
from ._decompose.qianets import anneal_factorize as anneal_factorize
from ._decompose.qianets import qianets_prune as qianets_prune
from ._decompose.svd import truncated_svd as truncated_svd
from ._layers.low_rank_conv import LowRankConv2d as LowRankConv2d
from ._surgery.batchnorm import recalibrate_batchnorm as recalibrate_batchnorm
from ._surgery.compress import compress as compress
from ._surgery.report import BudgetSummary as BudgetSummary
from ._surgery.report import CompressionReport as CompressionReport
from ._surgery.report import LayerCompression as LayerCompression
from ._surgery.restore import restore as restore
from ._surgery.targets import Skipped as SkippedLayer

__all__ = [
    "MPO",
    "AnnealedFactors",
    "Approximation",
    "BudgetSummary",
    "CompressionReport",
    "KroneckerApproximation",
    "LayerCompression",
    "LowRankConv2d",
    "NetworkFit",
    "PruningReport",
    "SkippedLayer",
    "anneal_factorize",
    "compress",
    "fit",
    "nearest_kronecker",
    "qianets_prune",
    "recalibrate_batchnorm",
    "restore",
    "truncated_svd",
    "tt_svd",
]
