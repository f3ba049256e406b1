"""Execute: QiMLP's layer (Zhang et al. 2025), a Kronecker-product sum with a Kronecker or
dense bias."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch import nn

from .._core.builders import Dims, kronecker
from .._core.errors import ArgumentTypeError, OptionError, ShapeError
from .._core.network import Network
from .._decompose.kron import KroneckerApproximation, nearest_kronecker
from .linear import TNLinear

__all__ = ["KronLinear"]

BiasForm = Literal["kron", "full"]
KronInit = Literal["variance", "paper"]


class KronLinear(TNLinear):
    r"""QiMLP's layer: ``y = x Wᵀ + b`` with ``W = Σ_{k=1}^{K} W_k^1 ⊗ … ⊗ W_k^M`` (eq. 4).

    Body ``m`` holds ``K`` factor matrices in one parameter ``tensors.body{m}`` of shape
    ``(K, p_m, q_m)`` (the released code's layout), with ``W = Σ_k A_1[k]ᵀ ⊗ … ⊗ A_M[k]ᵀ``.
    The layer runs either through the bodies one mode product at a time (``O(batch · N · Σ p_m)``
    per term) or through the materialized ``W``, whichever the cost model predicts faster.

    Parameters
    ----------
    in_features, out_features
        Sizes of the input and output.
    bodies
        Number of factors ``M`` when their sizes are not given.
    terms
        Number of Kronecker products ``K`` (the paper's copies ``k``).
    in_dims, out_dims
        Factor sizes ``p_m`` / ``q_m`` (products equal to the features; rectangular factors are
        fine). Default: QiMLP's rule, every factor as large as possible
        (784 → (28, 28), (7, 7, 16), (4, 4, 7, 7)).
    bias
        Add a learnable bias (as ``nn.Linear``'s ``bias``).
    bias_form
        ``"kron"`` (default): ``b = β_1 ⊗ … ⊗ β_M`` (eq. 3, ``Σ q_m`` parameters, in
        ``bias_factors``); ``"full"``: a dense bias of ``out_features`` (the released code).
    bias_init
        For ``bias_form="kron"``: ``"normal"`` (``N(0, 0.1²)``, default) or ``"zeros"``. A zero
        Kronecker bias of two or more factors never moves: each factor's gradient is a product
        with the other, zero, factors. ``"zeros"`` therefore warns.
    init
        ``"variance"`` (default): the materialized ``W`` gets ``nn.Linear``'s variance for any
        ``M`` and ``K``. ``"paper"``: every factor entry ``N(0, 0.02²)`` as in the released code
        (``W``'s scale is then ``0.02^M √K``, tiny for ``M = 4``), and a zero dense bias.
    **kwargs
        Passed on to [`TNLinear`][tnlayers.TNLinear] (``strategy``, ``dtype``, ``device``, ...).

    Shapes
    ------
    - input: ``(..., in_features)``
    - output: ``(..., out_features)``

    Examples
    --------
    >>> layer = KronLinear(784, 784, bodies=2)
    >>> layer.network.in_dims, sum(p.numel() for p in layer.parameters())
    ((28, 28), 1624)
    >>> KronLinear(784, 784, bodies=3, terms=4).network.in_dims
    (7, 7, 16)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        bodies: int = 2,
        terms: int = 1,
        in_dims: Dims | None = None,
        out_dims: Dims | None = None,
        bias_form: BiasForm = "kron",
        bias_init: Literal["normal", "zeros"] = "normal",
        init: KronInit = "variance",
        **kwargs: Any,
    ) -> None:
        if not isinstance(bias, bool):
            raise ArgumentTypeError(
                f"bias must be True or False, got {bias!r} (the bias's form is bias_form=)"
            )
        if bias_form not in ("kron", "full"):
            raise OptionError(f"unknown bias_form {bias_form!r}; choose 'kron' or 'full'")
        if bias_init not in ("normal", "zeros"):
            raise OptionError(f"unknown bias_init {bias_init!r}; choose 'normal' or 'zeros'")
        if init not in ("variance", "paper"):
            raise OptionError(f"unknown init {init!r}; choose 'variance' or 'paper'")
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ArgumentTypeError(f"{name} must be a positive integer, got {value!r}")
        network = kronecker(
            in_features if in_dims is None else in_dims,
            out_features if out_dims is None else out_dims,
            terms,
            bodies=bodies if in_dims is None and out_dims is None else None,
        )
        for side, legs, features in (
            ("in", network.in_dims, in_features),
            ("out", network.out_dims, out_features),
        ):
            if math.prod(legs) != features:
                raise ShapeError(
                    f"{side}_dims {legs} multiply to {math.prod(legs)}, but {side}_features is "
                    f"{features}: Kronecker factors must multiply to the feature size exactly"
                )
        kron_bias = bias and bias_form == "kron"
        if kron_bias and bias_init == "zeros" and len(network.out_dims) > 1:
            warnings.warn(
                "a zero-initialised Kronecker bias of several factors stays zero for ever (each "
                "factor's gradient is a product with the other, zero, factors); use "
                "bias_init='normal' or bias_form='full'",
                UserWarning,
                stacklevel=2,
            )
        super().__init__(network, bias=bias and bias_form == "full", init=init, **kwargs)
        self.terms = terms
        self.bias_form: BiasForm | None = bias_form if bias else None
        self._bias_init = bias_init
        if kron_bias:
            dtype, device, _ = self._tensor_info()
            self.bias_factors = nn.ParameterList(
                [nn.Parameter(torch.empty(q, dtype=dtype, device=device)) for q in network.out_dims]
            )
            self._reset_bias_factors(kwargs.get("generator"))

    # ------------------------------------------------------------------ parameters
    INITS = ("variance", "paper")

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Re-initialise the factors (``init``) and the bias (``bias`` / ``bias_init``)."""
        if self.init == "variance":
            super().reset_parameters(generator=generator)
        else:
            with torch.no_grad():
                for p in self.network_tensors():
                    p.normal_(0.0, 0.02, generator=generator)
                if self.bias is not None:
                    self.bias.zero_()
        if "bias_factors" in self._modules:  # created after TNLinear's constructor resets
            self._reset_bias_factors(generator)

    def _reset_bias_factors(self, generator: torch.Generator | None = None) -> None:
        with torch.no_grad():
            for beta in self.bias_factors:
                if self._bias_init == "zeros":
                    beta.zero_()
                else:
                    beta.normal_(0.0, 0.1, generator=generator)

    def kron_bias(self) -> torch.Tensor | None:
        """The bias vector ``β_1 ⊗ … ⊗ β_M`` (``bias_form="kron"``), else ``None``."""
        if self.bias_form != "kron":
            return None
        factors = list(self.bias_factors)
        out = factors[0]
        for beta in factors[1:]:
            out = torch.kron(out, beta)
        return out

    def extra_repr(self) -> str:
        return super().extra_repr() + f", terms={self.terms}, bias_form={self.bias_form!r}"

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the layer to ``x`` of shape ``(..., in_features)``."""
        y = super().forward(x)
        bias = self.kron_bias()
        return y if bias is None else y + bias.to(y.dtype)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_approximation(
        cls,
        approximation: KroneckerApproximation,
        bias: torch.Tensor | None = None,
        *,
        bias_form: BiasForm = "full",
        **kwargs: Any,
    ) -> KronLinear:
        """A layer holding the factors of a [`nearest_kronecker`][tnlayers.nearest_kronecker]
        result, with ``bias`` (dense) as a full bias, or as its nearest Kronecker product."""
        network = approximation.network
        first = approximation.factors[0]
        kwargs = {"dtype": first.dtype, "device": first.device, **kwargs}

        layer = cls(
            network.in_features,
            network.out_features,
            terms=first.shape[0],
            in_dims=network.in_dims,
            out_dims=network.out_dims,
            bias=bias is not None,
            bias_form=bias_form,
            **kwargs,
        )
        layer._copy_values(approximation.tensors(), bias if bias_form == "full" else None)
        if bias is not None and bias_form == "kron":
            assert bias is not None
            ones = (1,) * len(network.out_dims)
            fit = nearest_kronecker(bias.detach()[:, None], ones, network.out_dims)
            with torch.no_grad():
                for beta, factor in zip(layer.bias_factors, fit.factors, strict=True):
                    beta.copy_(factor.reshape(-1))
        return layer

    @classmethod
    def from_tensors(
        cls,
        network: Network,
        tensors: Mapping[str, torch.Tensor],
        bias: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> KronLinear:
        """A layer from values of a [`kronecker`][tnlayers.kronecker] network (dense bias)."""
        names = network.tensor_names
        factors: tuple[torch.Tensor, ...]
        if len(names) == 1:
            factors = (tensors[names[0]].unsqueeze(0),)
        else:
            factors = tuple(tensors[name] for name in names)
        return cls.from_approximation(KroneckerApproximation(factors, 0.0), bias, **kwargs)

    @classmethod
    def from_linear(
        cls,
        linear: nn.Linear,
        terms: int = 1,
        *,
        bodies: int = 2,
        in_dims: Sequence[int] | None = None,
        out_dims: Sequence[int] | None = None,
        bias_form: BiasForm = "full",
        **kwargs: Any,
    ) -> KronLinear:
        """A Kronecker layer initialised from a trained ``nn.Linear`` by
        [`nearest_kronecker`][tnlayers.nearest_kronecker] (its error: call that function)."""
        if not isinstance(linear, nn.Linear):
            raise ArgumentTypeError(f"from_linear needs an nn.Linear, got {type(linear).__name__}")
        approximation = nearest_kronecker(
            linear.weight,
            linear.in_features if in_dims is None else in_dims,
            linear.out_features if out_dims is None else out_dims,
            terms,
            bodies=bodies if in_dims is None and out_dims is None else None,
        )
        bias = None if linear.bias is None else linear.bias.detach()
        return cls.from_approximation(approximation, bias, bias_form=bias_form, **kwargs)
