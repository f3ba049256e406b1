"""Dense → network: fit any network to a dense weight by alternating least squares (ALS).

Every network is linear in each single tensor: with the others fixed, the weight is
``W[o_t, o_rest] = Σ_B t[B, o_t] · Env[B, o_rest]`` where ``B`` are the tensor's bonds, ``o_t``
its open legs and ``Env`` the contraction of all other tensors. Minimising ``‖W − Ŵ‖_F`` over
``t`` is then one least-squares problem per value of ``o_t``, all with the same normal matrix
``G = Env · Envᵀ`` (``|B| × |B|``). Neither ``Env`` nor ``Ŵ`` is formed for that: ``G`` is the
network contracted with a copy of itself over the open legs, and the right-hand side the network
contracted with ``W``; opt_einsum plans both. A sweep updates every tensor once; each update
solves its problem exactly, so the error never increases.

Where a closed form exists the fit starts from it (TT-SVD for ``mpo``, the rearranged SVD for
two-body ``kronecker``, HOSVD for ``tucker``), so the result is never worse than that closed form.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from .._core.builders import kronecker, mpo
from .._core.errors import ArgumentTypeError, OptionError, ShapeError
from .._core.network import Network
from .._core.topologies import tucker
from .._layers.execute import contract_weight
from .._layers.init import entry_sigma
from .kron import nearest_kronecker
from .mpo import tt_svd

__all__ = ["NetworkFit", "fit"]


@dataclass(frozen=True)
class NetworkFit:
    """The result of [`fit`][tnlayers.fit].

    Attributes
    ----------
    network
        The network fitted.
    tensors
        Its tensors by name, ready for ``TNLinear.from_tensors(network, fit.tensors)``.
    error
        ``‖W − Ŵ‖_F / ‖W‖_F`` of the result, computed exactly from the materialized ``Ŵ``.
    errors
        The same after the start and after each sweep (non-increasing), for the start kept.
    start
        Where the sweeps started: ``"tt-svd"``, ``"kronecker-svd"``, ``"hosvd"``, ``"given"``
        or ``"random"``.
    """

    network: Network
    tensors: dict[str, torch.Tensor]
    error: float
    errors: tuple[float, ...]
    start: str


def fit(
    network: Network,
    weight: torch.Tensor,
    *,
    sweeps: int = 100,
    tol: float = 1e-12,
    init: Mapping[str, torch.Tensor] | None = None,
    restarts: int = 3,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> NetworkFit:
    r"""Fit ``network``'s tensors to a dense weight by alternating least squares.

    Parameters
    ----------
    network
        Any network whose input and output legs multiply to the weight's sizes exactly.
    weight
        ``(out_features, in_features)``, like ``nn.Linear.weight``; float32, float64 or complex.
    sweeps
        Most sweeps over the tensors.
    tol
        Stop when a sweep lowers the relative error by less than this (or the error is below
        it).
    init
        Starting tensors by name (default: a closed form where one exists, else random).
    restarts
        From a random start, fit from this many starts and keep the best (ALS on loops and CP
        can stall in a poor local minimum from one start); stops at the first that reaches
        ``tol``.
    generator
        For the random start.
    progress
        Show a progress bar over the sweeps.

    Returns
    -------
    NetworkFit
        ``.tensors`` and ``.error`` (exact), ``.errors`` per sweep.

    Examples
    --------
    >>> import torch, tnlayers
    >>> target = tnlayers.TNLinear(tnlayers.tensor_ring((4, 4), (3, 3), 2)).to_dense().detach()
    >>> result = tnlayers.fit(tnlayers.tensor_ring((4, 4), (3, 3), 2), target)
    >>> result.error < 1e-4
    True
    """
    if not isinstance(network, Network):
        raise ArgumentTypeError(f"fit needs a tnlayers.Network, got {type(network).__name__}")
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        got = f"shape {tuple(weight.shape)}" if isinstance(weight, torch.Tensor) else type(weight)
        raise ShapeError(f"fit needs a 2-D weight (out_features, in_features), got {got}")
    if network.is_padded:
        raise ShapeError(
            f"fit needs a network whose legs multiply to its features exactly; this one pads "
            f"{network.in_features} → {network.padded_in_features} inputs and "
            f"{network.out_features} → {network.padded_out_features} outputs"
        )
    if tuple(weight.shape) != (network.out_features, network.in_features):
        raise ShapeError(
            f"the weight is {tuple(weight.shape)}, but the network maps "
            f"{network.in_features} → {network.out_features}: expected "
            f"({network.out_features}, {network.in_features}) like nn.Linear.weight"
        )
    if isinstance(sweeps, bool) or not isinstance(sweeps, int) or sweeps < 0:
        raise OptionError(f"sweeps must be a non-negative integer, got {sweeps!r}")
    if not (isinstance(tol, int | float) and math.isfinite(tol) and tol >= 0):
        raise OptionError(f"tol must be a finite number ≥ 0, got {tol!r}")
    target = weight.detach()
    if not (target.is_floating_point() or target.is_complex()):
        target = target.to(torch.get_default_dtype())
    norm = torch.linalg.norm(target).item()
    if norm == 0:
        zeros = {t: target.new_zeros(network.shape(t)) for t in network.tensor_names}
        return NetworkFit(network, zeros, 0.0, (0.0,), "zero")
    if isinstance(restarts, bool) or not isinstance(restarts, int) or restarts < 1:
        raise OptionError(f"restarts must be a positive integer, got {restarts!r}")
    dense = _blocks(network, target)
    best: NetworkFit | None = None
    for _ in range(restarts):
        tensors, start = _start(network, target, init, generator, norm)
        result = _sweep(network, tensors, start, target, dense, norm, sweeps, tol, progress)
        if best is None or result.error < best.error:
            best = result
        if start != "random" or best.error <= tol:
            break
    assert best is not None
    return best


def _blocks(network: Network, target: torch.Tensor) -> torch.Tensor:
    """``target`` as a tensor over ``network.weight_legs``.

    A pass-through leg keeps only its diagonal (``W[(p,j),(p,i)]``): the network cannot
    represent the rest, which counts in the error but does not change the best fit.
    """
    tensor = target.reshape(*network.out_dims, *network.in_dims)
    if not network.passthrough:
        return tensor
    ids = {leg: n for n, leg in enumerate(network.weight_legs)}
    # A repeated index within one operand takes torch.einsum's diagonal.
    axes = [ids[leg] for leg in (*network.outputs, *network.inputs)]
    return torch.einsum(tensor, axes, [ids[leg] for leg in network.weight_legs])


def _sweep(
    network: Network,
    tensors: dict[str, torch.Tensor],
    start: str,
    target: torch.Tensor,
    dense: torch.Tensor,
    norm: float,
    sweeps: int,
    tol: float,
    progress: bool,
) -> NetworkFit:
    """ALS sweeps from ``tensors`` until ``sweeps`` or the error stops falling by ``tol``."""
    errors = [_error(network, tensors, target, norm)]
    bar = tqdm(total=sweeps, desc="fit", disable=not progress, leave=False)
    with torch.no_grad(), bar:
        for _ in range(sweeps):
            if errors[-1] <= tol:
                break
            for name in network.tensor_names:
                tensors[name] = _solve(network, tensors, name, dense)
            errors.append(_error(network, tensors, target, norm))
            bar.update()
            bar.set_postfix_str(f"error {errors[-1]:.3g}")
            if errors[-2] - errors[-1] < tol:
                break
    return NetworkFit(network, tensors, errors[-1], tuple(errors), start)


def _error(
    network: Network, tensors: Mapping[str, torch.Tensor], target: torch.Tensor, norm: float
) -> float:
    approx = contract_weight(network, tensors)
    return (torch.linalg.norm(approx - target) / norm).item()


def _start(
    network: Network,
    target: torch.Tensor,
    init: Mapping[str, torch.Tensor] | None,
    generator: torch.Generator | None,
    norm: float,
) -> tuple[dict[str, torch.Tensor], str]:
    """The starting tensors: given, a closed form of the network's family, or random."""
    if init is not None:
        tensors = {}
        for name in network.tensor_names:
            if name not in init:
                raise ShapeError(f"init has no value for tensor {name!r}")
            if tuple(init[name].shape) != network.shape(name):
                raise ShapeError(
                    f"init[{name!r}] has shape {tuple(init[name].shape)}, but the tensor's legs "
                    f"{network.legs(name)} have sizes {network.shape(name)}"
                )
            tensors[name] = init[name].detach().to(target.dtype).clone()
        return tensors, "given"
    closed = _closed_form(network, target)
    if closed is not None:
        return closed
    # Random entries scaled so the start's weight has about the target's norm.
    blocks = math.prod(network.sizes[leg] for leg in network.weight_legs)
    sigma = entry_sigma(network, norm / math.sqrt(blocks))
    real = target.real.dtype if target.is_complex() else target.dtype
    tensors = {}
    for name in network.tensor_names:
        value = torch.randn(network.shape(name), dtype=real, generator=generator) * sigma
        tensors[name] = value.to(target.dtype)
    return tensors, "random"


