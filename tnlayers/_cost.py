"""Analyse: the cost report of a network at a batch size."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ._errors import OptionError
from ._network import Network
from ._plan import STRATEGIES, MachineModel, OptimizeKind, Plan, Strategy, plan

__all__ = ["CostReport", "cost"]

Mode = Literal["training", "inference"]
Basis = Literal["model", "forced", "timed", "untimed"]


def _si(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.3g}"


def _bytes(value: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{int(value)} B"


@dataclass(frozen=True)
class CostReport:
    """Parameters, FLOPs, memory and predicted time of both strategies, and the choice.

    Build one with [`cost`][tnlayers.cost]. ``str(report)`` is a readable table;
    [`to_dict`][tnlayers.CostReport.to_dict] gives the numbers.

    Attributes
    ----------
    plan
        The underlying [`Plan`][tnlayers.Plan] (paths step by step).
    mode
        ``"training"`` (forward + backward decides) or ``"inference"`` (forward decides).
    strategy
        The chosen strategy, or the forced one.
    reason
        Why it was chosen.
    basis
        What decided: ``"model"`` (the cost model's prediction), ``"forced"``, ``"timed"``
        (a layer timed both on this machine) or ``"untimed"`` (a layer will time both on its
        first call at this size; the prediction is shown until then).
    measured_s
        Seconds per call of each strategy where a layer timed them, else ``None``.
    """

    plan: Plan
    mode: Mode
    strategy: Strategy
    reason: str
    basis: Basis = "model"
    measured_s: Mapping[Strategy, float] | None = None

    @property
    def network(self) -> Network:
        """The network analysed."""
        return self.plan.network

    @property
    def params(self) -> int:
        """Network parameters (no bias)."""
        return self.network.num_params

    @property
    def dense_params(self) -> int:
        """Entries of the equivalent dense weight."""
        return self.network.dense_params

    @property
    def compression_ratio(self) -> float:
        """``params / dense_params`` (MPO-Net's ρ: below 1 means fewer parameters)."""
        return self.params / self.dense_params

    def strategy_dict(self, name: Strategy) -> dict[str, Any]:
        """Numbers of one strategy."""
        sp = self.plan.strategies[name]
        item = self.plan.itemsize
        return {
            "flops": sp.flops,
            "training_flops": sp.training_flops,
            "largest_intermediate": sp.largest_intermediate,
            "largest_intermediate_bytes": sp.largest_intermediate * item,
            "saved_for_backward": sp.saved_elements,
            "saved_for_backward_bytes": sp.saved_elements * item,
            "predicted_time_s": self.plan.time(name, training=False),
            "predicted_training_time_s": self.plan.time(name, training=True),
            "measured_time_s": None if self.measured_s is None else self.measured_s[name],
            "forms_dense_weight": sp.forms_dense_weight,
            "paths": [
                {"operands": list(c.names), "equation": c.equation(), "path": c.path}
                for c in sp.contractions
            ],
            "steps": [
                {"contraction": step.describe(), "flops": step.flops, "size": step.size}
                for step in sp.steps
            ],
        }

    def to_dict(self) -> dict[str, Any]:
        """All numbers as plain Python values.

        Keys include ``params``, ``dense_params``, ``compression_ratio``, ``flops`` (forward
        FLOPs of the chosen strategy), ``strategy``, ``largest_intermediate`` (elements, chosen
        strategy) and ``strategies`` (per-strategy details, paths and steps).
        """
        chosen = self.strategy_dict(self.strategy)
        net = self.network
        return {
            "network": net.signature,
            "batch": self.plan.batch,
            "itemsize": self.plan.itemsize,
            "mode": self.mode,
            "in_features": net.in_features,
            "out_features": net.out_features,
            "in_dims": list(net.in_dims),
            "out_dims": list(net.out_dims),
            "padding": {
                "in": net.padded_in_features - net.in_features,
                "out": net.padded_out_features - net.out_features,
            },
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
            "strategies": {name: self.strategy_dict(name) for name in STRATEGIES},
        }

    def __str__(self) -> str:
        net = self.network
        lines = [
            f"tnlayers cost report — network {net.signature}, batch {self.plan.batch}, "
            f"{self.plan.itemsize}-byte elements, {self.mode}",
            f"  tensors      {', '.join(f'{t}{list(net.shape(t))}' for t in net.tensor_names)}",
            f"  features     {net.in_features} → {net.out_features}"
            f"   (input legs {list(net.in_dims)}, output legs {list(net.out_dims)})",
        ]
        if net.is_padded:
            lines.append(
                f"  padding      input {net.in_features} → {net.padded_in_features} "
                f"(+{net.padded_in_features - net.in_features} zeros), output "
                f"{net.padded_out_features} → {net.out_features} "
                f"(−{net.padded_out_features - net.out_features} truncated)"
            )
        lines += [
            f"  parameters   {self.params:,} vs dense {self.dense_params:,}"
            f"   (ratio {self.compression_ratio:.4g}, {1 / self.compression_ratio:.3g}× fewer)",
            "",
            f"  {'strategy':<12}{'fwd FLOPs':>11}{'train FLOPs':>13}{'largest interm.':>22}"
            f"{'saved for bwd':>16}{'pred. fwd':>12}{'pred. train':>13}",
        ]
        for name in STRATEGIES:
            d = self.strategy_dict(name)
            mark = " *" if name == self.strategy else ""
            largest = (
                f"{_si(d['largest_intermediate'])} ({_bytes(d['largest_intermediate_bytes'])})"
            )
            lines.append(
                f"  {name + mark:<12}{_si(d['flops']):>11}{_si(d['training_flops']):>13}"
                f"{largest:>22}{_bytes(d['saved_for_backward_bytes']):>16}"
                f"{d['predicted_time_s'] * 1e3:>10.3g}ms"
                f"{d['predicted_training_time_s'] * 1e3:>11.3g}ms"
            )
        lines += ["", f"  chosen ({self.basis}): {self.reason}"]
        sp = self.plan.strategies["sequential"]
        if sp.forms_dense_weight:
            lines.append(
                f"  note: this sequential path contracts the tensors into an intermediate "
                f"without the batch of {_si(sp.weight_sized_elements)} elements, at least "
                f"the dense weight's {_si(sp.dense_size)}: it "
                "materialises the weight mid-way"
            )
        width = (
            max(len(step.describe()) for sp in self.plan.strategies.values() for step in sp.steps)
            + 2
        )
        for name in STRATEGIES:
            lines.append("")
            lines.append(f"  {name} path")
            lines.append(f"    {'#':>3}  {'contraction':<{width}}{'FLOPs':>10}{'result':>10}")
            for number, step in enumerate(self.plan.strategies[name].steps, start=1):
                lines.append(
                    f"    {number:>3}  {step.describe():<{width}}{_si(step.flops):>10}"
                    f"{_si(step.size):>10}"
                )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"CostReport(params={self.params}, dense_params={self.dense_params}, "
            f"strategy={self.strategy!r}, flops={self.plan.strategies[self.strategy].flops})"
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
        chosen = strategy
        reason = f"{strategy}: forced by the caller"
        return CostReport(the_plan, mode, chosen, reason, "forced")
    else:
        raise OptionError(
            f"strategy must be 'auto', 'sequential' or 'materialise', got {strategy!r}"
        )
    return CostReport(the_plan, mode, chosen, reason)
