"""Analyse: the cost report of a network at a batch size."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import OptionError
from .network import Network
from .plan import STRATEGIES, MachineModel, OptimizeKind, Plan, Strategy, plan
from .table import format_table, si

__all__ = ["CostReport", "StrategyCost", "cost", "network_report"]

Mode = Literal["training", "inference"]
Basis = Literal["model", "forced", "timed", "untimed"]


def _bytes(value: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{int(value)} B"


@dataclass(frozen=True)
class StrategyCost:
    """One strategy's numbers in a [`CostReport`][tnlayers.CostReport].

    Attributes
    ----------
    name
        The strategy (``"sequential"``, ``"materialize"``, ``"layered"``, ``"blocked"``...).
    flops, training_flops
        FLOPs of a forward pass, and of forward + backward.
    calls
        Sequential kernel calls of a forward pass (contraction steps, or circuit steps).
    largest_intermediate
        Elements of the largest tensor created.
    saved_for_backward
        Elements autograd keeps between forward and backward, beyond inputs and parameters.
    predicted_time_s, predicted_training_time_s
        The cost model's seconds per forward pass, and per training step.
    forms_dense_weight
        Whether the strategy builds a tensor at least as large as the dense weight.
    steps
        ``(description, FLOPs, result elements)`` of each step, where the plan lists them.
    paths
        The contraction paths (operands, equation, path), where the plan has them.
    cached_flops
        FLOPs of an inference call once the built weight is cached (*materialize*: the GEMM
        alone; the build runs again only after a parameter changes); ``None`` where nothing is
        cached.
    """

    name: str
    flops: int
    training_flops: int
    calls: int
    largest_intermediate: int
    saved_for_backward: int
    predicted_time_s: float
    predicted_training_time_s: float
    forms_dense_weight: bool
    steps: tuple[tuple[str, int, int], ...] = ()
    paths: tuple[Mapping[str, Any], ...] = ()
    cached_flops: int | None = None


@dataclass(frozen=True)
class CostReport:
    """What a layer or network costs at a batch size: every strategy, and the one that runs.

    The same object for every layer type: its strategy table (``strategies``) is keyed by
    whatever strategies the layer has — ``sequential``/``materialize`` for contracted networks,
    ``layered``/``blocked``/``materialize`` for Givens circuits, ``factored`` for a low-rank
    convolution. Build one with [`cost`][tnlayers.cost] or any layer's ``cost(batch, mode=...)``.
    ``str(report)`` is a readable table; [`to_dict`][tnlayers.CostReport.to_dict] the numbers.

    Attributes
    ----------
    subject
        What is analysed, in one line.
    batch
        Rows of the flattened input the numbers are for.
    itemsize
        Bytes per element.
    mode
        ``"training"`` (forward + backward decides) or ``"inference"`` (forward decides).
    in_features, out_features
        The linear map's sizes.
    params, dense_params
        Parameters of the structure (no bias), and entries of the dense weight it stands for.
    strategies
        Each strategy's [`StrategyCost`][tnlayers.contraction.StrategyCost], in display order.
    strategy
        The chosen strategy, or the forced one.
    reason
        Why it was chosen.
    basis
        What decided: ``"model"`` (the cost model's prediction), ``"forced"``, ``"timed"``
        (a layer timed the strategies on this machine) or ``"untimed"`` (a layer will time them
        on its first call at this size; the prediction is shown until then).
    measured_s
        Seconds per call of each strategy where a layer timed them, else ``None``.
    details
        Lines describing the structure (tensors, legs, padding, circuit depth).
    notes
        Lines printed after the choice (caveats).
    facts
        Structure-specific numbers, merged into ``to_dict()``.
    plan
        The underlying plan: a [`Plan`][tnlayers.contraction.Plan] for networks, a
        [`GivensPlan`][tnlayers.circuits.GivensPlan] for Givens circuits, ``None`` otherwise.
    """

    subject: str
    batch: int
    itemsize: int
    mode: Mode
    in_features: int
    out_features: int
    params: int
    dense_params: int
    strategies: Mapping[str, StrategyCost]
    strategy: str
    reason: str
    basis: Basis = "model"
    measured_s: Mapping[str, float] | None = None
    details: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    facts: Mapping[str, Any] = field(default_factory=dict)
    plan: Any = field(default=None, repr=False, compare=False)

    @property
    def network(self) -> Network | None:
        """The network analysed, when the report is of a contracted network."""
        return self.plan.network if isinstance(self.plan, Plan) else None

    @property
    def compression_ratio(self) -> float:
        """``params / dense_params`` (MPO-Net's ρ: below 1 means fewer parameters)."""
        return self.params / self.dense_params

    @property
    def chosen(self) -> StrategyCost:
        """The chosen strategy's numbers."""
        return self.strategies[self.strategy]

    @property
    def call_flops(self) -> int:
        """FLOPs of one call of the chosen strategy as it runs in this report's mode.

        In inference a *materialize* layer reuses its cached weight, so a call is the GEMM
        alone; otherwise the chosen strategy's ``flops``.
        """
        chosen = self.chosen
        if self.mode == "inference" and chosen.cached_flops is not None:
            return chosen.cached_flops
        return chosen.flops

    def strategy_dict(self, name: str) -> dict[str, Any]:
        """Numbers of one strategy as plain values."""
        sc = self.strategies[name]
        item = self.itemsize
        return {
            "flops": sc.flops,
            "training_flops": sc.training_flops,
            "calls": sc.calls,
            "largest_intermediate": sc.largest_intermediate,
            "largest_intermediate_bytes": sc.largest_intermediate * item,
            "saved_for_backward": sc.saved_for_backward,
            "saved_for_backward_bytes": sc.saved_for_backward * item,
            "predicted_time_s": sc.predicted_time_s,
            "predicted_training_time_s": sc.predicted_training_time_s,
            "measured_time_s": None if self.measured_s is None else self.measured_s.get(name),
            "forms_dense_weight": sc.forms_dense_weight,
            "cached_flops": sc.cached_flops,
            "paths": [dict(p) for p in sc.paths],
            "steps": [
                {"contraction": text, "flops": flops, "size": size}
                for text, flops, size in sc.steps
            ],
        }

    def to_dict(self) -> dict[str, Any]:
        """All numbers as plain Python values.

        Keys include ``params``, ``dense_params``, ``compression_ratio``, ``flops`` (forward
        FLOPs of the chosen strategy), ``strategy``, ``largest_intermediate`` (elements, chosen
        strategy) and ``strategies`` (per-strategy details), plus the structure's ``facts``
        (e.g. ``network``, ``in_dims``, ``padding`` for networks; ``layout``, ``depth`` for
        Givens circuits).
        """
        chosen = self.strategy_dict(self.strategy)
        return {
            "subject": self.subject,
            **self.facts,
            "batch": self.batch,
            "itemsize": self.itemsize,
            "mode": self.mode,
            "in_features": self.in_features,
            "out_features": self.out_features,
            "params": self.params,
            "dense_params": self.dense_params,
            "compression_ratio": self.compression_ratio,
            "strategy": self.strategy,
            "decided_by": self.basis,
            "reason": self.reason,
            "flops": chosen["flops"],
            "training_flops": chosen["training_flops"],
            "largest_intermediate": chosen["largest_intermediate"],
            "largest_intermediate_bytes": chosen["largest_intermediate_bytes"],
            "call_flops": self.call_flops,
            "strategies": {name: self.strategy_dict(name) for name in self.strategies},
        }

    def __str__(self) -> str:
        # At most ~88 characters a line, so that the report fits a terminal and a code block
        # on the docs site: time and memory in two tables, long sentences wrapped, and in the
        # path tables the numbers before the (variable-length) contraction text.
        lines = [
            _wrapped(
                f"tnlayers cost report — {self.subject}, batch {self.batch}, "
                f"{self.itemsize}-byte elements, {self.mode}",
                "",
                "  ",
            ),
            *(_wrapped(line, "  ", " " * 15) for line in self.details),
            f"  parameters   {self.params:,} vs dense {self.dense_params:,}"
            f"   (ratio {self.compression_ratio:.4g}, {1 / self.compression_ratio:.3g}× fewer)",
            "",
        ]
        measured = self.measured_s is not None
        time_rows = [
            ["strategy", "calls", "fwd FLOPs", "train FLOPs", "pred. fwd", "pred. train"]
            + (["measured"] if measured else [])
        ]
        memory_rows = [["strategy", "largest intermediate", "saved for backward"]]
        for name, sc in self.strategies.items():
            d = self.strategy_dict(name)
            label = name + (" *" if name == self.strategy else "")
            row = [
                label,
                f"{sc.calls:,}",
                si(sc.flops),
                si(sc.training_flops),
                f"{sc.predicted_time_s * 1e3:.3g} ms",
                f"{sc.predicted_training_time_s * 1e3:.3g} ms",
            ]
            if measured:
                seconds = d["measured_time_s"]
                row.append("—" if seconds is None else f"{seconds * 1e3:.3g} ms")
            time_rows.append(row)
            memory_rows.append(
                [
                    label,
                    f"{si(sc.largest_intermediate)} ({_bytes(d['largest_intermediate_bytes'])})",
                    _bytes(d["saved_for_backward_bytes"]),
                ]
            )
        lines += ["  " + line for line in format_table(time_rows).splitlines()]
        lines += [""] + ["  " + line for line in format_table(memory_rows).splitlines()]
        lines += ["", _wrapped(f"chosen ({self.basis}): {self.reason}", "  ", "    ")]
        lines += [_wrapped(f"note: {note}", "  ", "    ") for note in self.notes]
        stepped = [(name, sc) for name, sc in self.strategies.items() if sc.steps]
        for name, sc in stepped:
            lines += ["", f"  {name} path"]
            lines.append(f"    {'#':>3}  {'FLOPs':>8}  {'result':>8}  contraction")
            for number, (text, flops, size) in enumerate(sc.steps, start=1):
                numbers = f"    {number:>3}  {si(flops):>8}  {si(size):>8}  "
                lines.append(_wrapped(text, numbers, " " * len(numbers)))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"CostReport(params={self.params}, dense_params={self.dense_params}, "
            f"strategy={self.strategy!r}, flops={self.chosen.flops})"
        )


def _wrapped(text: str, first: str, rest: str, width: int = 88) -> str:
    return textwrap.fill(
        text, width=width, initial_indent=first, subsequent_indent=rest, break_on_hyphens=False
    )


def network_report(
    the_plan: Plan,
    mode: Mode,
    strategy: Strategy,
    reason: str,
    basis: Basis = "model",
    measured_s: Mapping[str, float] | None = None,
) -> CostReport:
    """The cost report of a contracted network's plan (both strategies, their paths)."""
    net = the_plan.network
    item = the_plan.itemsize
    strategies: dict[str, StrategyCost] = {}
    for name in STRATEGIES:
        sp = the_plan.strategies[name]
        strategies[name] = StrategyCost(
            name=name,
            flops=sp.flops,
            training_flops=sp.training_flops,
            calls=len(sp.steps),
            largest_intermediate=sp.largest_intermediate,
            saved_for_backward=sp.saved_elements,
            predicted_time_s=the_plan.time(name, training=False),
            predicted_training_time_s=the_plan.time(name, training=True),
            forms_dense_weight=sp.forms_dense_weight,
            steps=tuple((step.describe(), step.flops, step.size) for step in sp.steps),
            paths=tuple(
                {"operands": list(c.names), "equation": c.equation(), "path": c.path}
                for c in sp.contractions
            ),
            cached_flops=sp.contractions[-1].flops if name == "materialize" else None,
        )
    details = [
        f"tensors      {', '.join(f'{t}{list(net.shape(t))}' for t in net.tensor_names)}",
        f"features     {net.in_features} → {net.out_features}"
        f"   (input legs {list(net.in_dims)}, output legs {list(net.out_dims)})",
    ]
    if net.is_padded:
        details.append(
            f"padding      input {net.in_features} → {net.padded_in_features} "
            f"(+{net.padded_in_features - net.in_features} zeros), output "
            f"{net.padded_out_features} → {net.out_features} "
            f"(−{net.padded_out_features - net.out_features} truncated)"
        )
    notes = []
    if mode == "inference":
        built = the_plan.strategies["materialize"]
        notes.append(
            f"in inference a layer builds the weight once ({si(built.contractions[0].flops)} "
            f"FLOPs) and reuses it until a parameter changes: a materialize call then costs "
            f"the GEMM's {si(built.contractions[-1].flops)}"
        )
    sp = the_plan.strategies["sequential"]
    if sp.fewest_flops is not None:
        fewest, training = sp.fewest_flops, mode == "training"
        what = "training step" if training else "forward pass"
        kept_s = the_plan.time("sequential", training)
        fewest_s = the_plan.with_fewest_flops_path().time("sequential", training)
        notes.append(
            f"the sequential path joins groups of tensors before the batch meets them: "
            f"{si(sp.flops)} FLOPs against {si(fewest.flops)} on the path with the fewest, "
            f"which the model predicts at {fewest_s * 1e3:.3g} ms against {kept_s * 1e3:.3g} ms "
            f"per {what}"
        )
    if sp.forms_dense_weight:
        notes.append(
            f"this sequential path contracts the tensors into an intermediate without the batch "
            f"of {si(sp.weight_sized_elements)} elements, at least the dense weight's "
            f"{si(sp.dense_size)}: it materializes the weight mid-way"
        )
    facts = {
        "network": net.signature,
        "in_dims": list(net.in_dims),
        "out_dims": list(net.out_dims),
        "padding": {
            "in": net.padded_in_features - net.in_features,
            "out": net.padded_out_features - net.out_features,
        },
    }
    return CostReport(
        subject=f"network {net.signature}",
        batch=the_plan.batch,
        itemsize=item,
        mode=mode,
        in_features=net.in_features,
        out_features=net.out_features,
        params=net.num_params,
        dense_params=net.dense_params,
        strategies=strategies,
        strategy=strategy,
        reason=reason,
        basis=basis,
        measured_s=measured_s,
        details=tuple(details),
        notes=tuple(notes),
        facts=facts,
        plan=the_plan,
    )


def cost(
    network: Network,
    batch: int = 64,
    *,
    mode: Mode = "training",
    strategy: Strategy | Literal["auto"] = "auto",
    itemsize: int = 4,
    optimize: OptimizeKind = "best",
    model: MachineModel | None = None,
    input_requires_grad: bool = True,
) -> CostReport:
    """Report the cost of using ``network`` as a linear layer at a batch size.

    Parameters
    ----------
    network
        The network.
    batch
        Rows of the input (all leading dimensions multiplied).
    mode
        Rank strategies by a ``"training"`` step (forward + backward) or an ``"inference"`` pass.
    strategy
        ``"auto"`` to choose, or a strategy to report as chosen.
    itemsize
        Bytes per element (4 for float32, 2 for bfloat16).
    optimize
        opt_einsum path optimiser.
    model
        Machine model for predicted times.
    input_requires_grad
        Count the input gradient in training FLOPs.

    Returns
    -------
    CostReport
        Printable; ``to_dict()`` for numbers.

    Examples
    --------
    >>> import tnlayers
    >>> report = tnlayers.cost(tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), 2), batch=64)
    >>> report.to_dict()["params"], report.to_dict()["dense_params"]
    (288, 200704)
    """
    if mode not in ("training", "inference"):
        raise OptionError(f"mode must be 'training' or 'inference', got {mode!r}")
    the_plan = plan(
        network,
        batch,
        optimize=optimize,
        model=model,
        itemsize=itemsize,
        input_requires_grad=input_requires_grad,
    )
    training = mode == "training"
    if strategy == "auto":
        chosen = the_plan.choose(training)
        reason = the_plan.reason(training)
    elif strategy in STRATEGIES:
        reason = f"{strategy}: forced by the caller"
        return network_report(the_plan, mode, strategy, reason, "forced")
    else:
        raise OptionError(
            f"strategy must be 'auto', 'sequential' or 'materialize', got {strategy!r}"
        )
    return network_report(the_plan, mode, chosen, reason)
