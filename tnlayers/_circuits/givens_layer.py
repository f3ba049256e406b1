"""Execute: a layer whose weight is a circuit of Givens rotations (Chen et al.'s quantum layer)."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any, Literal, NamedTuple, cast

import torch
from torch import nn

from .._core.cost import CostReport, Mode
from .._core.errors import ArgumentTypeError, OptionError, ShapeError
from .._core.plan import MachineModel
from .._layers.strategy import (
    AUTO_TIMING_MARGIN,
    REGISTRY,
    Timing,
    assume_constant_result,
    dtype_name,
    itemsize_of,
    time_strategies,
)
from .._layers.weight_cache import WeightCache
from .declare import GivensCircuit
from .givens_exec import (
    circuit_matrix,
    givens_apply,
    givens_forward,
    plan_token,
    rotation_blocks,
)
from .givens_plan import STRATEGIES, GivensPlan, givens_plan, givens_report

__all__ = ["GivensLinear"]

# Schedules a layer keeps (per batch size, grad mode, device, dtype); the oldest goes first.
_MAX_SCHEDULES = 64

Layout = Literal["v", "reck", "clements"]
Output = Literal["amplitudes", "probabilities"]


def _circuit_key(circuit: GivensCircuit, segment_gates: int | None) -> Any:
    # The registry's keys are (network, optimize, model, context); a circuit fills the first.
    return (circuit, None, None, ("givens", segment_gates))


class _Decision(NamedTuple):
    """The plan for a batch size and grad mode, the strategy that runs, and why."""

    plan: GivensPlan
    strategy: str
    basis: Literal["forced", "model", "timed", "untimed"]
    predicted_s: dict[str, float]
    timing: Timing | None


def _decide(
    config: int,
    rows: int,
    training: bool,
    device_type: str,
    dtype_name: str,
    option: str,
    cached: bool = True,
) -> _Decision:
    """What runs for these arguments: a look-up that never times (as ``decide`` for networks).

    ``option`` means what it means for [`TNLinear`][tnlayers.TNLinear]: a strategy name forces
    it; ``"model"`` takes the cost model's choice; ``"auto"`` takes it too unless the two best
    predictions are within ``AUTO_TIMING_MARGIN``, where the first call at this size times the
    strategies and the fastest runs from then on; ``"autotune"`` always times.

    ``cached``: an inference call of *materialize* reuses the layer's cached ``U`` (eager
    layers). Compiled graphs keep no cache, so they decide with ``cached=False`` and ignore
    timings, which eager calls measured with the cache.
    """
    network, _, _, (_, segment_gates) = REGISTRY.config(config)
    circuit = cast(GivensCircuit, network)  # see _circuit_key
    model = MachineModel.for_device(device_type)
    plan = givens_plan(
        circuit, rows, training=training, segment_gates=cast("int | None", segment_gates),
        model=model,
    )  # fmt: skip
    itemsize = itemsize_of(dtype_name)
    predicted: dict[str, float] = {
        s: plan.time(s, rows, training, model, itemsize, cached=cached) for s in plan.strategies
    }
    if option in STRATEGIES:
        return _Decision(plan, option, "forced", predicted, None)
    best = min(predicted, key=predicted.__getitem__)
    if option == "model" or (not cached and not training):
        return _Decision(plan, best, "model", predicted, None)
    timing = REGISTRY.timing((config, rows, dtype_name, device_type, training))
    if (
        isinstance(timing, Timing)
        and option == "autotune"
        and set(timing.seconds) != set(plan.strategies)
    ):
        timing = False  # an "auto" layer timed only the close candidates: time them all
    if timing is False:  # nothing recorded: the first call at this size times if it must
        untimed = option == "autotune" or _close_call(predicted)
        return _Decision(plan, best, "untimed" if untimed else "model", predicted, None)
    if timing is None:
        return _Decision(plan, best, "model", predicted, None)
    return _Decision(plan, timing.best, "timed", predicted, timing)


def _close_call(predicted: dict[str, float]) -> bool:
    first, second = sorted(predicted.values())[:2]
    return second < AUTO_TIMING_MARGIN * first


@assume_constant_result
def _compiled_schedule(
    config: int, rows: int, training: bool, device_type: str, dtype_name: str, option: str
) -> tuple[int, str]:
    """The plan token and strategy for the compiled path: a constant at trace time."""
    found = _decide(config, rows, training, device_type, dtype_name, option, cached=False)
    return plan_token(found.plan), found.strategy


class GivensLinear(nn.Module):
    r"""``y = x Uᵀ`` with ``U`` a circuit of Givens rotations, one trainable angle per gate.

    The layer never forms an ``n × n`` matrix per gate: the circuit runs as layers of disjoint
    rotations, as fused segments, as light-cone tiles (circuits of neighbouring planes), or (for
    batches much larger than ``n``) materialized once per step; the cost model picks per batch
    size and grad mode (see [`cost`][tnlayers.GivensLinear.cost]). In inference the
    materialized ``U`` is kept while the angles stay unchanged, so a call is one GEMM.

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
        As for [`TNLinear`][tnlayers.TNLinear], over this layer's strategies: ``"model"``
        (the circuit cost model ranks them per batch size and grad mode), ``"auto"`` (default:
        the same, but where the two best predictions are within 1.5× the first call at a size
        times every strategy predicted within 1.5× of the best), ``"autotune"`` (time all), or
        force one of
        ``"layered" | "blocked" | "materialize" | "tiled"`` (``"tiled"``: circuits of
        neighbouring planes, such as the three layouts, only).
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
        if strategy not in ("auto", "model", "autotune", *STRATEGIES):
            raise OptionError(
                f"unknown strategy {strategy!r}; choose 'auto', 'model', 'autotune', 'layered', "
                "'blocked', 'materialize' or 'tiled'"
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
        self._schedules: dict[tuple[object, ...], _Decision] = {}
        # The compiled path looks its schedule up by integers and strings (see execution() in
        # _strategy.py for why).
        self._config = REGISTRY.acquire(self, _circuit_key(circuit, segment_gates))
        # Applied to the gate blocks before use: an extension point for perturbing the gate
        # entries themselves (Chen et al.'s attack form ②, see tnlayers.circuits.ParameterAttack).
        self.block_transform: Callable[[torch.Tensor], torch.Tensor] | None = None
        # U for inference calls that materialize it, checked against the angles on every call
        # (see _layers/weight_cache.py); never with a block_transform, which it cannot check.
        self._weight_cache = WeightCache()
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

    def _decision(
        self,
        batch: int,
        training: bool,
        angles: torch.Tensor | None = None,
        *,
        measure: bool = False,
    ) -> _Decision:
        """The decision for ``batch`` rows; ``measure`` times first where the option needs it
        (the forward pass does; queries do not unless asked)."""
        angles = self.angles if angles is None else angles
        key = (batch, training, angles.device.type, dtype_name(angles.dtype))
        # Both the block transform and the strategy option may be reassigned after construction.
        cached = self._keeps_matrix
        cache_key = (*key, self.strategy, cached)
        found = self._schedules.get(cache_key)
        if found is None:
            found = _decide(self._config, *key, self.strategy, cached)
            if measure and found.basis == "untimed":
                # The first call at this size times the strategies ("auto": those predicted
                # within the margin of the best, not the hopeless ones — at n = 256 one call of
                # the segments takes 0.2 s); the registry keeps the result for every later
                # look-up (and every layer of the same circuit).
                timed = found.plan.strategies
                if self.strategy == "auto":
                    fastest = min(found.predicted_s.values())
                    timed = tuple(
                        s for s in timed if found.predicted_s[s] <= AUTO_TIMING_MARGIN * fastest
                    )
                timing = self._time(found.plan, batch, training, angles, timed)
                REGISTRY.record((self._config, batch, key[3], key[2], training), timing)
                found = _decide(self._config, *key, self.strategy, cached)
            if found.basis != "untimed":  # final: cache it (bounded: batch sizes vary freely)
                if len(self._schedules) >= _MAX_SCHEDULES:
                    del self._schedules[next(iter(self._schedules))]
                self._schedules[cache_key] = found
        return found

    def _time(
        self,
        plan: GivensPlan,
        rows: int,
        training: bool,
        angles: torch.Tensor,
        strategies: tuple[str, ...],
    ) -> Timing:
        # Detached copies: timing must not touch the angles' .grad.
        x = torch.randn(rows, self.n, dtype=angles.dtype, device=angles.device)
        copy = angles.detach().clone().requires_grad_(training)

        def run(strategy: str) -> None:
            y = givens_forward(x, self.gate_blocks(copy), plan, strategy)
            if training:
                torch.autograd.grad(y.sum(), copy)

        runs: dict[str, Callable[[], object]] = {s: partial(run, s) for s in strategies}
        if "materialize" in runs and not training and self._keeps_matrix:
            # Inference reuses the cached U, so only the GEMM recurs per call.
            with torch.no_grad():
                matrix = self._build_matrix(self.gate_blocks(copy), plan)
            runs["materialize"] = partial(torch.matmul, x, matrix.T)
        with torch.set_grad_enabled(training):
            return time_strategies(runs, angles.device)

    def _training(self, training: bool | None) -> bool:
        # As the forward pass decides: gradients enabled and the angles requiring them.
        if training is None:
            return torch.is_grad_enabled() and self.angles.requires_grad
        return training

    def plan(self, batch: int, *, training: bool | None = None) -> GivensPlan:
        """The execution schedule tuned for ``batch`` rows (grad mode: the current one)."""
        return self._decision(batch, self._training(training)).plan

    def chosen_strategy(
        self, batch: int, *, training: bool | None = None, measure: bool = False
    ) -> str:
        """The strategy the forward pass runs for ``batch`` rows (grad mode: the current one).

        A look-up that never times unless ``measure=True`` (see
        [`cost`][tnlayers.GivensLinear.cost]).
        """
        return self._decision(batch, self._training(training), measure=measure).strategy

    def cost(
        self, batch: int = 64, *, mode: Mode = "training", measure: bool = False
    ) -> CostReport:
        """The [`CostReport`][tnlayers.CostReport] of this layer at ``batch`` rows.

        Its strategies are ``layered``, ``blocked``, ``materialize`` and (for circuits of
        neighbouring planes) ``tiled``; the chosen one is what the forward pass runs (the same
        look-up). In inference *materialize* is one GEMM by the cached ``U``. With
        ``strategy="auto"`` where the cost model's two best predictions are close (or
        ``"autotune"``), the first forward pass at this size times the strategies;
        ``measure=True`` times them now.
        """
        if mode not in ("training", "inference"):
            raise OptionError(f"mode must be 'training' or 'inference', got {mode!r}")
        training = mode == "training"
        found = self._decision(batch, training, measure=measure)
        chosen, what = found.strategy, "training step" if training else "forward pass"
        times = found.predicted_s
        if found.basis == "forced":
            reason = f"{chosen}: forced by the layer's strategy={chosen!r}"
        elif found.timing is not None:
            seconds = found.timing.seconds
            others = ", ".join(f"{seconds[s] * 1e3:.3g} ms ({s})" for s in seconds if s != chosen)
            reason = (
                f"{chosen}: timed on this machine at {seconds[chosen] * 1e3:.3g} ms vs {others} "
                f"per {what} (the cost model predicted {min(times, key=times.__getitem__)})"
            )
        else:
            others = ", ".join(f"{times[s] * 1e3:.3g} ms ({s})" for s in times if s != chosen)
            reason = (
                f"{chosen}: predicted {times[chosen] * 1e3:.3g} ms vs {others} per {what} "
                "(decided by the circuit cost model, fitted on this project's CPU)"
            )
            if found.basis == "untimed":
                reason += (
                    "; the layer's first call at this size times the strategies and keeps the "
                    "fastest (ask with measure=True to time now)"
                )
        if chosen == "materialize" and not training and self._keeps_matrix:
            reason += "; U is built once and reused while the angles are unchanged"
        return givens_report(
            found.plan,
            batch,
            mode,
            chosen,
            reason,
            found.basis,
            MachineModel.for_device(self.angles.device.type),
            self.angles.element_size(),
            None if found.timing is None else dict(found.timing.seconds),
            cached=self._keeps_matrix,
        )

    # ------------------------------------------------------------------ weights
    def gate_blocks(self, angles: torch.Tensor | None = None) -> torch.Tensor:
        """The gates' 2 × 2 blocks ``[[cos θ, −sin θ], [sin θ, cos θ]]``, shape ``[m, 2, 2]``.

        ``angles`` replaces ``self.angles``; ``block_transform``, if set, is applied last.
        """
        blocks = rotation_blocks(self.angles if angles is None else angles)
        return blocks if self.block_transform is None else self.block_transform(blocks)

    def to_dense(self) -> torch.Tensor:
        """The circuit's matrix ``U``, shape ``(n, n)``; differentiable."""
        return self._build_matrix(self.gate_blocks(), self._decision(self.n, False).plan)

    def _build_matrix(self, blocks: torch.Tensor, plan: GivensPlan) -> torch.Tensor:
        """``U`` from the gate blocks, built as *materialize* builds it: the circuit applied
        to the identity's ``n`` columns by the strategy the cost model predicts fastest for
        them (``plan.build``; the tiles, for Clements and Reck circuits, take a tenth of the
        time of the segments at n = 784)."""
        return circuit_matrix(blocks, plan, plan.build)

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
        flat = x.dim() == 2  # the common case: no reshapes
        x2 = x if flat else x.reshape(-1, self.n)
        training = torch.is_grad_enabled() and (angles.requires_grad or x.requires_grad)
        if torch.is_autocast_enabled(x.device.type):
            # Rotations run in the angles' precision under autocast too: each gate's rounding
            # error would compound over a depth-n circuit. (Entered only when autocast is on:
            # the context manager alone costs several µs per call.)
            with torch.autocast(x.device.type, enabled=False):
                y = self._rotate(x2, angles, training)
        else:
            y = self._rotate(x2, angles, training)
        if not flat:
            y = y.reshape(*x.shape[:-1], self.n)
        return y.square() if self.output == "probabilities" else y

    def _rotate(self, x2: torch.Tensor, angles: torch.Tensor, training: bool) -> torch.Tensor:
        if torch.compiler.is_compiling():
            blocks = self.gate_blocks(angles)
            token, strategy = _compiled_schedule(
                self._config,
                x2.shape[0],
                training,
                x2.device.type,
                dtype_name(angles.dtype),
                self.strategy,
            )
            y = givens_apply(x2.contiguous(), blocks, token, strategy)
        else:
            found = self._decision(x2.shape[0], training, angles, measure=True)
            frozen = not (torch.is_grad_enabled() and angles.requires_grad)
            if found.strategy == "materialize" and frozen and self._keeps_matrix:
                # Gradients still reach the input through the GEMM.
                return x2 @ self._cached_matrix(angles, found.plan).T
            y = givens_forward(x2, self.gate_blocks(angles), found.plan, found.strategy)
        return y

    @property
    def _keeps_matrix(self) -> bool:
        """Whether inference calls of *materialize* reuse ``U`` (the checked cache): not with a
        ``block_transform``, which may change the blocks on every call without the angles
        changing, so the cache could not see it."""
        return self.block_transform is None

    def _cached_matrix(self, angles: torch.Tensor, plan: GivensPlan) -> torch.Tensor:
        """``U`` for an inference call: cached while the angles stay bit-identical."""
        return self._weight_cache.get(
            [angles], False, lambda: self._build_matrix(self.gate_blocks(angles), plan)
        )