def _closed_form(
    network: Network, target: torch.Tensor
) -> tuple[dict[str, torch.Tensor], str] | None:
    """TT-SVD for an ``mpo`` network, the rearranged SVD for a two-body ``kronecker`` one,
    HOSVD for a ``tucker`` one."""
    ins, outs = network.in_dims, network.out_dims
    if len(ins) == len(outs) and len(ins) > 1:
        bonds = [network.sizes.get(f"b{k}") for k in range(1, len(ins))]
        if all(b is not None for b in bonds):
            candidate = mpo(ins, outs, [b for b in bonds if b is not None])
            if candidate == network:
                approx = tt_svd(target, ins, outs, max_bond=max(b for b in bonds if b))
                cores = approx.mpo.tensors()
                fits = all(
                    all(a <= b for a, b in zip(cores[n].shape, network.shape(n), strict=True))
                    for n in network.tensor_names
                )
                if fits:  # per-bond sizes below the largest may not hold TT-SVD's bonds
                    padded = {n: _pad(cores[n], network.shape(n)) for n in network.tensor_names}
                    return padded, "tt-svd"
    if len(ins) == 2 and len(outs) == 2 and not target.is_complex():
        terms = network.sizes.get("k", 1)
        if kronecker(ins, outs, terms) == network:
            fitted = nearest_kronecker(target, ins, outs, terms).tensors()
            return {n: fitted[n].to(target.dtype) for n in network.tensor_names}, "kronecker-svd"
    ranks = [network.sizes.get(f"s{m}") for m in range(1, len(ins) + 1)]
    ranks += [network.sizes.get(f"t{m}") for m in range(1, len(outs) + 1)]
    if all(r is not None for r in ranks):
        sizes = [r for r in ranks if r is not None]
        if tucker(ins, outs, sizes) == network:
            return _hosvd(network, target, ins, outs, sizes), "hosvd"
    return None


