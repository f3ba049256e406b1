"""Execute: a layer whose weight is a qubit circuit, contracted by the ordinary planner."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Literal

import torch

from .._core.errors import ArgumentTypeError, OptionError, ShapeError
from .._layers.linear import TNLinearBase
from .._layers.strategy import StrategyOption
from .declare import QubitCircuit

__all__ = ["QubitCircuitLinear", "qubit_gate_tensors"]

_SQRT_HALF = math.sqrt(0.5)
_PAULI = {
    "x": ((0, 1), (1, 0)),
    "y": ((0, -1j), (1j, 0)),
    "z": ((1, 0), (0, -1)),
}
_FIXED_MATRICES = {
    "h": ((_SQRT_HALF, _SQRT_HALF), (_SQRT_HALF, -_SQRT_HALF)),
    "x": _PAULI["x"],
    "cnot": ((1, 0, 0, 0), (0, 1, 0, 0), (0, 0, 0, 1), (0, 0, 1, 0)),
    "cz": ((1, 0, 0, 0), (0, 1, 0, 0), (0, 0, 1, 0), (0, 0, 0, -1)),
    "swap": ((1, 0, 0, 0), (0, 0, 1, 0), (0, 1, 0, 0), (0, 0, 0, 1)),
}


def _kron(
    a: tuple[tuple[complex, ...], ...], b: tuple[tuple[complex, ...], ...]
) -> list[list[complex]]:
    return [[x * y for x in row_a for y in row_b] for row_a in a for row_b in b]


@lru_cache(maxsize=64)
def _constant(kind: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A fixed gate, or ``−i P`` of a rotation ``R_P(θ) = cos(θ/2) I + sin(θ/2) (−i P)``.

    Built from Python numbers, so a real circuit never creates a complex tensor (compiled
    graphs of real circuits then hold no complex operator).
    """
    if kind in _FIXED_MATRICES:
        entries: list[list[complex]] = [list(row) for row in _FIXED_MATRICES[kind]]
    else:
        pauli = _PAULI[kind[1]]
        product = _kron(pauli, pauli) if len(kind) == 3 else [list(row) for row in pauli]
        entries = [[-1j * value for value in row] for row in product]
    if not dtype.is_complex:
        return torch.tensor(
            [[complex(v).real for v in row] for row in entries], dtype=dtype, device=device
        )
    return torch.tensor(entries, dtype=dtype, device=device)


def qubit_gate_tensors(
    circuit: QubitCircuit, angles: torch.Tensor, dtype: torch.dtype
) -> list[torch.Tensor]:
    """Every gate of ``circuit`` as a node tensor, in order, legs ``(outputs…, inputs…)``.

    Parameters
    ----------
    circuit
        The circuit.
    angles
        ``[num_params]``, one per parameterized gate, in order.
    dtype
        A complex dtype, or a real one when the circuit is real.

    Returns
    -------
    list[torch.Tensor]
        Shapes ``[2, 2]`` for one-qubit and ``[2, 2, 2, 2]`` for two-qubit gates.
    """
    device = angles.device
    half = angles.to(dtype.to_real() if dtype.is_complex else dtype) / 2
    cos, sin = torch.cos(half).to(dtype), torch.sin(half).to(dtype)
    # Compiled graphs build the constants in the graph (dynamo would ignore the cache anyway).
    constant = _constant.__wrapped__ if torch.compiler.is_compiling() else _constant
    tensors, k = [], 0
    for gate in circuit.gates:
        arity = len(gate.qubits)
        if gate.parameterized:
            eye = torch.eye(2**arity, dtype=dtype, device=device)
            matrix = cos[k] * eye + sin[k] * constant(gate.kind, dtype, device)
            k += 1
        else:
            matrix = constant(gate.kind, dtype, device)
        tensors.append(matrix.reshape((2,) * (2 * arity)))
    return tensors


