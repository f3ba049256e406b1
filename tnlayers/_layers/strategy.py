"""Execute: the one owner of strategy choices, so that what is reported is what runs.

A layer's forward pass, its ``cost()`` and ``chosen_strategy()``, ``summary()`` and
``compress()``'s report all ask ``decide`` for a [`Decision`][tnlayers.contraction.Decision].
Asking is a pure look-up: it never times anything. Timing happens only where the caller asks for it
— the first forward pass of a layer with ``strategy="auto"`` (where the cost model's two
predictions are close, or its sequential path is a grouped one to check against the path with
the fewest FLOPs) or ``"autotune"``, or a ``measure=True`` query — and is recorded here, where
every later question finds it.

The registries are bounded: configurations live as long as a layer uses them, timings and
compiled programs are least-recently-used caches, and all of them are safe to use from several
threads.
"""

from __future__ import annotations

import statistics
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal, cast

import torch

from .._core.network import Network
from .._core.plan import STRATEGIES, MachineModel, OptimizeKind, Plan, Strategy, plan
from .execute import Program, compile_contraction

__all__ = ["AUTO_TIMING_MARGIN", "Decision", "StrategyOption", "Timing", "decide"]

StrategyOption = Literal["auto", "model", "autotune", "sequential", "materialize"]
STRATEGY_OPTIONS: tuple[StrategyOption, ...] = (
    "auto",
    "model",
    "autotune",
    "sequential",
    "materialize",
)

# "auto" times both strategies once when the model's predictions are closer than this factor.
AUTO_TIMING_MARGIN = 1.5

Execution = tuple[Strategy, tuple[Program, ...]]
# (config id, rows, dtype name, device type, training)
DecisionKey = tuple[int, int, str, str, bool]
ConfigKey = tuple[Network, OptimizeKind, "MachineModel | None", tuple[Hashable, ...]]


# The timing key of the sequential strategy run on its path with the fewest FLOPs, timed
# beside the plan's kept path where that one joins groups of tensors first.
FEWEST_FLOPS_RUN = "sequential (fewest FLOPs)"


@dataclass(frozen=True)
class Timing:
    """Measured seconds per call of each strategy (medians of interleaved runs).

    Keys are strategy names, and ``FEWEST_FLOPS_RUN`` where the sequential strategy's two
    paths were both timed.
    """

    seconds: Mapping[str, float]

    @property
    def best(self) -> str:
        """The fastest run."""
        return min(self.seconds, key=self.seconds.__getitem__)

    @property
    def fewest_flops_faster(self) -> bool:
        """Whether the sequential path with the fewest FLOPs beat the plan's kept path."""
        fewest = self.seconds.get(FEWEST_FLOPS_RUN)
        return fewest is not None and fewest < self.seconds["sequential"]

    def strategy_seconds(self) -> dict[str, float]:
        """Seconds per strategy, the sequential one on the faster of its timed paths."""
        seconds: dict[str, float] = {
            name: self.seconds[name] for name in STRATEGIES if name in self.seconds
        }
        if self.fewest_flops_faster:
            seconds["sequential"] = self.seconds[FEWEST_FLOPS_RUN]
        return seconds


# Medians closer than this ratio get ``CLOSE_REPEATS`` more rounds before the choice is kept:
# on a shared 2-core machine single calls vary by 1.3× and more, and a timing is kept for the
# rest of the process.
CLOSE_RATIO = 1.3
CLOSE_REPEATS = 10


def time_strategies(
    runs: Mapping[str, Callable[[], object]], device: torch.device, repeats: int = 5
) -> Timing:
    """Time each run (one call of one strategy) and keep the medians.

    One warm-up call each (first calls allocate), then ``repeats`` rounds that interleave the
    strategies, so that drift on a shared machine hits all alike; where the two fastest medians
    are within ``CLOSE_RATIO``, ``CLOSE_REPEATS`` more rounds of the runs within that ratio of
    the fastest (a run far slower cannot win, and may be slow to repeat). Autocast is off:
    callers run detached copies of their tensors, which a layer's autocast path does not take.
    """
    samples: dict[str, list[float]] = {name: [] for name in runs}

    def rounds(count: int, names: list[str]) -> None:
        for _ in range(count):
            for name in names:
                run = runs[name]
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                start = time.perf_counter()
                run()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                samples[name].append(time.perf_counter() - start)

    def medians() -> dict[str, float]:
        return {name: statistics.median(times) for name, times in samples.items()}

    with torch.autocast(device.type, enabled=False):
        for run in runs.values():
            run()
        rounds(repeats, list(runs))
        found = medians()
        fastest = sorted(found.values())
        if len(fastest) > 1 and fastest[1] < CLOSE_RATIO * fastest[0]:
            close = [name for name in runs if found[name] < CLOSE_RATIO * fastest[0]]
            rounds(CLOSE_REPEATS, close)
    return Timing(medians())


