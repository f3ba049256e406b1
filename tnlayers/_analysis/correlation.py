r"""Analyse: QiMLP's strong-correlation measure of two-body layer outputs (eqs. 7–12).

A layer output ``y`` of length ``N_A·N_B`` is read as a pure two-body state ``ψ = y / ‖y‖``.
Its total correlation ``I = S(ρ_A) + S(ρ_B) − S(ρ_AB)`` (eq. 10) is compared with the classical
correlation ``S(ρ_{A+B})`` of the equal-weight ensemble ``½ρ_A + ½ρ_B`` (eq. 11); the strong
correlation is ``C = I − S(ρ_{A+B})`` (eq. 12), and a sample counts as strongly correlated (SC)
when ``C > 0``, else as classically correlated (CC).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from .._core.draw import pyplot
from .._core.errors import OptionError, ShapeError
from .._layers.kron import KronLinear

__all__ = [
    "Correlation",
    "correlation_report",
    "plot_correlation",
    "strong_correlation",
    "von_neumann_entropy",
]

Reading = Literal["partial-trace", "product"]
EIGEN_FLOOR = 1e-12


def von_neumann_entropy(rho: torch.Tensor, eps: float = EIGEN_FLOOR) -> torch.Tensor:
    r"""``S(ρ) = −Σ λ ln λ`` over eigenvalues ``λ > eps`` (natural log, eq. 7).

    Parameters
    ----------
    rho
        Density matrices ``(..., d, d)`` (symmetric or Hermitian).

    Returns
    -------
    torch.Tensor
        ``(...)`` entropies in nats.
    """
    values = torch.linalg.eigvalsh(rho)
    return _entropy_of_spectrum(values, eps)


def _entropy_of_spectrum(values: torch.Tensor, eps: float = EIGEN_FLOOR) -> torch.Tensor:
    kept = torch.where(values > eps, values, torch.ones_like(values))
    return -(kept * kept.log()).sum(-1)


@dataclass(frozen=True)
class Correlation:
    """Per-sample entropies and correlations, each a tensor of shape ``(n,)`` in nats.

    Attributes
    ----------
    entropy_a, entropy_b, entropy_ab
        ``S(ρ_A)``, ``S(ρ_B)``, ``S(ρ_AB)``.
    total
        ``I(ρ_AB) = S(ρ_A) + S(ρ_B) − S(ρ_AB)`` (eq. 10).
    classical
        ``S(ρ_{A+B})`` with ``ρ_{A+B} = ½ρ_A + ½ρ_B`` (eq. 11).
    strong
        ``C(ρ_AB) = I(ρ_AB) − S(ρ_{A+B})`` (eq. 12).
    reading
        How ``ρ_A`` and ``ρ_B`` were obtained.
    skipped
        Zero outputs left out (they are no state); only
        [`correlation_report`][tnlayers.analysis.correlation_report] skips,
        ``strong_correlation`` raises.
    """

    entropy_a: torch.Tensor
    entropy_b: torch.Tensor
    entropy_ab: torch.Tensor
    total: torch.Tensor
    classical: torch.Tensor
    strong: torch.Tensor
    reading: Reading
    skipped: int = 0

    @property
    def strong_fraction(self) -> float:
        """Fraction of samples with ``C > 0`` (SC); the rest are CC."""
        return float((self.strong > 0).double().mean())


def strong_correlation(
    y: torch.Tensor,
    dims: tuple[int, int],
    *,
    reading: Reading = "partial-trace",
    steps: int = 300,
) -> Correlation:
    r"""QiMLP's strong correlation of each row of ``y``, read as a two-body state.

    Parameters
    ----------
    y
        ``(n, N_A·N_B)`` layer outputs (post-activation), one sample per row.
    dims
        ``(N_A, N_B)``: the layer's two output factor sizes (C-order, as the Kronecker product).
    reading
        ``"partial-trace"`` (default): ``ρ_AB = ψψᵀ`` is pure (``S(ρ_AB) = 0``) and
        ``ρ_A = Tr_B ρ_AB = ΨΨᵀ``, ``ρ_B = Tr_A ρ_AB = ΨᵀΨ`` with ``Ψ`` the ``N_A × N_B``
        matrix of ``ψ``. This is the only standard reading under which ``C > 0`` can occur.
        ``"product"``: the paper's literal wording, "a Kronecker form ``ρ_A ⊗ ρ_B`` as similar as
        possible to ``ρ_AB``": unit-trace positive ``ρ_A``, ``ρ_B`` minimising
        ``‖ρ_A ⊗ ρ_B − ψψᵀ‖_F`` (Adam, ``steps`` steps, started from the partial traces), and
        the state analysed is that product. A product state has no total correlation
        (``S(ρ_A ⊗ ρ_B) = S(ρ_A) + S(ρ_B)``, so ``I = 0``) and therefore
        ``C = −S(ρ_{A+B}) ≤ 0``: this reading can never find an SC sample.
    steps
        Optimisation steps of the ``"product"`` reading.

    Notes
    -----
    When ``N_A ≠ N_B`` the smaller reduced state is zero-padded to the larger size before the
    ensemble is formed (padding changes no entropy).
    """
    if reading not in ("partial-trace", "product"):
        raise OptionError(f"unknown reading {reading!r}; choose 'partial-trace' or 'product'")
    n_a, n_b = dims
    if y.dim() != 2 or y.shape[1] != n_a * n_b:
        raise ShapeError(
            f"y must be (samples, {n_a}·{n_b} = {n_a * n_b}) for output factors {dims}, "
            f"got shape {tuple(y.shape)}"
        )
    y = y.detach().double()
    norms = torch.linalg.vector_norm(y, dim=1, keepdim=True)
    if bool((norms == 0).any()):
        raise ShapeError("a sample is the zero vector: it is no state (normalise needs ‖y‖ > 0)")
    psi = (y / norms).reshape(-1, n_a, n_b)
    rho_a = psi @ psi.transpose(1, 2)
    rho_b = psi.transpose(1, 2) @ psi
    if reading == "product":
        rho_a, rho_b = _product_fit(psi, rho_a, rho_b, steps)
    s_a = von_neumann_entropy(rho_a)
    s_b = von_neumann_entropy(rho_b)
    # Partial traces of a pure state: S(ρ_AB) = 0 exactly. Product reading: entropy is additive.
    s_ab = torch.zeros_like(s_a) if reading == "partial-trace" else s_a + s_b
    size = max(n_a, n_b)
    mix = 0.5 * _pad(rho_a, size) + 0.5 * _pad(rho_b, size)
    classical = von_neumann_entropy(mix)
    total = s_a + s_b - s_ab
    return Correlation(s_a, s_b, s_ab, total, classical, total - classical, reading)


def _pad(rho: torch.Tensor, size: int) -> torch.Tensor:
    extra = size - rho.shape[-1]
    return F.pad(rho, (0, extra, 0, extra)) if extra else rho


def _product_fit(
    psi: torch.Tensor, rho_a: torch.Tensor, rho_b: torch.Tensor, steps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit-trace PSD ``ρ_A, ρ_B`` minimising ``‖ρ_A⊗ρ_B − ψψᵀ‖_F²`` per sample.

    ``‖ρ_A⊗ρ_B − ψψᵀ‖² = tr(ρ_A²) tr(ρ_B²) − 2 tr(Ψᵀ ρ_A Ψ ρ_B) + 1``: no ``N_A N_B``-square
    matrix is formed. ``ρ = L Lᵀ / tr(L Lᵀ)`` keeps both valid states.
    """
    root_a = torch.linalg.cholesky(rho_a + 1e-9 * torch.eye(rho_a.shape[-1], dtype=rho_a.dtype))
    root_b = torch.linalg.cholesky(rho_b + 1e-9 * torch.eye(rho_b.shape[-1], dtype=rho_b.dtype))
    root_a, root_b = root_a.clone().requires_grad_(), root_b.clone().requires_grad_()
    opt = torch.optim.Adam([root_a, root_b], lr=0.01)

    def states() -> tuple[torch.Tensor, torch.Tensor]:
        a = root_a @ root_a.transpose(1, 2)
        b = root_b @ root_b.transpose(1, 2)
        return a / _trace(a)[:, None, None], b / _trace(b)[:, None, None]

    with torch.enable_grad():
        for _ in range(steps):
            a, b = states()
            overlap = _trace(psi.transpose(1, 2) @ a @ psi @ b)
            loss = (_trace(a @ a) * _trace(b @ b) - 2 * overlap + 1).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        return states()


