"""Plan: contraction paths, their cost, and the choice between the two strategies.

For a network and a batch size two strategies always exist:

* **sequential**: contract the input ``x`` (batch + input legs) through the tensors, never forming
  the dense weight;
* **materialize**: contract the tensors into the dense weight ``W`` (out × in), then one GEMM
  (for a network with pass-through legs: into its diagonal blocks, then one batched GEMM over
  them — the block-diagonal zeros are never formed).

opt_einsum finds each path. The plan counts FLOPs exactly as opt_einsum does (so they can be
checked against ``PathInfo.opt_cost``), and ranks the strategies by a predicted *time* from a small
machine model: FLOPs alone are the wrong objective on CPUs, where small-core contractions run far
below GEMM speed (see ``benchmarks/README.md``). This module knows nothing about torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Literal, TypeAlias

import opt_einsum

from .errors import ArgumentTypeError, NetworkSpecError
from .network import Network
from .paths import best_path, grouped_paths, walk_path

__all__ = [
    "BATCH",
    "Contraction",
    "MachineModel",
    "Plan",
    "Step",
    "StrategyPlan",
    "plan",
]

Strategy = Literal["sequential", "materialize"]
STRATEGIES: tuple[Strategy, ...] = ("sequential", "materialize")
OptimizeKind: TypeAlias = str | opt_einsum.paths.PathOptimizer

# Reserved leg names used by plans; leg names of networks are identifiers, so these cannot clash.
BATCH = "·batch"
IN_FEATURES = "·in"
OUT_FEATURES = "·out"


@dataclass(frozen=True)
class MachineModel:
    """A small analytic model of how long a contraction step takes.

    ``time = flops / (peak_flops · eff) + bytes / bandwidth + op_overhead`` where
    ``eff = Π_d d / (d + half_dim)`` over the step's GEMM dimensions ``m``, ``n`` and ``k``, and
    ``bytes`` counts reading both operands twice (einsum's permute copies) and writing the result.

    Attributes
    ----------
    peak_flops
        GEMM throughput on large matrices, FLOP/s.
    bandwidth
        Memory bandwidth for the bytes each step moves, bytes/s.
    op_overhead
        Fixed cost of one torch call (dispatch, allocation), seconds.
    half_dim
        GEMM dimension at which efficiency halves.
    """

    # Fitted with benchmarks/calibrate_model.py on the project's 2-core CPU (see its README).
    peak_flops: float = 1.6e11
    bandwidth: float = 1.0e11
    op_overhead: float = 5.0e-5
    half_dim: float = 32.0

    @classmethod
    def for_device(cls, device_type: str) -> MachineModel:
        """Default constants for a device type (``"cpu"``, ``"cuda"``, ...)."""
        if device_type == "cpu":
            return cls()
        return cls(peak_flops=3.0e13, bandwidth=1.5e12, op_overhead=8.0e-6, half_dim=64.0)

    def step_time(self, step: Step, itemsize: int) -> float:
        """Predicted seconds for one step."""
        eff = 1.0
        for dim in (step.m, step.n, step.k):
            eff *= dim / (dim + self.half_dim)
        moved = itemsize * (2 * sum(step.operand_sizes) + step.size)
        return step.flops / (self.peak_flops * eff) + moved / self.bandwidth + self.op_overhead


@dataclass(frozen=True)
class Step:
    """One contraction of a path: several operands become one intermediate.

    Attributes
    ----------
    operands
        Positions in the current operand list, ascending (opt_einsum's linear path format, where
        contracted operands are removed and the result is appended).
    inputs
        Legs of each contracted operand.
    output
        Legs of the result, in order.
    flops
        FLOPs of this step, counted as opt_einsum counts them.
    size
        Elements of the result.
    operand_sizes
        Elements of each operand.
    m, n, k, batch
        GEMM view of a pairwise step: rows, columns, summed size and batched size.
    requires_grad
        Whether each operand needs a gradient in a training step.
    """

    operands: tuple[int, ...]
    inputs: tuple[tuple[str, ...], ...]
    output: tuple[str, ...]
    flops: int
    size: int
    operand_sizes: tuple[int, ...]
    m: int
    n: int
    k: int
    batch: int
    requires_grad: tuple[bool, ...]

    @property
    def training_flops(self) -> int:
        """Forward FLOPs plus one contraction of the same size per operand needing a gradient."""
        return self.flops * (1 + sum(self.requires_grad))

    def describe(self) -> str:
        """``"core1[j1,i1,b1] · x[batch,i1] → [batch,j1,b1]"``-style text."""
        ins = " · ".join(f"[{','.join(_pretty(leg) for leg in legs)}]" for legs in self.inputs)
        return f"{ins} → [{','.join(_pretty(leg) for leg in self.output)}]"


def _pretty(leg: str) -> str:
    return {BATCH: "batch", IN_FEATURES: "in", OUT_FEATURES: "out"}.get(leg, leg)


@dataclass(frozen=True)
class Contraction:
    """A planned contraction of named operands into named output legs.

    Attributes
    ----------
    names
        A display name for each operand.
    operands
        Legs of each operand.
    output
        Legs of the result.
    sizes
        Size of every leg.
    steps
        The path, step by step.
    """

    names: tuple[str, ...]
    operands: tuple[tuple[str, ...], ...]
    output: tuple[str, ...]
    sizes: Mapping[str, int]
    steps: tuple[Step, ...]

    @property
    def path(self) -> list[tuple[int, ...]]:
        """The path in opt_einsum's linear format."""
        return [step.operands for step in self.steps]

    @property
    def flops(self) -> int:
        """Total FLOPs, equal to opt_einsum's ``PathInfo.opt_cost`` for this path."""
        return sum(step.flops for step in self.steps)

    @property
    def training_flops(self) -> int:
        """FLOPs of forward plus backward."""
        return sum(step.training_flops for step in self.steps)

    @property
    def largest_intermediate(self) -> int:
        """Elements of the largest tensor the path creates (the result included)."""
        return max((step.size for step in self.steps), default=0)

    @property
    def saved_elements(self) -> int:
        """Elements of intermediates (not the result) that autograd keeps for the backward pass."""
        return sum(step.size for step in self.steps[:-1])

    def time(self, model: MachineModel, itemsize: int, training: bool) -> float:
        """Predicted seconds of the steps, forward only or forward + backward (each operand
        that needs a gradient costs one more step of the same size)."""
        total = 0.0
        for step in self.steps:
            one = model.step_time(step, itemsize)
            total += one * (1 + sum(step.requires_grad)) if training else one
        return total

    def equation(self) -> str:
        """The contraction as an opt_einsum equation string, one symbol per leg."""
        legs = list(dict.fromkeys(leg for ops in self.operands for leg in ops))
        sym = {leg: opt_einsum.get_symbol(i) for i, leg in enumerate(legs)}
        ins = ",".join("".join(sym[leg] for leg in ops) for ops in self.operands)
        return ins + "->" + "".join(sym[leg] for leg in self.output)

    def shapes(self) -> list[tuple[int, ...]]:
        """Shape of every operand."""
        return [tuple(self.sizes[leg] for leg in ops) for ops in self.operands]


def _contract(
    names: Sequence[str],
    operands: Sequence[tuple[str, ...]],
    output: tuple[str, ...],
    sizes: Mapping[str, int],
    requires_grad: Sequence[bool],
    optimize: OptimizeKind,
    path: Sequence[tuple[int, ...]] | None = None,
) -> Contraction:
    """The contraction along ``path`` (linear format), or along the path ``optimize`` finds."""
    if path is None and isinstance(optimize, str) and optimize == "best":
        path = best_path(operands, output, sizes, 0 if names[0] == "x" else None)
    elif path is None:
        probe = Contraction(tuple(names), tuple(operands), output, dict(sizes), ())
        path, _ = opt_einsum.contract_path(
            probe.equation(), *probe.shapes(), shapes=True, optimize=optimize
        )
    grads = [bool(grad) for grad in requires_grad]
    steps: list[Step] = []

    def size_of(legs: set[str]) -> int:
        return math.prod(sizes[leg] for leg in legs)

    for walked in walk_path(operands, output, sizes, [tuple(step) for step in path]):
        picked, kept = walked.picked, walked.kept
        picked_grads = tuple(grads[p] for p in walked.positions)
        for p in reversed(walked.positions):
            grads.pop(p)
        grads.append(any(picked_grads))
        removed = {leg for leg in walked.union if leg not in kept}
        a_legs = set(picked[0])
        b_legs = set(picked[1]) if len(picked) > 1 else set()
        kept_set = set(kept)
        steps.append(
            Step(
                operands=walked.positions,
                inputs=picked,
                output=kept,
                flops=walked.flops,
                size=size_of(kept_set),
                operand_sizes=tuple(size_of(set(legs)) for legs in picked),
                m=size_of((a_legs - b_legs) & kept_set),
                n=size_of((b_legs - a_legs) & kept_set),
                k=size_of(removed),
                batch=size_of(a_legs & b_legs & kept_set),
                requires_grad=picked_grads,
            )
        )
    return Contraction(tuple(names), tuple(operands), output, dict(sizes), tuple(steps))


@dataclass(frozen=True)
class StrategyPlan:
    """How one strategy runs: one or two contractions in sequence.

    Attributes
    ----------
    name
        ``"sequential"`` or ``"materialize"``.
    contractions
        Sequential: one contraction of ``x`` with every tensor. Materialize: the contraction of
        the tensors into ``W`` (output legs then input legs), then the GEMM ``x · Wᵀ``.
    dense_size
        Elements of the dense weight (for ``forms_dense_weight``).
    fewest_flops
        Sequential only: the path with the fewest FLOPs, where the plan keeps another one (a
        path joining groups of tensors first, predicted faster); ``None`` otherwise.
    """

    name: Strategy
    contractions: tuple[Contraction, ...]
    dense_size: int = 0
    fewest_flops: Contraction | None = None

    @property
    def weight_sized_elements(self) -> int:
        """Elements of the largest intermediate that carries no batch leg."""
        return max(
            (step.size for step in self.steps if BATCH not in step.output),
            default=0,
        )

    @property
    def forms_dense_weight(self) -> bool:
        """Whether the path builds, without the batch, a tensor at least as large as ``W``.

        Always true of *materialize*; a *sequential* path for which it is true (contracting
        the tensors among themselves before the input meets them, as a tensor ring at a large
        batch does) also materializes the weight mid-way, whatever its name says.
        """
        return self.dense_size > 0 and self.weight_sized_elements >= self.dense_size

    @property
    def steps(self) -> tuple[Step, ...]:
        """Every step of every contraction, in execution order."""
        return tuple(step for c in self.contractions for step in c.steps)

    @property
    def flops(self) -> int:
        """FLOPs of one forward pass."""
        return sum(c.flops for c in self.contractions)

    @property
    def training_flops(self) -> int:
        """FLOPs of one forward and backward pass."""
        return sum(c.training_flops for c in self.contractions)

    @property
    def largest_intermediate(self) -> int:
        """Elements of the largest tensor created (the output included)."""
        return max(c.largest_intermediate for c in self.contractions)

    @property
    def saved_elements(self) -> int:
        """Elements autograd keeps between forward and backward, beyond inputs and parameters."""
        total = sum(c.saved_elements for c in self.contractions)
        if self.name == "materialize":
            total += self.contractions[0].steps[-1].size  # W itself is saved for the GEMM backward
        return total

    def time(self, model: MachineModel, itemsize: int, training: bool) -> float:
        """Predicted seconds of a forward pass, or of forward + backward when ``training``.

        Without gradients a layer caches the materialized weight until a parameter changes, so
        the inference time of *materialize* is that of the GEMM alone. *Sequential* pays one
        more op for the bias (the GEMM path fuses it into ``addmm``).
        """
        contractions = self.contractions
        if self.name == "materialize" and not training:
            contractions = contractions[-1:]
        total = sum(c.time(model, itemsize, training) for c in contractions)
        if self.name == "sequential":
            out = self.contractions[-1].steps[-1].size
            total += model.op_overhead + 3 * itemsize * out / model.bandwidth
        return total


@dataclass(frozen=True)
class Plan:
    """Both strategies for one network at one batch size, and the choice between them.

    Attributes
    ----------
    network
        The planned network.
    batch
        Number of rows of the flattened input.
    strategies
        ``{"sequential": ..., "materialize": ...}``.
    model
        The machine model used to rank them.
    itemsize
        Bytes per element assumed for time and memory.
    input_requires_grad
        Whether the input's gradient is counted in training steps.
    """

    network: Network
    batch: int
    strategies: Mapping[Strategy, StrategyPlan]
    model: MachineModel = field(default_factory=MachineModel)
    itemsize: int = 4
    input_requires_grad: bool = True

    def time(self, strategy: Strategy, training: bool) -> float:
        """Predicted seconds of ``strategy`` (forward, or forward + backward when ``training``)."""
        return self.strategies[strategy].time(self.model, self.itemsize, training)

    def with_fewest_flops_path(self) -> Plan:
        """This plan with *sequential* on its path with the fewest FLOPs.

        Where the plan keeps a path joining groups of tensors first, the cost model bets that
        it is faster; a layer's ``"auto"`` checks the bet by timing both paths, and reports and
        runs this variant where the fewest FLOPs won. Otherwise the plan itself.
        """
        sequential = self.strategies["sequential"]
        if sequential.fewest_flops is None:
            return self
        fewest = replace(sequential, contractions=(sequential.fewest_flops,), fewest_flops=None)
        return replace(self, strategies={**self.strategies, "sequential": fewest})

    def choose(self, training: bool) -> Strategy:
        """The strategy with the smaller predicted time."""
        return min(STRATEGIES, key=lambda name: self.time(name, training))

    def reason(self, training: bool) -> str:
        """One sentence on why [`choose`][tnlayers.contraction.Plan.choose] picked its strategy."""
        best = self.choose(training)
        other: Strategy = "materialize" if best == "sequential" else "sequential"
        t_best, t_other = self.time(best, training), self.time(other, training)
        f_best = self.strategies[best].training_flops if training else self.strategies[best].flops
        f_other = (
            self.strategies[other].training_flops if training else self.strategies[other].flops
        )
        what = "training step" if training else "forward pass"
        speed = t_other / t_best
        speed_note = "within 5 %" if speed < 1.05 else f"{speed:.2g}× faster"
        if max(f_best, f_other) < 1.05 * max(min(f_best, f_other), 1):
            flop_note = "about the same FLOPs"
        elif f_best > f_other:
            flop_note = f"despite {f_best / f_other:.2g}× the FLOPs"
        else:
            flop_note = f"with {f_other / max(f_best, 1):.2g}× fewer FLOPs"
        return (
            f"{best}: predicted {t_best * 1e3:.3g} ms vs {t_other * 1e3:.3g} ms per {what} "
            f"for {other} ({speed_note}, {flop_note}; decided by the cost model)"
        )


def _sequential(
    network: Network,
    batch: int,
    input_grad: bool,
    optimize: OptimizeKind,
    model: MachineModel,
    itemsize: int,
) -> tuple[Contraction, Contraction]:
    """``x`` contracted with every tensor: the path kept and the path with the fewest FLOPs.

    With ``optimize="best"`` the path kept is the FLOP-optimal one, or a path joining groups of
    neighbouring tensors first (``paths.grouped_paths``) where the model predicts that faster;
    with any other optimiser, its path."""
    sizes = {**network.sizes, BATCH: batch}
    names = ["x", *network.tensor_names]
    operands = [(BATCH, *network.inputs), *(network.legs(t) for t in network.tensor_names)]
    output = (BATCH, *network.outputs)
    grads = [input_grad] + [True] * len(network.tensor_names)
    fewest_flops = _contract(names, operands, output, sizes, grads, optimize)
    if not (isinstance(optimize, str) and optimize == "best"):
        return fewest_flops, fewest_flops
    candidates = [fewest_flops] + [
        _contract(names, operands, output, sizes, grads, optimize, path)
        for path in grouped_paths(operands, 0)
    ]
    # Ranked by a training step: where a layer runs *sequential*, it mostly trains (in
    # inference *materialize* serves its cached weight). Ties keep the fewest FLOPs.
    kept = min(candidates, key=lambda c: (c.time(model, itemsize, training=True), c.flops))
    return kept, fewest_flops


def _weight(network: Network, optimize: OptimizeKind) -> Contraction:
    names = list(network.tensor_names)
    operands = [network.legs(t) for t in names]
    return _contract(
        names,
        operands,
        network.weight_legs,
        network.sizes,
        [True] * len(names),
        optimize,
    )


def _gemm(network: Network, batch: int, input_grad: bool) -> Contraction:
    """``x · Wᵀ``: one GEMM, or a batched one over the pass-through legs."""
    if network.passthrough:
        return _contract(
            ["x", "W"],
            [(BATCH, *network.inputs), network.weight_legs],
            (BATCH, *network.outputs),
            {**network.sizes, BATCH: batch},
            [input_grad, True],
            "optimal",
        )
    sizes = {BATCH: batch, IN_FEATURES: network.in_features, OUT_FEATURES: network.out_features}
    return _contract(
        ["x", "W"],
        [(BATCH, IN_FEATURES), (OUT_FEATURES, IN_FEATURES)],
        (BATCH, OUT_FEATURES),
        sizes,
        [input_grad, True],
        "optimal",
    )


@lru_cache(maxsize=512)
def _plan_cached(
    network: Network,
    batch: int,
    optimize: OptimizeKind,
    model: MachineModel,
    itemsize: int,
    input_requires_grad: bool,
) -> Plan:
    # The weight *materialize* builds: block-diagonal networks keep only their blocks.
    dense = math.prod(network.sizes[leg] for leg in network.weight_legs)
    kept, fewest_flops = _sequential(network, batch, input_requires_grad, optimize, model, itemsize)
    strategies: dict[Strategy, StrategyPlan] = {
        "sequential": StrategyPlan(
            "sequential", (kept,), dense, None if kept is fewest_flops else fewest_flops
        ),
        "materialize": StrategyPlan(
            "materialize",
            (_weight(network, optimize), _gemm(network, batch, input_requires_grad)),
            dense,
        ),
    }
    return Plan(network, batch, strategies, model, itemsize, input_requires_grad)


def plan(
    network: Network,
    batch: int,
    *,
    optimize: OptimizeKind = "best",
    model: MachineModel | None = None,
    itemsize: int = 4,
    input_requires_grad: bool = True,
) -> Plan:
    """Plan both strategies for ``network`` at ``batch`` rows (cached).

    Parameters
    ----------
    network
        The network to plan.
    batch
        Number of input rows (all leading dimensions of the input, multiplied).
    optimize
        Path optimiser: ``"best"`` (default; deterministic, see the Concepts page) or any of
        opt_einsum's (``"optimal"``, ``"dp"``, ``"auto-hq"``, a `PathOptimizer`...).
    model
        Machine model ranking the strategies (default: the CPU model).
    itemsize
        Bytes per element (4 for float32).
    input_requires_grad
        Count the input's gradient in training FLOPs (true for any layer but the first).

    Returns
    -------
    Plan
        Plans are cached per argument tuple: a second call returns the same object.
    """
    if not isinstance(network, Network):
        raise ArgumentTypeError(
            f"expected a tnlayers.Network, got {type(network).__name__}; a layer reports its "
            "own cost with layer.cost(batch) (Givens circuits too: GivensLinear(circuit).cost)"
        )
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 0:
        raise NetworkSpecError(f"batch must be a non-negative integer, got {batch!r}")
    return _plan_cached(
        network, max(batch, 1), optimize, model or MachineModel(), itemsize, input_requires_grad
    )