@dataclass(frozen=True)
class Decision:
    """The strategy a layer runs for one (rows, dtype, device, grad mode), and why.

    Attributes
    ----------
    strategy
        What runs.
    basis
        ``"forced"`` (the layer's ``strategy`` names one), ``"model"`` (the cost model's
        prediction decides), ``"timed"`` (both were timed on this machine; the faster runs) or
        ``"untimed"`` (the predictions are close, or the sequential path is a grouped one to
        check, so the layer's next call at this size will time them: until then the prediction
        is reported, and it may change).
    plan
        The plan both strategies come from, as they run: where timing found the sequential
        path with the fewest FLOPs faster than the one the model preferred, the plan on that
        path ([`Plan.with_fewest_flops_path`][tnlayers.contraction.Plan.with_fewest_flops_path]).
    training
        Whether a training step (forward + backward) was ranked.
    timing
        The measurement, where ``basis == "timed"``.
    """

    strategy: Strategy
    basis: Literal["forced", "model", "timed", "untimed"]
    plan: Plan = field(repr=False)
    training: bool
    timing: Timing | None = None
    # The cost model's choice on the plan as planned (``plan`` may be the timed variant).
    predicted: Strategy | None = field(default=None, repr=False)
    # The layer times every new size whatever the model predicts (convolutions).
    times_every_size: bool = field(default=False, repr=False)

    @property
    def fewest_flops_path(self) -> bool:
        """Whether *sequential* runs its path with the fewest FLOPs instead of the kept one."""
        return self.timing is not None and self.timing.fewest_flops_faster

    @property
    def measured_s(self) -> dict[str, float] | None:
        """Seconds per call of each strategy as ``plan`` runs it (the sequential one on the
        faster of its timed paths), where timed; else ``None``."""
        return None if self.timing is None else self.timing.strategy_seconds()

    @property
    def reason(self) -> str:
        """One sentence on why this strategy runs."""
        what = "training step" if self.training else "forward pass"
        if self.basis == "forced":
            return f"{self.strategy}: forced by the layer's strategy={self.strategy!r}"
        if self.basis == "timed":
            assert self.timing is not None
            seconds = self.timing.strategy_seconds()
            other = _other(self.strategy)
            mine, theirs = seconds[self.strategy], seconds[other]
            reason = (
                f"{self.strategy}: timed on this machine at {mine * 1e3:.3g} ms vs "
                f"{theirs * 1e3:.3g} ms per {what} ({_speed_phrase(theirs / mine, other)}; "
                f"the cost model predicted {self.predicted or self.plan.choose(self.training)})"
            )
            return reason + _paths_phrase(self.timing)
        reason = self.plan.reason(self.training)
        if self.basis == "untimed":
            if close_call(self.plan, self.training):
                why = f"the predictions are within {AUTO_TIMING_MARGIN}× of each other"
            elif sequential_bet(self.plan, self.training):
                why = (
                    "the sequential path joins groups of tensors first, which the model "
                    "predicts faster than the path with the fewest FLOPs"
                )
            elif self.times_every_size:
                why = (
                    "a convolution times its real paths at each new size (the model does not "
                    "count the unfold copy of the sequential one)"
                )
            else:
                why = "the layer's strategy is 'autotune'"
            what = (
                "both and keeps the faster"
                if len(timed_runs(self.plan)) == 2
                else "both strategies, the sequential one on both paths, and keeps the fastest"
            )
            reason += (
                f"; {why}, so the layer's first call at this size times {what} (ask with "
                "measure=True to time now)"
            )
        return reason


def _paths_phrase(timing: Timing) -> str:
    """What timing the sequential strategy's two paths found ('' where only one was timed)."""
    fewest = timing.seconds.get(FEWEST_FLOPS_RUN)
    if fewest is None:
        return ""
    grouped = timing.seconds["sequential"]
    if timing.fewest_flops_faster:
        return (
            f"; of the two sequential paths, the one with the fewest FLOPs ran at "
            f"{fewest * 1e3:.3g} ms against {grouped * 1e3:.3g} ms for the one joining groups of "
            "tensors first that the model preferred, so it is the one shown and run"
        )
    return (
        f"; of the two sequential paths, the one joining groups of tensors first ran at "
        f"{grouped * 1e3:.3g} ms against {fewest * 1e3:.3g} ms for the one with the fewest FLOPs"
    )


def _other(strategy: Strategy) -> Strategy:
    return "materialize" if strategy == "sequential" else "sequential"


def _speed_phrase(ratio: float, other: str) -> str:
    if ratio < 1.05:
        return f"within 5 % of {other}"
    return f"{ratio:.2g}× faster than {other}"


