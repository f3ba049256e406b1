"""Quantum-inspired circuits (Chen et al.): Givens-rotation and qubit circuits, their layers and
schedules, amplitude encoding, and the parameter attacks of Chen et al.'s robustness study.
"""

from __future__ import annotations

from ._circuits.attacks import NOISE_VARIANTS as NOISE_VARIANTS
from ._circuits.attacks import Noise as Noise
from ._circuits.attacks import ParameterAttack as ParameterAttack
from ._circuits.attacks import corrupt as corrupt
from ._circuits.declare import GivensCircuit as GivensCircuit
from ._circuits.declare import QubitCircuit as QubitCircuit
from ._circuits.declare import QubitGate as QubitGate
from ._circuits.encoding import AmplitudeEncoding as AmplitudeEncoding
from ._circuits.encoding import amplitude_encode as amplitude_encode
from ._circuits.givens_layer import GivensLinear as GivensLinear
from ._circuits.givens_plan import GivensPlan as GivensPlan
from ._circuits.givens_plan import TilePlan as TilePlan
from ._circuits.givens_plan import givens_plan as givens_plan
from ._circuits.qubit_layer import QubitCircuitLinear as QubitCircuitLinear
from ._circuits.qubit_layer import qubit_gate_tensors as qubit_gate_tensors

__all__ = [
    "NOISE_VARIANTS",
    "AmplitudeEncoding",
    "GivensCircuit",
    "GivensLinear",
    "GivensPlan",
    "Noise",
    "ParameterAttack",
    "QubitCircuit",
    "QubitCircuitLinear",
    "QubitGate",
    "TilePlan",
    "amplitude_encode",
    "corrupt",
    "givens_plan",
    "qubit_gate_tensors",
]
