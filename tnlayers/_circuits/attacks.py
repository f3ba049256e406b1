"""Analyse: noise on data and attacks on parameters (Chen et al. 2024, §5).

- [`Noise`][tnlayers.circuits.Noise]: Gaussian, uniform or mixed (their sum), symmetric about 0
  or not.
- [`corrupt`][tnlayers.circuits.corrupt]: the noisy-data variants of a data set.
- [`ParameterAttack`][tnlayers.circuits.ParameterAttack]: noise on chosen layers' parameters, in the
  paper's two forms, transient or persistent, at training and/or at test time.

Attacks attach to layers with torch's own mechanisms (parametrisations, forward hooks, optimiser
step hooks) and detach cleanly; the layers know nothing about them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.nn.utils import parametrize

from .._core.errors import OptionError
from .givens_layer import GivensLinear

__all__ = ["NOISE_VARIANTS", "Noise", "ParameterAttack", "corrupt"]

NoiseKind = Literal["gaussian", "uniform", "mixed"]


@dataclass(frozen=True)
class Noise:
    """A noise distribution of the paper's six kinds.

    ============ ============================ ===========================
    kind         symmetric                    asymmetric
    ============ ============================ ===========================
    gaussian     ``N(0, s²)``                 half-normal ``|N(0, s²)|``
    uniform      ``U(−s, s)``                 ``U(0, s)``
    mixed        gaussian + uniform (same s)  gaussian + uniform (same s)
    ============ ============================ ===========================

    Attributes
    ----------
    kind
        ``"gaussian" | "uniform" | "mixed"``.
    symmetric
        Whether the density is symmetric about 0 (asymmetric noise has a positive mean).
    scale
        ``s``: the Gaussian's standard deviation and the uniform's half-width (or width).
    """

    kind: NoiseKind = "gaussian"
    symmetric: bool = True
    scale: float = 0.1

    def __post_init__(self) -> None:
        if self.kind not in ("gaussian", "uniform", "mixed"):
            raise OptionError(
                f"unknown noise kind {self.kind!r}; choose 'gaussian', 'uniform' or 'mixed'"
            )
        if not self.scale >= 0:
            raise OptionError(f"noise scale must be ≥ 0, got {self.scale}")

    @property
    def name(self) -> str:
        """``"symmetric gaussian"``, ``"asymmetric mixed"``, …"""
        return f"{'symmetric' if self.symmetric else 'asymmetric'} {self.kind}"

    def _gaussian_moments(self) -> tuple[float, float]:
        s = self.scale
        if self.symmetric:
            return 0.0, s * s
        return s * math.sqrt(2 / math.pi), s * s * (1 - 2 / math.pi)

    def _uniform_moments(self) -> tuple[float, float]:
        s = self.scale
        return (0.0, s * s / 3) if self.symmetric else (s / 2, s * s / 12)

    @property
    def mean(self) -> float:
        """The distribution's mean."""
        return sum(m for m, _ in self._moments())

    @property
    def variance(self) -> float:
        """The distribution's variance."""
        return sum(v for _, v in self._moments())

    def _moments(self) -> list[tuple[float, float]]:
        parts = {
            "gaussian": [self._gaussian_moments()],
            "uniform": [self._uniform_moments()],
            "mixed": [self._gaussian_moments(), self._uniform_moments()],
        }
        return parts[self.kind]

    def sample(
        self,
        shape: Iterable[int],
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """A tensor of independent draws."""
        shape = tuple(shape)
        out = torch.zeros(shape, dtype=dtype, device=device)
        if self.kind in ("gaussian", "mixed"):
            g = torch.randn(shape, dtype=dtype, device=device, generator=generator) * self.scale
            out = out + (g if self.symmetric else g.abs())
        if self.kind in ("uniform", "mixed"):
            u = torch.rand(shape, dtype=dtype, device=device, generator=generator)
            out = out + (u * 2 - 1 if self.symmetric else u) * self.scale
        return out

    def like(self, tensor: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draws of ``tensor``'s shape, dtype and device."""
        return self.sample(
            tensor.shape, dtype=tensor.dtype, device=tensor.device, generator=generator
        )


#: The paper's six data-noise types (Chen et al. 2024, §5.1), at a unit scale; use
#: ``dataclasses.replace`` to rescale.
NOISE_VARIANTS: tuple[Noise, ...] = tuple(
    Noise(kind, symmetric, 1.0)
    for symmetric in (True, False)
    for kind in ("gaussian", "uniform", "mixed")
)


def corrupt(
    x: torch.Tensor,
    noise: Noise,
    *,
    sample_fraction: float = 1.0,
    feature_fraction: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A noisy copy of a data set: random samples, on random features, get additive noise.

    Parameters
    ----------
    x
        ``(samples, ...)`` data.
    noise
        The noise added.
    sample_fraction
        Probability that a sample is corrupted (``p_s``).
    feature_fraction
        Probability that a feature (pixel) of a corrupted sample is (``p_f``).
    generator
        For reproducible corruption.

    Returns
    -------
    torch.Tensor
        Same shape as ``x``; ``x`` itself is not changed.
    """
    for name, value in (
        ("sample_fraction", sample_fraction),
        ("feature_fraction", feature_fraction),
    ):
        if not 0 <= value <= 1:
            raise OptionError(f"{name} must be in [0, 1], got {value}")
    pick = lambda shape: torch.rand(shape, generator=generator, device=x.device)  # noqa: E731
    samples = pick((x.shape[0],) + (1,) * (x.dim() - 1)) < sample_fraction
    features = pick(x.shape) < feature_fraction
    return x + noise.like(x, generator) * (samples & features).to(x.dtype)


class _AddNoise(nn.Module):
    """A parametrisation ``p ↦ p + ε`` with ε redrawn at every access, when its phase is on."""

    def __init__(self, noise: Noise, phase: str, generator: torch.Generator | None) -> None:
        super().__init__()
        self.noise, self.phase, self.generator = noise, phase, generator

    def active(self) -> bool:
        return self.phase == "both" or (self.phase == "train") == self.training

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        return value + self.noise.like(value, self.generator) if self.active() else value


class ParameterAttack:
    """Noise on chosen layers' parameters, in Chen et al.'s two forms (Chen et al. 2024, §5).

    Form ① ``σ(θ + ε)``: the noise enters the parameters before the nonlinearity: a Givens
    layer's angles become ``θ + ε`` inside cos and sin; other targets have every parameter named
    ``weight`` (e.g. the Linear of a hidden block) become ``W + ε``.

    Form ② ``σ(θ) + ε``: the noise is added after the nonlinearity: a Givens layer's gate
    entries become ``cos θ + ε`` and ``± sin θ + ε`` (each of the four entries of every 2 × 2
    block gets its own draw, which breaks orthogonality); other targets get ε added to their
    output (for the baselines' blocks, after the activation).

    Timing: ``"transient"`` redraws ε at every forward pass in the active ``phase``;
    ``"persistent"`` (form ① only) adds a fresh ε to the stored parameters after every optimiser
    step, so the noise accumulates (call [`attach`][tnlayers.circuits.ParameterAttack.attach]).

    Parameters
    ----------
    model
        The model.
    targets
        Names of the attacked submodules (as in ``model.named_modules()``).
    form
        ``1`` or ``2``.
    noise
        The noise distribution.
    timing
        ``"transient"`` or ``"persistent"``.
    phase
        For transient attacks: when they act, ``"train"`` (training mode), ``"test"``
        (eval mode) or ``"both"``.
    generator
        For reproducible noise.

    Examples
    --------
    >>> import torch, tnlayers
    >>> from tnlayers.models import QRFNN
    >>> model = QRFNN(4, 3)
    >>> noise = tnlayers.circuits.Noise("gaussian", symmetric=False, scale=0.5)
    >>> with tnlayers.circuits.ParameterAttack(model, ["stack.circuits.0"], form=1, noise=noise):
    ...     logits = model(torch.randn(8, 4))  # angles perturbed during this forward
    """

    def __init__(
        self,
        model: nn.Module,
        targets: Iterable[str],
        *,
        form: Literal[1, 2],
        noise: Noise,
        timing: Literal["transient", "persistent"] = "transient",
        phase: Literal["train", "test", "both"] = "train",
        generator: torch.Generator | None = None,
    ) -> None:
        if form not in (1, 2):
            raise OptionError(f"attack form must be 1 (σ(θ + ε)) or 2 (σ(θ) + ε), got {form!r}")
        if timing not in ("transient", "persistent"):
            raise OptionError(f"timing must be 'transient' or 'persistent', got {timing!r}")
        if timing == "persistent" and form != 1:
            raise OptionError(
                "a persistent attack adds noise to the stored parameters, which is form 1; "
                "form 2 noise acts after the nonlinearity and can only be transient"
            )
        if phase not in ("train", "test", "both"):
            raise OptionError(f"phase must be 'train', 'test' or 'both', got {phase!r}")
        modules = dict(model.named_modules())
        targets = list(targets)
        missing = [t for t in targets if t not in modules]
        if missing or not targets:
            attackable = [n for n, m in modules.items() if n and _attackable(m)]
            raise OptionError(
                f"no submodule named {missing or targets!r} in the model; attackable ones: "
                f"{attackable}"
            )
        self.model, self.form, self.noise = model, form, noise
        self.timing, self.phase, self.generator = timing, phase, generator
        self.targets = {t: modules[t] for t in targets}
        self._undo: list = []
        if timing == "transient":
            self._attach_transient()

    # ------------------------------------------------------------------ which parameters
    def parameters(self) -> dict[str, tuple[nn.Module, str]]:
        """The form-① parameters: ``"target.param" → (owning module, parameter name)``."""
        found: dict[str, tuple[nn.Module, str]] = {}
        for name, module in self.targets.items():
            if isinstance(module, GivensLinear):
                found[f"{name}.angles"] = (module, "angles")
                continue
            for sub_name, sub in module.named_modules():
                if isinstance(sub, GivensLinear):
                    found[_join(name, sub_name, "angles")] = (sub, "angles")
                elif isinstance(getattr(sub, "weight", None), nn.Parameter):
                    found[_join(name, sub_name, "weight")] = (sub, "weight")
        if not found:
            raise OptionError(f"targets {list(self.targets)} have no angles or weights to attack")
        return found

    def _attach_transient(self) -> None:
        if self.form == 1:
            for module, pname in self.parameters().values():
                parametrize.register_parametrization(
                    module, pname, _AddNoise(self.noise, self.phase, self.generator)
                )
                self._undo.append(
                    lambda m=module, p=pname: parametrize.remove_parametrizations(
                        m, p, leave_parametrized=False
                    )
                )
            return
        for module in self.targets.values():
            givens = [m for m in module.modules() if isinstance(m, GivensLinear)]
            if givens:
                for layer in givens:
                    layer.block_transform = _AddNoise(self.noise, self.phase, self.generator)
                    layer.block_transform.train(layer.training)
                    self._undo.append(lambda g=layer: setattr(g, "block_transform", None))
            else:
                hook = module.register_forward_hook(self._output_hook)
                self._undo.append(hook.remove)

    def _output_hook(self, module: nn.Module, args: object, output: torch.Tensor) -> torch.Tensor:
        active = self.phase == "both" or (self.phase == "train") == module.training
        return output + self.noise.like(output, self.generator) if active else output

    # ------------------------------------------------------------------ persistent
    def attach(self, optimizer: torch.optim.Optimizer) -> None:
        """Persistent attacks: add fresh noise to the targets after every ``optimizer.step()``."""
        if self.timing != "persistent":
            raise OptionError("attach() is for persistent attacks; transient ones act on forward")
        params = [getattr(m, p) for m, p in self.parameters().values()]

        def perturb(*_: object) -> None:
            with torch.no_grad():
                for p in params:
                    p.add_(self.noise.like(p, self.generator))

        self._undo.append(optimizer.register_step_post_hook(perturb).remove)

    def remove(self) -> None:
        """Detach the attack; transient noise stops, persistent noise already added stays."""
        while self._undo:
            self._undo.pop()()

    def __enter__(self) -> ParameterAttack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def _join(*parts: str) -> str:
    return ".".join(p for p in parts if p)


def _attackable(module: nn.Module) -> bool:
    return isinstance(module, GivensLinear | nn.Linear | nn.Sequential)