class _LRU(OrderedDict):
    """A mapping that forgets its least recently used entries beyond ``limit`` (no locking:
    the registry holds its lock around every use)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def get_recent(self, key: object, missing: object = None) -> Any:
        """The value of ``key`` (marking it recently used), or ``missing``."""
        if key not in self:
            return missing
        self.move_to_end(key)
        return self[key]

    def put(self, key: object, value: object) -> None:
        """Set ``key``, then forget the oldest entries beyond the limit."""
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)


class _Registry:
    """Configurations, timed choices and compiled programs, bounded and thread-safe."""

    def __init__(self, max_timings: int = 8192, max_executions: int = 8192) -> None:
        self.lock = threading.RLock()
        self._ids: dict[ConfigKey, int] = {}
        self._configs: dict[int, tuple[ConfigKey, int]] = {}  # id → (key, users)
        self._next_id = 0
        self._timings = _LRU(max_timings)  # DecisionKey → Timing | None
        # Bumped by every `record` (which may also forget the oldest timing): the only event
        # that can change the execution decided for a key, plans being deterministic. Layers
        # memoise their last execution against it.
        self.generation = 0
        # What forward runs, per (key, option): the hot path's one look-up.
        self._executions = _LRU(max_executions)  # (DecisionKey, option) → Execution

    # ---------------------------------------------------------------- configurations
    def acquire(self, user: object, key: ConfigKey) -> int:
        """A small integer naming ``key`` while ``user`` (a layer) lives.

        Plans are looked up by integers and strings because, under ``torch.compile``, the
        look-up runs once at trace time as a constant (see ``execution``); a layer's network
        object could not be passed there. Ids are never reused, so a forgotten configuration
        can never answer for another.
        """
        with self.lock:
            config = self._ids.get(key)
            if config is None:
                config = self._ids[key] = self._next_id
                self._next_id += 1
                self._configs[config] = (key, 0)
            found, users = self._configs[config]
            self._configs[config] = (found, users + 1)
        weakref.finalize(user, self._release, config)
        return config

    def _release(self, config: int) -> None:
        with self.lock:
            entry = self._configs.get(config)
            if entry is None:
                return
            key, users = entry
            if users > 1:
                self._configs[config] = (key, users - 1)
            else:
                del self._configs[config]
                del self._ids[key]

    def config(self, config: int) -> ConfigKey:
        """The configuration behind an id."""
        return self._configs[config][0]

    def __len__(self) -> int:
        return len(self._configs)

    # ---------------------------------------------------------------- timings
    def timing(self, key: DecisionKey) -> Timing | Literal[False] | None:
        """A recorded timing, ``None`` (recorded: the model decides), or ``False`` (nothing)."""
        with self.lock:
            found: Timing | Literal[False] | None = self._timings.get_recent(key, False)
            return found

    def record(self, key: DecisionKey, timing: Timing | None) -> None:
        """Record a timing (or that none is needed) for ``key``."""
        with self.lock:
            self._timings.put(key, timing)
            for option in ("auto", "autotune"):  # decisions that read timings
                self._executions.pop((key, option), None)
            self.generation += 1

    def execution(self, key: DecisionKey, option: str) -> Execution | None:
        """The execution decided for ``key`` and ``option``, if any."""
        with self.lock:
            found: Execution | None = self._executions.get_recent((key, option))
            return found

    def store_execution(self, key: DecisionKey, option: str, found: Execution) -> None:
        """Remember the execution decided for ``key`` and ``option``."""
        with self.lock:
            self._executions.put((key, option), found)

    def timings_size(self) -> int:
        """Number of recorded timings."""
        return len(self._timings)


REGISTRY = _Registry()


def dtype_name(dtype: torch.dtype) -> str:
    """``"float32"`` for ``torch.float32``: how registry keys name dtypes."""
    return str(dtype).removeprefix("torch.")


def itemsize_of(name: str) -> int:
    """Bytes per element of the dtype called ``name``."""
    return torch.empty((), dtype=getattr(torch, name)).element_size()


def plan_for(config: int, rows: int, dtype_name: str, device_type: str) -> Plan:
    """The plan of configuration ``config`` at ``rows`` rows (plans are cached, bounded)."""
    network, optimize, model, _ = REGISTRY.config(config)
    return plan(
        network,
        rows,
        optimize=optimize,
        model=model or MachineModel.for_device(device_type),
        itemsize=itemsize_of(dtype_name),
    )


def close_call(the_plan: Plan, training: bool) -> bool:
    """Whether the model's two predicted times are within ``AUTO_TIMING_MARGIN``."""
    times = [the_plan.time(name, training) for name in STRATEGIES]
    return max(times) < AUTO_TIMING_MARGIN * min(times)


