"""Contraction internals for advanced users: plans, steps, machine models, compiled programs,
the strategy decision, factorisation of sizes, the variance-preserving initialisation, and
interop with the TensorNetwork library.

Most users need only [`tnlayers.plan`][tnlayers.plan] and [`tnlayers.cost`][tnlayers.cost];
this namespace is for writing executors, checking paths and tuning the machine model.
"""

from __future__ import annotations

from ._core.cost import StrategyCost as StrategyCost
from ._core.factorize import Factorization as Factorization
from ._core.factorize import factorize as factorize
from ._core.factorize import kronecker_factors as kronecker_factors
from ._core.interop import from_tensornetwork as from_tensornetwork
from ._core.interop import to_tensornetwork as to_tensornetwork
from ._core.plan import Contraction as Contraction
from ._core.plan import MachineModel as MachineModel
from ._core.plan import Plan as Plan
from ._core.plan import Step as Step
from ._core.plan import StrategyPlan as StrategyPlan
from ._core.plan import plan as plan
from ._layers.execute import Program as Program
from ._layers.execute import compile_contraction as compile_contraction
from ._layers.execute import contract_weight as contract_weight
from ._layers.execute import run_program as run_program
from ._layers.init import variance_preserving_ as variance_preserving_
from ._layers.strategy import Decision as Decision

__all__ = [
    "Contraction",
    "Decision",
    "Factorization",
    "MachineModel",
    "Plan",
    "Program",
    "Step",
    "StrategyCost",
    "StrategyPlan",
    "compile_contraction",
    "contract_weight",
    "factorize",
    "from_tensornetwork",
    "kronecker_factors",
    "plan",
    "run_program",
    "to_tensornetwork",
    "variance_preserving_",
]