def _trace(m: torch.Tensor) -> torch.Tensor:
    return m.diagonal(dim1=-2, dim2=-1).sum(-1)


def correlation_report(
    model: nn.Module,
    x: torch.Tensor,
    *,
    activation: Callable[[torch.Tensor], torch.Tensor] = F.gelu,
    reading: Reading = "partial-trace",
    batch: int = 500,
) -> dict[str, Correlation]:
    """Strong correlation of every hidden two-body [`KronLinear`][tnlayers.KronLinear] layer.

    Runs ``model`` on ``x`` (in eval mode, without gradients) and analyses each two-body
    Kronecker layer's post-activation output, except the model's last Kronecker layer (the
    output layer, sized by the task), as the paper does. Outputs that are exactly zero (dead
    units) are no state: they are left out and counted in ``skipped``.

    Parameters
    ----------
    model
        A model with two-body ``KronLinear`` layers (e.g. ``QiMLP(2)``).
    x
        Inputs, e.g. a test set.
    activation
        The activation that follows each hidden layer (QiMLP: GELU).
    reading
        See [`strong_correlation`][tnlayers.analysis.strong_correlation].
    batch
        Samples per forward pass.

    Returns
    -------
    dict
        Layer name → [`Correlation`][tnlayers.analysis.Correlation], in model order.
    """
    kron = [(name, m) for name, m in model.named_modules() if isinstance(m, KronLinear)]
    hidden = [(name, m) for name, m in kron[:-1] if len(m.network.out_dims) == 2]
    if not hidden:
        raise ValueError(
            f"{type(model).__name__} has no hidden two-body KronLinear layer to analyse "
            "(the measure is defined for two bodies; the last layer is the output layer)"
        )
    outputs: dict[str, list[torch.Tensor]] = {name: [] for name, _ in hidden}

    def keep(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, output: torch.Tensor) -> None:
            outputs[name].append(activation(output.detach()))

        return hook

    handles = [m.register_forward_hook(keep(name)) for name, m in hidden]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(x), batch):
                model(x[start : start + batch])
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    report = {}
    for name, layer in hidden:
        y = torch.cat(outputs[name])
        nonzero = torch.linalg.vector_norm(y, dim=1) > 0
        dims = layer.network.out_dims
        result = strong_correlation(y[nonzero], (dims[0], dims[1]), reading=reading)
        report[name] = replace(result, skipped=int((~nonzero).sum()))
    return report


def plot_correlation(
    report: dict[str, Correlation], path: str | Path | None = None, *, axes: Any = None
) -> Any:
    """Histograms of ``C`` per layer with the CC/SC split (QiMLP's Figs. 6–7).

    Parameters
    ----------
    report
        From [`correlation_report`][tnlayers.analysis.correlation_report].
    path
        Save the figure there.
    axes
        A sequence of matplotlib axes, one per layer (default: a new figure).

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = pyplot(headless=axes is None and path is not None)
    if axes is None:
        fig, axes = plt.subplots(1, len(report), figsize=(4.5 * len(report), 3.4), squeeze=False)
        axes = axes[0]
    fig = axes[0].figure
    for ax, (name, result) in zip(axes, report.items(), strict=True):
        values = result.strong.numpy()
        ax.hist(values[values <= 0], bins=30, color="tab:blue", label="CC (C ≤ 0)")
        ax.hist(values[values > 0], bins=30, color="tab:red", label="SC (C > 0)")
        ax.axvline(0, color="k", lw=0.8)
        ax.set_title(f"{name}: SC {result.strong_fraction:.1%}")
        ax.set_xlabel("strong correlation C (nats)")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("test samples")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig
