"""Declare: rotation-gate circuits (Chen et al. 2024) as sequences of gates and as tensor networks.

Two kinds of circuit, both torch-free declarations like [`Network`][tnlayers.Network]:

- [`GivensCircuit`][tnlayers.GivensCircuit]: two-level (Givens) rotations on pairs of basis
  indices of one n-dimensional mode, Chen et al.'s parameterized T gate. Layouts: their V shape
  (2n − 3 gates), the Reck triangle, the Clements rectangle, or any sequence of index pairs.
- [`QubitCircuit`][tnlayers.QubitCircuit]: gates on N qubits (single-qubit rotations, fixed gates
  and two-qubit rotations), layered as declared.

Each has a `.network()`: the circuit as an ordinary network of gate nodes that the foundation can
cost, draw and materialize. The layers in [`GivensLinear`][tnlayers.GivensLinear] and
[`QubitCircuitLinear`][tnlayers.QubitCircuitLinear] execute them; a Givens circuit is not run
through the generic planner, because every gate node is a dense n × n tensor there while the
rotation itself touches two coordinates.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .._core.errors import NetworkSpecError, OptionError
from .._core.network import Network

if TYPE_CHECKING:  # imported where used: networkx is slow to import
    pass

__all__ = ["GivensCircuit", "QubitCircuit", "QubitGate"]


@dataclass(frozen=True)
class GivensCircuit:
    """A sequence of two-level rotations of an ``n``-dimensional mode, in application order.

    Gate ``t`` acts on coordinates ``(p, q) = pairs[t]`` with angle ``θ_t``::

        ψ_p ← cos θ_t · ψ_p − sin θ_t · ψ_q
        ψ_q ← sin θ_t · ψ_p + cos θ_t · ψ_q

    so that for ``q = p + 1`` it is ``T_{p+1}(θ)`` of Chen et al. 2024, eq. 3 (``−sin θ`` in row p).
    The circuit's matrix is ``U = G_{m−1} ⋯ G_1 G_0`` (gate 0 is applied first).

    Parameters
    ----------
    n
        Dimension of the mode (need not be a power of two).
    pairs
        The coordinate pairs ``(p, q)``, 0-based, ``p ≠ q``, in the order the gates are applied.
    layout
        A name for reports: ``"v"``, ``"reck"``, ``"clements"`` or ``"custom"``.

    Raises
    ------
    NetworkSpecError
        If ``n < 2``, there are no gates, or a pair is out of range or repeats a coordinate.

    Examples
    --------
    >>> GivensCircuit.v(4).pairs  # Chen et al.'s Fig. 3 (iris): (1,2),(2,3),(3,4),(2,3),(1,2)
    ((0, 1), (1, 2), (2, 3), (1, 2), (0, 1))
    """

    n: int
    pairs: tuple[tuple[int, int], ...]
    layout: str = "custom"
    _layers: tuple[tuple[int, ...], ...] = field(init=False, repr=False, compare=False)
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.n, int) or self.n < 2:
            raise NetworkSpecError(
                f"a Givens circuit needs a mode of dimension n ≥ 2, got {self.n!r}"
            )
        pairs = tuple((int(p), int(q)) for p, q in self.pairs)
        if not pairs:
            raise NetworkSpecError("a Givens circuit needs at least one gate (pair of coordinates)")
        for t, (p, q) in enumerate(pairs):
            if not (0 <= p < self.n and 0 <= q < self.n) or p == q:
                raise NetworkSpecError(
                    f"gate {t} acts on coordinates ({p}, {q}); expected two different "
                    f"coordinates in 0..{self.n - 1} for a mode of dimension n = {self.n}"
                )
        object.__setattr__(self, "pairs", pairs)
        object.__setattr__(self, "_layers", asap_layers(pairs, self.n))
        # Integers only, so the value is the same in every process (a pickled circuit keeps it).
        object.__setattr__(self, "_hash", hash((self.n, pairs)))

    def __hash__(self) -> int:
        # Computed once: the planner's caches are keyed by the circuit, and hashing the pairs of
        # a circuit of n = 784 (306,936 gates) took 5–7 ms on each look-up.
        return self._hash

    # ------------------------------------------------------------------ layouts
    @classmethod
    def v(cls, n: int) -> GivensCircuit:
        """Chen et al.'s V-shaped layer (eqs. 4–5): 2n − 3 neighbouring rotations.

        ``U = T_1(θ_0) ⋯ T_{n−1}(θ_{n−2}) · T_{n−2}(θ_{n−1}) ⋯ T_1(θ_{2n−4})``. In application
        order the planes run ``(1,2) → (n−1,n) → (1,2)``; gate ``t`` here carries Chen et al.'s
        ``θ_{2n−4−t}``.
        """
        _check_n(n)
        up = [(i, i + 1) for i in range(n - 1)]
        return cls(n, tuple(up + up[-2::-1]), "v")

    @classmethod
    def reck(cls, n: int) -> GivensCircuit:
        """The Reck triangle: n(n − 1)/2 neighbouring rotations, diagonal by diagonal.

        Diagonal ``k = 1..n−1`` applies planes ``(k−1,k), (k−2,k−1), …, (0,1)``; with free angles
        it reaches every rotation in SO(n).
        """
        _check_n(n)
        return cls(n, tuple((i - 1, i) for k in range(1, n) for i in range(k, 0, -1)), "reck")

    @classmethod
    def clements(cls, n: int) -> GivensCircuit:
        """The Clements rectangle: n columns of disjoint neighbouring rotations, n(n − 1)/2 in all.

        Column ``c`` rotates planes ``(c mod 2 + 2j, c mod 2 + 2j + 1)``; the depth is n instead
        of Reck's 2n − 3, and every column runs as one vectorised operation.
        """
        _check_n(n)
        return cls(
            n,
            tuple((i, i + 1) for c in range(n) for i in range(c % 2, n - 1, 2)),
            "clements",
        )

    @classmethod
    def from_pairs(cls, n: int, pairs: Iterable[tuple[int, int]]) -> GivensCircuit:
        """Any user-given sequence of coordinate pairs, in application order."""
        return cls(n, tuple(pairs), "custom")

    # ------------------------------------------------------------------ structure
    @property
    def num_gates(self) -> int:
        """Number of rotations, which is also the number of angles."""
        return len(self.pairs)

    @property
    def layers(self) -> tuple[tuple[int, ...], ...]:
        """Gate indices grouped into layers of disjoint rotations (as early as possible).

        Gates of one layer touch disjoint coordinates, so they commute and run as one
        vectorised operation; the number of layers is the circuit's depth.
        """
        return self._layers

    @property
    def depth(self) -> int:
        """Number of layers of disjoint rotations."""
        return len(self._layers)

    def network(self) -> Network:
        """The circuit as a chain of dense ``n × n`` gate nodes ``g0 … g{m−1}``.

        Input leg ``m0``, output leg ``m{m}``; node ``g{t}`` has legs ``(m{t+1}, m{t})``. Use it
        to draw, cost or materialize the circuit with the generic tools, and (with
        [`gate_tensors`][tnlayers.GivensLinear.gate_tensors]) as the naive gate-by-gate baseline.
        """
        m = self.num_gates
        return Network(
            [(f"g{t}", {f"m{t + 1}": self.n, f"m{t}": self.n}) for t in range(m)],
            inputs=["m0"],
            outputs=[f"m{m}"],
        )


def _check_n(n: object) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 2:
        raise NetworkSpecError(f"a Givens circuit needs a mode of dimension n ≥ 2, got {n!r}")


def asap_layers(pairs: Sequence[tuple[int, ...]], width: int) -> tuple[tuple[int, ...], ...]:
    """Schedule gates (each a tuple of wires) into layers, each gate as early as its wires allow."""
    ready = [0] * width
    layers: list[list[int]] = []
    for t, wires in enumerate(pairs):
        level = 0
        for w in wires:  # a plain loop: planners call this for ~10⁵ small segments and tiles
            if ready[w] > level:
                level = ready[w]
        if level == len(layers):
            layers.append([])
        layers[level].append(t)
        for w in wires:
            ready[w] = level + 1
    return tuple(tuple(layer) for layer in layers)


# ---------------------------------------------------------------------- qubit circuits
_FIXED = {"h": 1, "x": 1, "cnot": 2, "cz": 2, "swap": 2}
_ROTATIONS = {"rx": 1, "ry": 1, "rz": 1, "rxx": 2, "ryy": 2, "rzz": 2}
_REAL = {"h", "x", "cnot", "cz", "swap", "ry"}


@dataclass(frozen=True)
class QubitGate:
    """One gate of a [`QubitCircuit`][tnlayers.QubitCircuit].

    Attributes
    ----------
    kind
        ``"rx" | "ry" | "rz" | "rxx" | "ryy" | "rzz"`` (parameterized) or
        ``"h" | "x" | "cnot" | "cz" | "swap"`` (fixed).
    qubits
        The qubits it acts on; for ``cnot`` the control first.
    """

    kind: str
    qubits: tuple[int, ...]

    @property
    def parameterized(self) -> bool:
        """Whether the gate carries a trainable angle."""
        return self.kind in _ROTATIONS


@dataclass(frozen=True)
class QubitCircuit:
    """Gates on ``num_qubits`` qubits, in application order; build it with the chainable methods.

    The state of ``N`` qubits is a vector of ``2^N`` amplitudes; qubit 0 is the most significant
    bit (row-major over legs ``q0, q1, …``). Rotations follow the usual convention
    ``R_P(θ) = exp(−i θ P / 2)``.

    Examples
    --------
    >>> circuit = QubitCircuit(3).ry(0).ry(1).ry(2).cnot(0, 1).cnot(1, 2).rzz(0, 2)
    >>> circuit.num_params, circuit.is_real
    (4, False)
    """

    num_qubits: int
    gates: tuple[QubitGate, ...] = ()

    def __post_init__(self) -> None:
        n = self.num_qubits
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise NetworkSpecError(f"a qubit circuit needs num_qubits ≥ 1, got {n!r}")

    def add(self, kind: str, *qubits: int) -> QubitCircuit:
        """A new circuit with one more gate; the methods ``rx``, ``cnot``, … are shorthands."""
        arity = {**_FIXED, **_ROTATIONS}.get(kind)
        if arity is None:
            raise OptionError(
                f"unknown gate {kind!r}; expected one of {sorted({**_FIXED, **_ROTATIONS})}"
            )
        if len(qubits) != arity:
            raise NetworkSpecError(f"gate {kind!r} acts on {arity} qubit(s), got {qubits}")
        for q in qubits:
            if not (isinstance(q, int) and 0 <= q < self.num_qubits):
                raise NetworkSpecError(
                    f"gate {kind!r} on qubit {q!r}: expected 0..{self.num_qubits - 1} "
                    f"for a {self.num_qubits}-qubit circuit"
                )
        if len(set(qubits)) != len(qubits):
            raise NetworkSpecError(f"gate {kind!r} needs different qubits, got {qubits}")
        return QubitCircuit(self.num_qubits, (*self.gates, QubitGate(kind, tuple(qubits))))

    def rx(self, q: int) -> QubitCircuit:
        """Append ``RX(θ)`` on qubit ``q``."""
        return self.add("rx", q)

    def ry(self, q: int) -> QubitCircuit:
        """Append ``RY(θ)`` (real) on qubit ``q``."""
        return self.add("ry", q)

    def rz(self, q: int) -> QubitCircuit:
        """Append ``RZ(θ)`` on qubit ``q``."""
        return self.add("rz", q)

    def h(self, q: int) -> QubitCircuit:
        """Append a Hadamard gate on qubit ``q``."""
        return self.add("h", q)

    def x(self, q: int) -> QubitCircuit:
        """Append a Pauli-X gate on qubit ``q``."""
        return self.add("x", q)

    def cnot(self, control: int, target: int) -> QubitCircuit:
        """Append a CNOT gate."""
        return self.add("cnot", control, target)

    def cz(self, a: int, b: int) -> QubitCircuit:
        """Append a controlled-Z gate."""
        return self.add("cz", a, b)

    def swap(self, a: int, b: int) -> QubitCircuit:
        """Append a SWAP gate."""
        return self.add("swap", a, b)

    def rxx(self, a: int, b: int) -> QubitCircuit:
        """Append ``RXX(θ) = exp(−i θ X⊗X / 2)``."""
        return self.add("rxx", a, b)

    def ryy(self, a: int, b: int) -> QubitCircuit:
        """Append ``RYY(θ) = exp(−i θ Y⊗Y / 2)``."""
        return self.add("ryy", a, b)

    def rzz(self, a: int, b: int) -> QubitCircuit:
        """Append ``RZZ(θ) = exp(−i θ Z⊗Z / 2)``."""
        return self.add("rzz", a, b)

    @property
    def dim(self) -> int:
        """Dimension of the state, ``2^num_qubits``."""
        return 2**self.num_qubits

    @property
    def num_params(self) -> int:
        """Number of parameterized gates (one angle each)."""
        return sum(g.parameterized for g in self.gates)

    @property
    def is_real(self) -> bool:
        """Whether every gate is real (H, X, CNOT, CZ, SWAP, RY), so the circuit is orthogonal."""
        return all(g.kind in _REAL for g in self.gates)

    @property
    def layers(self) -> tuple[tuple[int, ...], ...]:
        """Gate indices grouped into layers of gates on disjoint qubits."""
        return asap_layers([g.qubits for g in self.gates], self.num_qubits)

    def network(self) -> Network:
        """The circuit as a network of gate nodes ``g0, g1, …`` with legs of size 2.

        Qubit ``i`` enters on leg ``q{i}_0``; each gate on it moves it to the next leg
        ``q{i}_{k}``. Gate node legs are ``(outputs…, inputs…)`` in the gate's qubit order. If
        the gates leave some qubits unconnected (a product circuit), the pieces are joined by a
        size-1 index ``link`` so that the network is one piece (a plain outer product).
        """
        if not self.gates:
            raise NetworkSpecError("the circuit has no gates; add at least one")
        step = [0] * self.num_qubits
        tensors: list[tuple[str, list[tuple[str, int]]]] = []
        for t, gate in enumerate(self.gates):
            ins = [f"q{q}_{step[q]}" for q in gate.qubits]
            for q in gate.qubits:
                step[q] += 1
            outs = [f"q{q}_{step[q]}" for q in gate.qubits]
            tensors.append((f"g{t}", [(leg, 2) for leg in (*outs, *ins)]))
        untouched = [q for q in range(self.num_qubits) if step[q] == 0]
        if untouched:
            raise NetworkSpecError(
                f"qubit(s) {untouched} have no gate; a circuit layer must act on every qubit "
                "(add a gate, or use fewer qubits)"
            )
        inputs = [f"q{q}_0" for q in range(self.num_qubits)]
        outputs = [f"q{q}_{step[q]}" for q in range(self.num_qubits)]
        components = _qubit_components(self.gates, self.num_qubits)
        if len(components) > 1:
            # One gate per piece carries the size-1 link; contracting it is an outer product.
            first = {
                min(t for t, g in enumerate(self.gates) if g.qubits[0] in c) for c in components
            }
            tensors = [
                (name, [*legs, ("link", 1)]) if t in first else (name, legs)
                for t, (name, legs) in enumerate(tensors)
            ]
        return Network(tensors, inputs, outputs)


def _qubit_components(gates: Sequence[QubitGate], num_qubits: int) -> list[set[int]]:
    """Sets of qubits that the gates connect."""
    import networkx as nx

    graph = nx.Graph()
    graph.add_nodes_from(range(num_qubits))
    graph.add_edges_from((g.qubits[0], q) for g in gates for q in g.qubits[1:])
    return [set(c) for c in nx.connected_components(graph)]
