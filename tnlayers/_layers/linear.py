"""Execute: the generic torch layer whose weight is any tensor network."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, MutableMapping
from functools import partial
from typing import Any, ClassVar, cast

import torch
from torch import nn

from .._core.cost import CostReport, Mode, network_report
from .._core.errors import ArgumentTypeError, OptionError, ShapeError
from .._core.network import Network
from .._core.plan import MachineModel, OptimizeKind, Plan, Strategy
from .execute import (
    Program,
    apply_program,
    apply_weight,
    contract_weight,
    layer_weight,
    run_program,
)
from .init import linear_default_std, variance_preserving_
from .strategy import (
    REGISTRY,
    STRATEGY_OPTIONS,
    Decision,
    Execution,
    StrategyOption,
    Timing,
    decide,
    dtype_name,
    execution,
    plan_for,
    programs,
    time_strategies,
    timed_runs,
)
from .weight_cache import WeightCache

__all__ = ["TNLinear", "TNLinearBase"]


class TNLinearBase(nn.Module):
    r"""What every layer ``y = x Wᵀ + b`` with a network weight ``W`` shares: planning, the cost
    report, the strategy choice, the inference cache and the forward pass.

    [`TNLinear`][tnlayers.TNLinear] holds one parameter per network tensor. Subclass this base
    instead when the tensors are computed from other parameters (a circuit's gates from its
    angles): create those parameters in ``__init__`` after ``super().__init__(...)``, call
    ``self.reset_parameters()`` last, as ``torch.nn`` layers do, and implement
    [`network_tensors`][tnlayers.TNLinearBase.network_tensors] (and
    [`weight_sources`][tnlayers.TNLinearBase.weight_sources] when the tensors are computed).

    Parameters
    ----------
    network
        The weight's network.
    bias
        Create a learnable bias of length ``out_features`` (``self.bias``; the subclass's
        ``reset_parameters`` initialises it).
    strategy, optimize, model
        As for [`TNLinear`][tnlayers.TNLinear].
    device, dtype
        Where and in what dtype to create the bias.
    """

    # Whether "auto" times the strategies at every new size, whatever the cost model predicts
    # (a subclass whose real paths the model does not fully count: convolutions).
    _times_every_size: ClassVar[bool] = False

    def __init__(
        self,
        network: Network,
        bias: bool = True,
        *,
        strategy: StrategyOption = "auto",
        optimize: OptimizeKind = "best",
        model: MachineModel | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(network, Network):
            raise ArgumentTypeError(
                f"{type(self).__name__} needs a tnlayers.Network, got {type(network).__name__}"
            )
        if strategy not in STRATEGY_OPTIONS:
            raise OptionError(
                f"unknown strategy {strategy!r}; choose 'auto', 'model', 'autotune', "
                "'sequential' or 'materialize'"
            )
        self.network = network
        self.strategy: StrategyOption = strategy
        self.optimize = optimize
        self.model = model
        self._register_config(())
        self._names = network.tensor_names
        if bias:
            self.bias = nn.Parameter(torch.empty(network.out_features, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        # The inference weight cache is a plain attribute, never a buffer, so state_dict keys
        # never depend on it; it checks its sources itself (see _weight_cache.py).
        self._weight_cache = WeightCache()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Re-initialise the parameters (subclasses define how)."""
        raise NotImplementedError(f"{type(self).__name__} must define reset_parameters()")

    def _reset_bias(self, generator: torch.Generator | None = None) -> None:
        """``nn.Linear``'s bias initialisation, ``U(−1/√in, 1/√in)``."""
        if self.bias is not None:
            bound = math.sqrt(3.0) * linear_default_std(self.network.in_features)
            with torch.no_grad():
                self.bias.uniform_(-bound, bound, generator=generator)

    # ------------------------------------------------------------------ the network's tensors
    def network_tensors(self) -> list[torch.Tensor]:
        """The network tensors' current values, in ``network.tensor_names`` order.

        Shapes ``network.shape(name)``. What the forward pass contracts: parameters themselves
        in [`TNLinear`][tnlayers.TNLinear], tensors computed from parameters in a subclass
        such as [`QubitCircuitLinear`][tnlayers.QubitCircuitLinear] (then differentiable).
        """
        raise NotImplementedError(f"{type(self).__name__} must define network_tensors()")

    def weight_sources(self) -> list[torch.Tensor]:
        """The parameters the network tensors are computed from (default: the tensors).

        The inference cache serves the materialized weight only while these are bit-identical
        to what it was built from, so they must cover everything the tensors depend on.
        """
        return self.network_tensors()

    @property
    def network_dtype(self) -> torch.dtype:
        """The network tensors' dtype (default: the first weight source's)."""
        return self.weight_sources()[0].dtype

    def _tensor_info(self) -> tuple[torch.dtype, torch.device, bool]:
        """The network tensors' dtype and device, and whether they need gradients.

        Read on every forward pass, so computed without building the tensors.
        """
        first = self.weight_sources()[0]
        # Unless a subclass defines its own dtype, it is the first source's: reading the
        # property would list the sources a second time on every call.
        if type(self).network_dtype is TNLinearBase.network_dtype:
            return first.dtype, first.device, first.requires_grad
        return self.network_dtype, first.device, first.requires_grad

    def __setstate__(self, state: dict[str, object]) -> None:
        # Plan-registry ids are per process: re-derive ours after unpickling (torch.save of a
        # whole model, spawn-based workers), or a plan of another network could be looked up.
        super().__setstate__(state)
        self.__dict__.pop("_last_execution", None)  # decided under the old ids
        self._register_config()

    def _register_config(self, context: tuple[object, ...] | None = None) -> None:
        """Name this layer's planning configuration in the strategy registry.

        ``context`` (default: ``_timing_context()``) is given where a subclass's attributes
        are not set yet.
        """
        context = self._timing_context() if context is None else context
        self._config = REGISTRY.acquire(self, (self.network, self.optimize, self.model, context))

    # ------------------------------------------------------------------ properties
    @property
    def in_features(self) -> int:
        """Length of the input's last dimension."""
        return self.network.in_features

    @property
    def out_features(self) -> int:
        """Length of the output's last dimension."""
        return self.network.out_features

    @property
    def num_params(self) -> int:
        """Number of network parameters (bias excluded), equal to ``network.num_params``."""
        return self.network.num_params

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"params={self.num_params}, bias={self.bias is not None}, strategy={self.strategy!r}, "
            f"network={self.network.signature}"
        )

    # ------------------------------------------------------------------ planning
    def plan(
        self, batch: int, *, dtype: torch.dtype | None = None, device: torch.device | None = None
    ) -> Plan:
        """The plan for ``batch`` input rows (default: the parameters' dtype and device).

        As planned, before any timing: where ``"auto"`` timed the sequential strategy's two
        paths, ``decision(batch).plan`` is the plan as it runs.
        """
        own_dtype, own_device, _ = self._tensor_info()
        dtype = dtype or own_dtype
        device = torch.device(device) if device is not None else own_device
        return plan_for(self._config, batch, dtype_name(dtype), device.type)

    def decision(
        self,
        batch: int,
        *,
        training: bool | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        measure: bool = False,
    ) -> Decision:
        """The strategy this layer runs for ``batch`` rows, and why.

        The same look-up the forward pass makes, so the answer is what runs. It never times
        unless ``measure=True``: then, for ``strategy="auto"`` where the cost model's two
        predictions are close (or ``"autotune"``), both strategies are timed now — as the first
        forward pass at this size would — and the faster is recorded and run from then on.

        Parameters
        ----------
        batch
            Rows of the flattened input (all leading dimensions multiplied).
        training
            Rank a training step (default: as a forward pass now would — gradients enabled
            and the tensors requiring them).
        dtype, device
            Default: the parameters'.
        measure
            Time the strategies now if the decision needs a timing not yet made.
        """
        own_dtype, own_device, needs_grad = self._tensor_info()
        if training is None:  # as the forward pass decides
            training = torch.is_grad_enabled() and needs_grad
        dtype = dtype or own_dtype
        device = torch.device(device) if device is not None else own_device
        if measure:
            self._ensure_timed(batch, dtype, device, training)
        return decide(
            self._config,
            batch,
            dtype_name(dtype),
            device.type,
            training,
            self.strategy,
            self._times_every_size,
        )

    def cost(
        self, batch: int = 64, *, mode: Mode = "training", measure: bool = False
    ) -> CostReport:
        """The [`cost`][tnlayers.cost] report of this layer at ``batch`` rows.

        Its chosen strategy and reason are this layer's [`decision`][tnlayers.TNLinear.decision]:
        what the forward pass runs (``measure=True`` times first where a timing decides).
        """
        return self.rows_cost(batch, mode=mode, measure=measure)

    def rows_cost(self, rows: int, *, mode: Mode = "training", measure: bool = False) -> CostReport:
        """The cost report for ``rows`` rows of the flattened contraction input.

        The same as [`cost`][tnlayers.TNLinear.cost] for linear layers; for a convolution the
        rows are ``batch · H_out · W_out`` unfolded patches. What ``summary()`` and
        ``compress()`` ask, since they count rows by running the model.
        """
        if mode not in ("training", "inference"):
            raise OptionError(f"mode must be 'training' or 'inference', got {mode!r}")
        found = self.decision(rows, training=mode == "training", measure=measure)
        report = network_report(
            found.plan, mode, found.strategy, found.reason, found.basis, found.measured_s
        )
        # The layer's own count: a circuit's parameters are its angles, not its gate entries.
        return dataclasses.replace(report, params=self.num_params)

    def chosen_strategy(
        self, batch: int, *, training: bool | None = None, measure: bool = False
    ) -> Strategy:
        """The strategy run for ``batch`` rows (grad mode: the current one by default).

        A look-up, never a timing unless ``measure=True``; see
        [`decision`][tnlayers.TNLinear.decision].
        """
        return self.decision(batch, training=training, measure=measure).strategy

    def _ensure_timed(
        self, batch: int, dtype: torch.dtype, device: torch.device, training: bool
    ) -> None:
        """Time both strategies for this key if the layer's option needs it and none was made."""
        if self.strategy not in ("auto", "autotune"):
            return
        key = (self._config, batch, dtype_name(dtype), device.type, training)
        if REGISTRY.timing(key) is not False:
            return
        # decide() holds the rule: it reports "untimed" exactly where the first call must time.
        found = decide(*key, self.strategy, self._times_every_size)
        pending = found.basis == "untimed"
        REGISTRY.record(key, self._autotune(batch, dtype, device, training) if pending else None)

    def _execution(
        self, batch: int, dtype: torch.dtype, device: torch.device, training: bool
    ) -> Execution:
        if compiling():
            return execution(
                self._config, batch, dtype_name(dtype), device.type, training, self.strategy
            )
        # The last call's execution, while nothing it was decided from has changed: the same
        # look-up as below, without its two locked registry queries (batch-1 calls are mostly
        # such overhead).
        memo = self.__dict__.get("_last_execution")
        key = (self._config, batch, dtype, device, training, self.strategy, REGISTRY.generation)
        if memo is not None and memo[0] == key:
            return memo[1]
        self._ensure_timed(batch, dtype, device, training)
        found = execution(
            self._config, batch, dtype_name(dtype), device.type, training, self.strategy
        )
        generation = REGISTRY.generation  # after any timing this call recorded
        self.__dict__["_last_execution"] = ((*key[:-1], generation), found)
        return found

    def _autotune(
        self, batch: int, dtype: torch.dtype, device: torch.device, training: bool
    ) -> Timing:
        x = self._timing_input(batch, dtype, device)
        dtype_key = dtype_name(dtype)
        # Detached copies: timing must not touch the parameters' .grad.
        values = [p.detach().clone().requires_grad_(training) for p in self.network_tensors()]
        runs: dict[str, Callable[[], object]] = {}
        the_plan = plan_for(self._config, batch, dtype_key, device.type)
        for run_name, (name, fewest) in timed_runs(the_plan).items():
            execution = (name, programs(self._config, batch, dtype_key, device.type, name, fewest))
            if training:
                runs[run_name] = partial(self._time_training_step, execution, x, values)
            elif name == "materialize":
                # Inference reuses the cached weight, so only the GEMM recurs per call.
                with torch.no_grad():
                    weight = self._weight(execution[1][0], use_cache=False, values=values)
                runs[run_name] = partial(self._apply_execution, execution, x, False, values, weight)
            else:
                runs[run_name] = partial(self._apply_execution, execution, x, False, values)
        with torch.set_grad_enabled(training):
            return time_strategies(runs, device)

    def _time_training_step(
        self, execution: Execution, x: torch.Tensor, values: list[torch.Tensor]
    ) -> None:
        out = self._apply_execution(execution, x, use_cache=False, values=values)
        # A real scalar for complex networks too: both parts get a gradient, as in training.
        loss = torch.view_as_real(out).sum() if out.is_complex() else out.sum()
        torch.autograd.grad(loss, values)

    @property
    def weight(self) -> torch.Tensor:
        """The materialized weight in ``nn.Linear``'s layout, ``(out_features, in_features)``.

        For code written for ``nn.Linear`` that reads ``layer.weight`` — its dtype, device or
        values (Hugging Face models read ``.weight.dtype`` of some projections). Computed on
        each access (one contraction, differentiable: gradients reach the network's tensors).
        It is not a parameter: writing into it changes nothing — set the network's tensors.
        The forward pass does not read it.
        """
        return self.to_dense()

    # ------------------------------------------------------------------ execution
    def to_dense(self) -> torch.Tensor:
        """The materialized weight, shape ``(out_features, in_features)``; differentiable."""
        tensors = dict(zip(self._names, self.network_tensors(), strict=True))
        return contract_weight(self.network, tensors, optimize=self.optimize)

    def _weight(
        self, program: Program, use_cache: bool, values: list[torch.Tensor] | None = None
    ) -> torch.Tensor:
        if values is not None or not use_cache or compiling():
            operands = self.network_tensors() if values is None else values
            return layer_weight(self.network, run_program(program, operands))
        sources = self.weight_sources()
        needs_grad = torch.is_grad_enabled() and any(s.requires_grad for s in sources)
        return self._weight_cache.get(
            sources,
            needs_grad,
            lambda: layer_weight(self.network, run_program(program, self.network_tensors())),
        )

    def _timing_context(self) -> tuple[object, ...]:
        """What besides the network decides which strategy times faster (nothing here)."""
        return ()

    def _timing_input(self, rows: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """A random input of ``rows`` rows for timing the strategies."""
        return torch.randn(rows, self.in_features, dtype=dtype, device=device)

    def _apply_execution(
        self,
        execution: Execution,
        x: torch.Tensor,
        use_cache: bool = True,
        values: list[torch.Tensor] | None = None,
        weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Run ``execution`` on a layer input as timing sees it (subclasses change the input)."""
        return self._run(execution, x, use_cache, values, weight)

    def _run(
        self,
        execution: Execution,
        x2: torch.Tensor,
        use_cache: bool = True,
        values: list[torch.Tensor] | None = None,
        weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Run ``execution`` on a 2-D input ``(batch, in_features)``.

        ``values`` replace the tensors, ``weight`` the materialized weight (for timing).
        """
        strategy, programs = execution
        if strategy == "materialize":
            if weight is None:
                weight = self._weight(programs[0], use_cache, values)
            return apply_weight(self.network, x2, weight, self.bias, programs[-1])
        tensors = self.network_tensors() if values is None else values
        return apply_program(self.network, x2, programs[0], tensors, self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the layer to ``x`` of shape ``(..., in_features)``."""
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            legs = " × ".join(
                f"{leg} ({size})"
                for leg, size in zip(self.network.inputs, self.network.in_dims, strict=True)
            )
            got = "a scalar" if x.dim() == 0 else f"shape {tuple(x.shape)}"
            raise ShapeError(
                f"input has {got}, but the layer expects (..., {self.in_features}): "
                f"its last dimension feeds the input legs {legs}"
            )
        flat = x.dim() == 2  # the common case: skip two reshapes (~1 µs each at batch 1)
        x2 = x if flat else x.reshape(-1, self.in_features)
        execution, autocast, param_dtype = self._prepare(x, x2.shape[0])
        if autocast:
            y = self._run_autocast(execution, x2, param_dtype)
        else:
            y = self._run(execution, x2)
        return y if flat else y.reshape(*x.shape[:-1], self.out_features)

    def _prepare(self, x: torch.Tensor, rows: int) -> tuple[Execution, bool, torch.dtype]:
        """Check the input's dtype and look up the execution for ``rows`` input rows.

        Returns the execution, whether autocast is on, and the parameters' dtype.
        """
        dtype, _, needs_grad = self._tensor_info()
        autocast = torch.is_autocast_enabled(x.device.type)
        if not autocast and x.dtype != dtype:
            raise ShapeError(
                f"input dtype {x.dtype} does not match the layer's parameters ({dtype}); "
                f"convert the input or call layer.to({dtype})"
            )
        training = torch.is_grad_enabled() and needs_grad
        if compiling():
            # Compiled graphs plan per power-of-two bucket: with dynamic shapes the batch is
            # symbolic, and these comparisons become guards instead of one graph per size.
            bucket = 1
            while rows > bucket:
                bucket *= 2
            rows = bucket
        return self._execution(rows, dtype, x.device, training), autocast, dtype

    def _run_autocast(
        self, execution: Execution, x2: torch.Tensor, param_dtype: torch.dtype
    ) -> torch.Tensor:
        # Contractions between small cores run in the parameters' precision (fp32 accumulation
        # and fp32 intermediates); only the final large GEMM runs in the autocast dtype.
        device_type = x2.device.type
        low = torch.get_autocast_dtype(device_type)
        with torch.autocast(device_type, enabled=False):
            if execution[0] == "materialize":
                weight = self._weight(execution[1][0], use_cache=True)
                bias = None if self.bias is None else self.bias.to(low)
                return apply_weight(
                    self.network, x2.to(low), weight.to(low), bias, execution[1][-1]
                )
            return self._run(execution, x2.to(param_dtype)).to(low)


class TNLinear(TNLinearBase):
    r"""A linear layer ``y = x Wᵀ + b`` whose weight ``W`` is a tensor network.

    Each network tensor is one `nn.Parameter` (in ``self.tensors``, keyed by tensor name), so
    optimisers, ``state_dict``, DDP, autocast and ``torch.compile`` work as for ``nn.Linear``.
    The contraction plan is computed once per (batch size, dtype, device, grad mode) and cached;
    the forward pass then only issues torch calls. In inference the materialized weight is cached
    and reused only while the tensors are bit-identical to those it was built from, so no way of
    changing a parameter can leave it stale; [`cached`][tnlayers.cached] skips even that check
    inside an explicit block.

    Parameters
    ----------
    network
        The weight's network.
    bias
        Add a learnable bias of length ``out_features`` (initialised like ``nn.Linear``'s).
    strategy
        ``"model"`` ranks *sequential* and *materialize* by the cost model's predicted time per
        batch size and grad mode (deterministic). ``"auto"`` (default) does the same but, where
        the two predictions are within ``AUTO_TIMING_MARGIN`` (1.5×) of each other, times both
        once (on detached copies, leaving ``.grad`` alone) and keeps the faster; where the
        plan's *sequential* path joins groups of tensors first (a bet of the model), it times
        that path against the one with the fewest FLOPs too. ``"autotune"`` always times.
        ``"sequential"`` or ``"materialize"`` force one (*sequential* on the model's path).
    optimize
        opt_einsum path optimiser.
    init
        ``"variance"``: every tensor drawn so that the materialized weight has ``nn.Linear``'s
        variance (families add ``"paper"``, their authors' scheme).
    std
        Standard deviation of the initial materialized weight (default: ``nn.Linear``'s).
    model
        Machine model for ``"auto"`` (default: chosen by the input's device type).
    device, dtype
        Where and in what dtype to create the parameters.
    generator
        Random generator for a reproducible initialisation.

    Shapes
    ------
    - input: ``(..., in_features)``
    - output: ``(..., out_features)``

    Examples
    --------
    >>> import torch, tnlayers
    >>> layer = tnlayers.TNLinear(tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), bond=2))
    >>> layer(torch.randn(32, 784)).shape
    torch.Size([32, 256])
    >>> layer.num_params  # cores only, the bias not counted
    288
    """

    INITS: tuple[str, ...] = ("variance",)
    """The ``init`` schemes this class accepts."""

    def __init__(
        self,
        network: Network,
        bias: bool = True,
        *,
        strategy: StrategyOption = "auto",
        optimize: OptimizeKind = "best",
        init: str = "variance",
        std: float | None = None,
        model: MachineModel | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(
            network,
            bias,
            strategy=strategy,
            optimize=optimize,
            model=model,
            device=device,
            dtype=dtype,
        )
        if init not in self.INITS:
            choices = " or ".join(repr(name) for name in self.INITS)
            raise OptionError(f"unknown init {init!r}; choose {choices}")
        self.init = init
        self._std = std
        self.tensors = nn.ParameterDict(
            {
                name: nn.Parameter(torch.empty(shape, device=device, dtype=dtype))
                for name, shape in network.shapes.items()
            }
        )
        self.reset_parameters(generator=generator)

    # ------------------------------------------------------------------ construction helpers
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Re-initialise: variance-preserving tensors, ``nn.Linear``-style bias."""
        tensors = cast("MutableMapping[str, torch.Tensor]", self.tensors)
        variance_preserving_(tensors, self.network, self._std, generator=generator)
        self._reset_bias(generator)

    @classmethod
    def from_tensors(
        cls,
        network: Network,
        tensors: Mapping[str, torch.Tensor],
        bias: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> TNLinear:
        """Build a layer holding copies of given tensor values (and bias, if any)."""
        first = next(iter(tensors.values()))
        layer = cls(
            network, bias=bias is not None, dtype=first.dtype, device=first.device, **kwargs
        )
        layer._copy_values(tensors, bias)
        return layer

    @torch.no_grad()
    def _copy_values(
        self, tensors: Mapping[str, torch.Tensor], bias: torch.Tensor | None = None
    ) -> None:
        """Copy given values into the tensors (and bias), checking names and shapes."""
        network = self.network
        for name in network.tensor_names:
            if name not in tensors:
                raise ShapeError(f"no value given for tensor {name!r}")
            value = tensors[name]
            if tuple(value.shape) != network.shape(name):
                raise ShapeError(
                    f"tensor {name!r} has legs {network.legs(name)} of sizes "
                    f"{network.shape(name)}, but the value given has shape {tuple(value.shape)}"
                )
            self.tensors[name].copy_(value)
        if bias is not None and self.bias is not None:
            self.bias.copy_(bias)

    def network_tensors(self) -> list[torch.Tensor]:
        """The parameters in ``self.tensors``, in network order (parametrised ones computed).

        ParameterDict sorts its keys, and its ``__getitem__`` costs microseconds per call, so
        read its underlying dict by the network's tensor names. A parametrised dict (see
        ``torch.nn.utils.parametrize``) changes its class and computes its tensors on access.
        """
        # _modules directly: Module.__getattr__ costs ~0.6 µs per call, and assigning
        # ``self.tensors`` goes through _modules anyway.
        tensors = self._modules["tensors"]
        if type(tensors) is nn.ParameterDict:
            params = tensors._parameters
            return [params[name] for name in self._names]  # type: ignore[misc]
        return [getattr(tensors, name) for name in self._names]


def compiling() -> bool:
    return torch.compiler.is_compiling()