def _hosvd(
    network: Network,
    target: torch.Tensor,
    ins: tuple[int, ...],
    outs: tuple[int, ...],
    ranks: list[int],
) -> dict[str, torch.Tensor]:
    """Tucker factors from each leg's leading singular vectors, and the core they project to.

    Legs in the Tucker order (inputs, then outputs); a rank above its leg's size gets zero
    columns. With orthonormal factors the projected core is the best for them.
    """
    tensor = target.reshape(*outs, *ins)
    axes = [len(outs) + m for m in range(len(ins))] + list(range(len(outs)))  # Tucker order
    factors = []
    for axis, rank in zip(axes, ranks, strict=True):
        unfolded = tensor.movedim(axis, 0).reshape(tensor.shape[axis], -1)
        left = torch.linalg.svd(unfolded, full_matrices=False)[0][:, :rank]
        factors.append(_pad(left, (tensor.shape[axis], rank)))
    core = tensor
    for axis, factor in zip(axes, factors, strict=True):
        # Contract leg `axis` with the factor's rows: the leg becomes its rank leg, in place.
        core = torch.tensordot(core, factor.conj(), dims=([axis], [0])).movedim(-1, axis)
    core = core.permute(axes)  # (inputs' ranks, outputs' ranks), as the Tucker core's legs
    values = {"core": core.contiguous()}
    for m in range(len(ins)):
        values[f"u{m + 1}"] = factors[m]
    for m in range(len(outs)):
        values[f"v{m + 1}"] = factors[len(ins) + m]
    return {name: values[name] for name in network.tensor_names}


