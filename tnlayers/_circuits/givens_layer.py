"""Execute: a layer whose weight is a circuit of Givens rotations (Chen et al.'s quantum layer)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal, cast

import torch
from torch import nn

from .._core.cost import CostReport, Mode
from .._core.errors import ArgumentTypeError, OptionError, ShapeError
from .._core.plan import MachineModel
from .._layers.strategy import REGISTRY, assume_constant_result
from .declare import GivensCircuit
from .givens_exec import givens_apply, givens_forward, givens_matrix, plan_token, rotation_blocks
from .givens_plan import STRATEGIES, GivensPlan, givens_plan, givens_report

__all__ = ["GivensLinear"]

# Schedules a layer keeps (per batch size, grad mode, device, dtype); the oldest goes first.
_MAX_SCHEDULES = 64

Layout = Literal["v", "reck", "clements"]
Output = Literal["amplitudes", "probabilities"]


def _circuit_key(circuit: GivensCircuit, segment_gates: int | None) -> Any:
    # The registry's keys are (network, optimize, model, context); a circuit fills the first.
    return (circuit, None, None, ("givens", segment_gates))


def _schedule_for(
    circuit: GivensCircuit,
    segment_gates: int | None,
    option: str,
    rows: int,
    training: bool,
    device_type: str,
    itemsize: int,
) -> tuple[GivensPlan, str]:
    """The plan for ``rows`` rows and the strategy it runs (``option`` decides or forces)."""
    model = MachineModel.for_device(device_type)
    plan = givens_plan(circuit, rows, training=training, segment_gates=segment_gates, model=model)
    if option in ("auto", "model"):
        return plan, plan.choose(rows, training, model, itemsize)
    return plan, option


@assume_constant_result
def _compiled_schedule(
    config: int, rows: int, training: bool, device_type: str, itemsize: int, option: str
) -> tuple[int, str]:
    """The plan token and strategy for the compiled path: a constant at trace time."""
    network, _, _, (_, segment_gates) = REGISTRY.config(config)
    circuit = cast(GivensCircuit, network)  # see _circuit_key
    plan, strategy = _schedule_for(
        circuit, cast("int | None", segment_gates), option, rows, training, device_type, itemsize
    )
    return plan_token(plan), strategy


class GivensLinear(nn.Module):
    r"""``y = x Uᵀ`` with ``U`` a circuit of Givens rotations, one trainable angle per gate.

    The layer never forms an ``n × n`` matrix per gate: the circuit runs as layers of disjoint
    rotations, as fused segments, or (for batches much larger than ``n``) materialized once per
    step; the cost model picks per batch size and grad mode (see
    [`cost`][tnlayers.GivensLinear.cost]).

    Parameters
    ----------
    circuit
        A [`GivensCircuit`][tnlayers.GivensCircuit], or the dimension ``n`` with ``layout``.
    layout
        For an integer ``circuit``: ``"v"`` (Chen et al.'s V shape, 2n − 3 angles; default),
        ``"reck"`` or ``"clements"`` (n(n − 1)/2 angles each).
    output
        ``"amplitudes"`` (default) returns ``U x``; ``"probabilities"`` returns its squares
        (measurement probabilities, summing to ``‖x‖²``).
    strategy
        ``"auto"`` or ``"model"``: the circuit cost model ranks the strategies per batch size
        and grad mode (its constants were fitted to measurements, so unlike
        [`TNLinear`][tnlayers.TNLinear]'s ``"auto"`` nothing is timed at run time; both names
        are accepted so that one option works for every layer); or force one of
        ``"layered" | "blocked" | "materialize"``.
    segment_gates
        Fix the segment length of the ``blocked`` strategy instead of letting the model choose.
    device, dtype
        Where and in what dtype to create the angles.
    generator
        Random generator for the initial angles, ``U(−π, π)`` (Chen et al. 2024, eqs. 4–5).

    Shapes
    ------
    - input: ``(..., n)``
    - output: ``(..., n)``

    Examples
    --------
    >>> import torch, tnlayers
    >>> layer = tnlayers.GivensLinear(784)  # Chen et al.'s V layer: 2·784 − 3 angles
    >>> layer.num_params, layer(torch.randn(8, 784)).shape
    (1565, torch.Size([8, 784]))
    """

    def __init__(
        self,
        circuit: GivensCircuit | int,
        *,
        layout: Layout = "v",
        output: Output = "amplitudes",
        strategy: str = "auto",
        segment_gates: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if isinstance(circuit, int) and not isinstance(circuit, bool):
            builders = {
                "v": GivensCircuit.v,
                "reck": GivensCircuit.reck,
                "clements": GivensCircuit.clements,
            }
            if layout not in builders:
                raise OptionError(f"unknown layout {layout!r}; choose 'v', 'reck' or 'clements'")
            circuit = builders[layout](circuit)
        if not isinstance(circuit, GivensCircuit):
            raise ArgumentTypeError(
                f"GivensLinear needs a GivensCircuit or a dimension n, got {type(circuit).__name__}"
            )
        if strategy not in ("auto", "model", *STRATEGIES):
            raise OptionError(
                f"unknown strategy {strategy!r}; choose 'auto', 'model', 'layered', 'blocked' "
                "or 'materialize'"
            )
        if output not in ("amplitudes", "probabilities"):
            raise OptionError(f"unknown output {output!r}; choose 'amplitudes' or 'probabilities'")
        self.circuit = circuit
        self.output: Output = output
        self.strategy = strategy
        self.segment_gates = segment_gates
        self.angles = nn.Parameter(torch.empty(circuit.num_gates, device=device, dtype=dtype))
        # (rows, training, device type, itemsize) → (plan, strategy); planning is Python work
        # that must stay off the hot path.
        self._schedules: dict[tuple[object, ...], tuple[GivensPlan, str]] = {}
        # The compiled path looks its schedule up by integers and strings (see execution() in
        # _strategy.py for why).
        self._config = REGISTRY.acquire(self, _circuit_key(circuit, segment_gates))
        # Applied to the gate blocks before use: an extension point for perturbing the gate
        # entries themselves (Chen et al.'s attack form ②, see tnlayers.circuits.ParameterAttack).
        self.block_transform: Callable[[torch.Tensor], torch.Tensor] | None = None
        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Draw the angles from ``U(−π, π)``."""
        with torch.no_grad():
            self.angles.uniform_(-math.pi, math.pi, generator=generator)

    @property
    def n(self) -> int:
        """Dimension of the mode: the input and output size."""
        return self.circuit.n

    in_features = out_features = n

    @property
    def num_params(self) -> int:
        """Number of angles (gates)."""
        return self.circuit.num_gates

    def extra_repr(self) -> str:
        c = self.circuit
        return f"n={c.n}, layout={c.layout!r}, gates={c.num_gates}, output={self.output!r}"

    # ------------------------------------------------------------------ plan and cost
    def __setstate__(self, state: dict[str, object]) -> None:
        # Registry ids are per process: re-derive ours after unpickling.
        super().__setstate__(state)
        self._config = REGISTRY.acquire(self, _circuit_key(self.circuit, self.segment_gates))

    def _schedule(
        self, batch: int, training: bool, angles: torch.Tensor | None = None
    ) -> tuple[GivensPlan, str]:
        angles = self.angles if angles is None else angles
        key = (batch, training, angles.device.type, angles.element_size())
        found = self._schedules.get(key)
        if found is None:
            found = _schedule_for(self.circuit, self.segment_gates, self.strategy, *key)
            if len(self._schedules) >= _MAX_SCHEDULES:  # bounded: batch sizes can vary freely
                del self._schedules[next(iter(self._schedules))]
            self._schedules[key] = found
        return found

    def _training(self, training: bool | None) -> bool:
        # As the forward pass decides: gradients enabled and the angles requiring them.
        if training is None:
            return torch.is_grad_enabled() and self.angles.requires_grad
        return training

    def plan(self, batch: int, *, training: bool | None = None) -> GivensPlan:
        """The execution schedule tuned for ``batch`` rows (grad mode: the current one)."""
        return self._schedule(batch, self._training(training))[0]

    def chosen_strategy(self, batch: int, *, training: bool | None = None) -> str:
        """The strategy the forward pass runs for ``batch`` rows (grad mode: the current one)."""
        return self._schedule(batch, self._training(training))[1]

    def cost(self, batch: int = 64, *, mode: Mode = "training") -> CostReport:
        """The [`CostReport`][tnlayers.CostReport] of this layer at ``batch`` rows.

        Its strategies are ``layered``, ``blocked`` and ``materialize``; the chosen one is what
        the forward pass runs (the same schedule look-up).
        """
        if mode not in ("training", "inference"):
            raise OptionError(f"mode must be 'training' or 'inference', got {mode!r}")
        training = mode == "training"
        plan, chosen = self._schedule(batch, training)
        model = MachineModel.for_device(self.angles.device.type)
        itemsize = self.angles.element_size()
        if self.strategy in STRATEGIES:
            return givens_report(
                plan,
                batch,
                mode,
                chosen,
                f"{chosen}: forced by the layer's strategy={chosen!r}",
                "forced",
                model,
                itemsize,
            )
        times: dict[str, float] = {
            s: plan.time(s, batch, training, model, itemsize) for s in STRATEGIES
        }
        others = ", ".join(f"{times[s] * 1e3:.3g} ms ({s})" for s in STRATEGIES if s != chosen)
        what = "training step" if training else "forward pass"
        reason = (
            f"{chosen}: predicted {times[chosen] * 1e3:.3g} ms vs {others} per {what} "
            "(decided by the circuit cost model, fitted on this project's CPU)"
        )
        return givens_report(plan, batch, mode, chosen, reason, "model", model, itemsize)

    # ------------------------------------------------------------------ weights
    def gate_blocks(self, angles: torch.Tensor | None = None) -> torch.Tensor:
        """The gates' 2 × 2 blocks ``[[cos θ, −sin θ], [sin θ, cos θ]]``, shape ``[m, 2, 2]``.

        ``angles`` replaces ``self.angles``; ``block_transform``, if set, is applied last.
        """
        blocks = rotation_blocks(self.angles if angles is None else angles)
        return blocks if self.block_transform is None else self.block_transform(blocks)

    def to_dense(self) -> torch.Tensor:
        """The circuit's matrix ``U``, shape ``(n, n)``; differentiable."""
        return givens_matrix(self.gate_blocks(), self._schedule(self.n, False)[0])

    def gate_tensors(self) -> dict[str, torch.Tensor]:
        """Every gate as a dense ``n × n`` tensor, keyed as in ``circuit.network()``.

        For the generic tools (``TNLinear.from_tensors(circuit.network(), layer.gate_tensors())``
        is the naive gate-by-gate layer); the memory is ``m · n²``.
        """
        blocks = self.gate_blocks()
        eye = torch.eye(self.n, dtype=blocks.dtype, device=blocks.device)
        tensors = {}
        for t, (p, q) in enumerate(self.circuit.pairs):
            gate = eye.clone()
            gate[[p, p, q, q], [p, q, p, q]] = blocks[t].reshape(4)
            tensors[f"g{t}"] = gate
        return tensors

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply ``U`` to ``x`` of shape ``(..., n)``."""
        if x.dim() == 0 or x.shape[-1] != self.n:
            got = "a scalar" if x.dim() == 0 else f"shape {tuple(x.shape)}"
            raise ShapeError(
                f"input has {got}, but the Givens layer expects (..., {self.n}): its last "
                f"dimension is the circuit's mode of size n = {self.n} (pad or use a "
                "classical input layer for other sizes)"
            )
        angles = self.angles  # read once: a parametrisation (e.g. an attack) may redraw it
        if x.dtype != angles.dtype:
            raise ShapeError(
                f"input dtype {x.dtype} does not match the layer's angles ({angles.dtype}); "
                f"convert the input or call layer.to({angles.dtype})"
            )
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.n)
        training = torch.is_grad_enabled() and (angles.requires_grad or x.requires_grad)
        # Rotations run in the angles' precision under autocast too: each gate's rounding error
        # would compound over a depth-n circuit.
        with torch.autocast(x.device.type, enabled=False):
            y = self._rotate(x2, angles, training)
        y = y.reshape(*lead, self.n)
        return y.square() if self.output == "probabilities" else y

    def _rotate(self, x2: torch.Tensor, angles: torch.Tensor, training: bool) -> torch.Tensor:
        blocks = self.gate_blocks(angles)
        if torch.compiler.is_compiling():
            token, strategy = _compiled_schedule(
                self._config,
                x2.shape[0],
                training,
                x2.device.type,
                angles.element_size(),
                self.strategy,
            )
            y = givens_apply(x2.contiguous(), blocks, token, strategy)
        else:
            plan, strategy = self._schedule(x2.shape[0], training, angles)
            y = givens_forward(x2, blocks, plan, strategy)
        return y