class QubitCircuitLinear(TNLinearBase):
    r"""``y = U x`` for a qubit circuit ``U``: its gates are the nodes of an ordinary network.

    Every parameterized gate has one trainable angle (``self.angles``); fixed gates are constants.
    The circuit's network (see [`QubitCircuit.network`][tnlayers.QubitCircuit.network]) goes
    through the normal planner, so the cost report, strategies (contract the state through the
    gates, or materialize ``U``) and caching are those of [`TNLinear`][tnlayers.TNLinear]; its
    tensors are computed from the angles by
    [`network_tensors`][tnlayers.QubitCircuitLinear.network_tensors].

    Parameters
    ----------
    circuit
        The circuit.
    output
        ``"amplitudes"`` (default): ``U x``, complex unless the circuit is real;
        ``"probabilities"``: ``|U x|²``, real.
    strategy
        As for [`TNLinear`][tnlayers.TNLinear].
    dtype
        The real dtype of the angles (float32 by default); gates use the matching complex dtype
        unless the circuit is real.
    device, generator
        Where to create the angles, and a generator for their ``U(−π, π)`` initialisation.

    Shapes
    ------
    - input: ``(..., 2^N)`` real or complex
    - output: ``(..., 2^N)``

    Examples
    --------
    >>> import torch, tnlayers
    >>> circuit = tnlayers.QubitCircuit(3).ry(0).ry(1).ry(2).cnot(0, 1).cnot(1, 2)
    >>> layer = tnlayers.QubitCircuitLinear(circuit, output="probabilities")
    >>> layer(torch.randn(5, 8)).shape, layer.num_params
    (torch.Size([5, 8]), 3)
    """

    def __init__(
        self,
        circuit: QubitCircuit,
        *,
        output: Literal["amplitudes", "probabilities"] = "amplitudes",
        strategy: StrategyOption = "auto",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        if not isinstance(circuit, QubitCircuit):
            raise ArgumentTypeError(
                f"QubitCircuitLinear needs a QubitCircuit, got {type(circuit).__name__}"
            )
        if output not in ("amplitudes", "probabilities"):
            raise OptionError(f"unknown output {output!r}; choose 'amplitudes' or 'probabilities'")
        real = dtype or torch.get_default_dtype()
        if real.is_complex:
            raise OptionError(f"dtype is the angles' real dtype, got {real}")
        super().__init__(circuit.network(), bias=False, strategy=strategy, device=device)
        self.circuit = circuit
        self.output = output
        self.angles = torch.nn.Parameter(torch.empty(circuit.num_params, device=device, dtype=real))
        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Draw the angles from ``U(−π, π)``."""
        with torch.no_grad():
            self.angles.uniform_(-math.pi, math.pi, generator=generator)

    @property
    def network_dtype(self) -> torch.dtype:
        """The gates' dtype: the angles' (after ``.double()``, ``.to()``...), complex unless the
        circuit is real."""
        real = self.angles.dtype
        return real if self.circuit.is_real else real.to_complex()

    @property
    def num_params(self) -> int:
        """Number of angles."""
        return self.circuit.num_params

    def network_tensors(self) -> list[torch.Tensor]:
        """The gates as node tensors computed from the angles (differentiable), in network
        order; see [`qubit_gate_tensors`][tnlayers.circuits.qubit_gate_tensors]."""
        tensors = qubit_gate_tensors(self.circuit, self.angles, self.network_dtype)
        if "link" in self.network.sizes:
            # Gates of a product circuit that carry the size-1 link get that leg appended.
            tensors = [
                t.unsqueeze(-1) if "link" in self.network.legs(name) else t
                for t, name in zip(tensors, self.network.tensor_names, strict=True)
            ]
        return tensors

    def weight_sources(self) -> list[torch.Tensor]:
        """``[self.angles]``: every gate is a function of them."""
        return [self.angles]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the circuit to ``x`` of shape ``(..., 2^N)`` (real inputs are cast)."""
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            got = "a scalar" if x.dim() == 0 else f"shape {tuple(x.shape)}"
            raise ShapeError(
                f"input has {got}, but the {self.circuit.num_qubits}-qubit circuit expects "
                f"(..., {self.in_features}) amplitudes (2^{self.circuit.num_qubits})"
            )
        y = super().forward(x.to(self.network_dtype))
        if self.output == "probabilities":
            return y.abs().square() if y.is_complex() else y.square()
        return y