def _pad(value: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Zero-pad ``value`` up to ``shape`` (TT-SVD may return bonds below the network's)."""
    if tuple(value.shape) == shape:
        return value
    out = value.new_zeros(shape)
    out[tuple(slice(0, s) for s in value.shape)] = value
    return out


def _solve(
    network: Network,
    tensors: Mapping[str, torch.Tensor],
    name: str,
    dense: torch.Tensor,
) -> torch.Tensor:
    """The tensor ``name`` minimising ``‖W − Ŵ‖_F`` with every other tensor fixed.

    Its legs are bonds ``B`` (summed with other tensors), open legs it shares with other tensors
    ``S`` (a BTT's ``i1``) and open legs only it carries ``P``. The problem splits over the
    values of ``S`` and ``P``; the normal matrix depends on ``S`` only: one batched solve.
    """
    legs = network.legs(name)
    open_legs = set(network.outputs) | set(network.inputs)
    others = [t for t in network.tensor_names if t != name]
    on_others = {leg for other in others for leg in network.legs(other)}
    bonds = [leg for leg in legs if leg not in open_legs]
    shared = [leg for leg in legs if leg in open_legs and leg in on_others]
    private = [leg for leg in legs if leg in open_legs and leg not in on_others]
    if not bonds and not shared:  # a lone tensor holding open legs only: the weight itself
        order = list(network.weight_legs)
        return dense.permute([order.index(leg) for leg in legs]).clone()
    ids: dict[str, int] = {}

    def index(leg: str) -> int:
        return ids.setdefault(leg, len(ids))

    # Right-hand side: the other tensors contracted with W̄ over the open legs not on this
    # tensor (for complex weights the normal equations are solved for t̄, see below).
    target = dense.conj() if dense.is_complex() else dense
    environment: list[object] = []
    for other in others:
        environment += [tensors[other], [index(leg) for leg in network.legs(other)]]
    open_order = [index(leg) for leg in network.weight_legs]
    rhs = torch.einsum(
        *environment, target, open_order, [index(leg) for leg in (*shared, *bonds, *private)]
    )
    # Normal matrix: the other tensors and a conjugated copy (bonds and internal legs primed),
    # joined over the open legs; the shared open legs stay as a batch on both sides.
    operands = list(environment)
    for other in others:
        copy = tensors[other].conj() if tensors[other].is_complex() else tensors[other]
        primed = [leg if leg in open_legs else f"{leg}'" for leg in network.legs(other)]
        operands += [copy, [index(leg) for leg in primed]]
    gram = torch.einsum(
        *operands,
        [index(leg) for leg in shared]
        + [index(leg) for leg in bonds]
        + [index(f"{leg}'") for leg in bonds],
    )
    batch = math.prod(network.sizes[leg] for leg in shared)
    size = math.prod(network.sizes[leg] for leg in bonds)
    gram = gram.reshape(batch, size, size)
    rhs = rhs.reshape(batch, size, -1)
    # G[B, B'] = Σ Env[B] Ēnv[B'] is the conjugate of the normal matrix, so G t̄ = Σ Env W̄.
    scale = (
        gram.diagonal(dim1=-2, dim2=-1).abs().amax(-1).clamp_min(torch.finfo(gram.real.dtype).tiny)
    )
    eye = torch.eye(size, dtype=gram.dtype, device=gram.device)
    # A ridge of machine size keeps rank-deficient environments (loops, zero-padded bonds)
    # solvable without moving a well-posed solution.
    ridge = eye * (scale * torch.finfo(gram.real.dtype).eps)[:, None, None]
    solution = torch.linalg.solve(gram + ridge, rhs)
    if solution.is_complex():
        solution = solution.conj()
    solved = (*shared, *bonds, *private)
    value = solution.reshape([network.sizes[leg] for leg in solved])
    return value.permute([solved.index(leg) for leg in legs]).contiguous()