def sequential_bet(the_plan: Plan, training: bool) -> bool:
    """Whether the plan keeps a sequential path that joins groups of tensors first (a bet of
    the cost model against the path with the fewest FLOPs, which it overcharges for thin
    steps) and *sequential* could run: predicted fastest or within ``AUTO_TIMING_MARGIN``."""
    if the_plan.strategies["sequential"].fewest_flops is None:
        return False
    fewest = the_plan.with_fewest_flops_path()
    sequential = min(the_plan.time("sequential", training), fewest.time("sequential", training))
    return sequential < AUTO_TIMING_MARGIN * the_plan.time("materialize", training)


def timing_needed(the_plan: Plan, training: bool) -> bool:
    """Whether ``"auto"`` times this plan at its first call: its strategies' predictions are
    close, or its sequential path is a bet worth checking."""
    return close_call(the_plan, training) or sequential_bet(the_plan, training)


def timed_runs(the_plan: Plan) -> dict[str, tuple[Strategy, bool]]:
    """What a timing runs: timing key → (strategy, on the path with the fewest FLOPs)."""
    runs: dict[str, tuple[Strategy, bool]] = {name: (name, False) for name in STRATEGIES}
    if the_plan.strategies["sequential"].fewest_flops is not None:
        runs[FEWEST_FLOPS_RUN] = ("sequential", True)
    return runs


def decide(
    config: int,
    rows: int,
    dtype_name: str,
    device_type: str,
    training: bool,
    option: StrategyOption,
    times_every_size: bool = False,
) -> Decision:
    """The strategy that runs for these arguments, and why. A pure look-up: it never times.

    ``times_every_size``: the layer's ``"auto"`` times every new size (convolutions), so an
    untimed size is reported ``"untimed"`` whatever the model predicts.
    """
    the_plan = plan_for(config, rows, dtype_name, device_type)
    if option in STRATEGIES:
        return Decision(option, "forced", the_plan, training)
    predicted = the_plan.choose(training)
    if option == "model":
        return Decision(predicted, "model", the_plan, training)
    timing = REGISTRY.timing((config, rows, dtype_name, device_type, training))
    if timing is False:  # nothing recorded yet: the first call at this size times if it must
        needs_timing = option == "autotune" or times_every_size or timing_needed(the_plan, training)
        basis: Literal["untimed", "model"] = "untimed" if needs_timing else "model"
        return Decision(predicted, basis, the_plan, training, times_every_size=times_every_size)
    if timing is None:
        return Decision(predicted, "model", the_plan, training)
    strategy: Strategy = (
        "sequential" if timing.best == FEWEST_FLOPS_RUN else cast(Strategy, timing.best)
    )
    if timing.fewest_flops_faster:
        the_plan = the_plan.with_fewest_flops_path()
    return Decision(strategy, "timed", the_plan, training, timing, predicted)


@lru_cache(maxsize=4096)
def programs(
    config: int,
    rows: int,
    dtype_name: str,
    device_type: str,
    strategy: Strategy,
    fewest_flops: bool = False,
) -> tuple[Program, ...]:
    """The compiled programs of one strategy (cached, bounded); ``fewest_flops``: *sequential*
    on its path with the fewest FLOPs rather than the plan's kept path."""
    the_plan = plan_for(config, rows, dtype_name, device_type)
    if fewest_flops:
        the_plan = the_plan.with_fewest_flops_path()
    return tuple(compile_contraction(c) for c in the_plan.strategies[strategy].contractions)


def assume_constant_result(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``torch.compiler.assume_constant_result`` without importing ``torch._dynamo``.

    The public decorator imports all of dynamo (≈ 1 s) only to set this attribute on ``fn``;
    ``import tnlayers`` should not pay that. tests/test_strategy_owner.py checks that the public
    decorator still marks functions exactly this way, and the compile tests that it works.
    """
    fn._dynamo_marked_constant = True  # type: ignore[attr-defined]
    return fn


@assume_constant_result
def execution(
    config: int,
    rows: int,
    dtype_name: str,
    device_type: str,
    training: bool,
    option: StrategyOption,
) -> Execution:
    """The decided strategy and its programs.

    Under ``torch.compile`` this runs once at trace time and its result (strings and integers)
    is baked into the graph, so planning and registry look-ups never show up in compiled code:
    that is why every argument is an int, a string or a bool.
    """
    key = (config, rows, dtype_name, device_type, training)
    found = REGISTRY.execution(key, option)
    if found is None:
        with REGISTRY.lock:  # so that no timing is recorded between deciding and storing
            decision = decide(config, rows, dtype_name, device_type, training, option)
            strategy = decision.strategy
            found = (
                strategy,
                programs(
                    config, rows, dtype_name, device_type, strategy, decision.fewest_flops_path
                ),
            )
            REGISTRY.store_execution(key, option, found)
    return found
