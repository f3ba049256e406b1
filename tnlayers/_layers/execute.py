"""Execute: planned contractions compiled to flat sequences of torch calls.

[`compile_contraction`][tnlayers.contraction.compile_contraction] turns a planned
[`Contraction`][tnlayers.contraction.Contraction] into a [`Program`][tnlayers.contraction.Program]:
a flat list of permute / reshape / ``matmul`` calls whose permutations and shapes are computed
once. Nothing is re-planned per call (``torch.einsum`` with more than two operands would call
opt_einsum every time), and the program is plain torch code that ``torch.compile(fullgraph=True)``
traces."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import NamedTuple

import torch

from .._core.network import Network
from .._core.plan import BATCH, Contraction, plan

__all__ = [
    "Program",
    "apply_program",
    "apply_weight",
    "compile_contraction",
    "contract_weight",
    "layer_weight",
    "run_program",
    "weight_matrix",
    "weight_program",
]

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


Permutation = tuple[int, ...] | None


class MatmulStep(NamedTuple):
    """A pairwise step run as one batched matmul.

    Pop positions ``hi`` then ``lo``; the row operand is the ``lo`` one if ``rows_low``; permute
    (``None``: already in memory order) and reshape (``None``: already that shape) the operands
    to ``(batch, M, K)`` and ``(batch, K, N)``, multiply, reshape to the result's legs and (last
    step only) permute them into the requested order. ``-1`` in a shape stands for the batch
    size.
    """

    kind: str  # "matmul"
    hi: int
    lo: int
    rows_low: bool
    perm_a: Permutation
    shape_a: tuple[int, int, int] | None
    perm_b: Permutation
    shape_b: tuple[int, int, int] | None
    out_shape: tuple[int, ...] | None
    out_perm: Permutation


class EinsumStep(NamedTuple):
    """A step a matmul cannot express: pop ``positions`` and run ``torch.einsum(equation)``."""

    kind: str  # "einsum"
    positions: tuple[int, ...]
    equation: str


class Program(NamedTuple):
    """A contraction compiled to torch calls; run it with
    [`run_program`][tnlayers.contraction.run_program].

    It holds only (named) tuples of strings and integers, so ``torch.compile`` can treat it as a
    constant.

    Attributes
    ----------
    steps
        One ``MatmulStep`` (a batched matmul with precomputed permutations and shapes) or
        ``EinsumStep`` (a ``torch.einsum`` call) per step of the path.
    """

    steps: tuple[MatmulStep | EinsumStep, ...]


def _einsum_step(
    step_inputs: Sequence[tuple[str, ...]], out: tuple[str, ...], positions: tuple[int, ...]
) -> EinsumStep:
    legs = list(dict.fromkeys([*(leg for ops in step_inputs for leg in ops), *out]))
    if len(legs) > len(_LETTERS):
        raise NotImplementedError(
            f"a contraction step touches {len(legs)} distinct legs; torch.einsum allows "
            f"{len(_LETTERS)}"
        )
    letter = dict(zip(legs, _LETTERS, strict=False))
    lhs = ",".join("".join(letter[leg] for leg in ops) for ops in step_inputs)
    equation = lhs + "->" + "".join(letter[leg] for leg in out)
    return EinsumStep("einsum", tuple(reversed(positions)), equation)


def _perm(current: Sequence[str], wanted: Sequence[str]) -> tuple[int, ...] | None:
    order = tuple(current.index(leg) for leg in wanted)
    return None if order == tuple(range(len(order))) else order


def _operand_layout(
    legs: Sequence[str],
    perm: Permutation,
    shape: tuple[int, int, int],
    size: Callable[[str], int],
) -> tuple[Permutation, tuple[int, int, int] | None]:
    """The permutation and reshape an operand really needs (``None``: skip the call).

    A permutation that moves only legs of size one keeps the memory order, so the reshape
    alone does its work; a reshape to the shape the operand already has is skipped. Each call
    skipped is one autograd node less in every training step (a Kronecker layer of one term,
    whose term leg has size one, skips two).
    """
    if perm is not None:
        moved = [legs[i] for i in perm]
        if [leg for leg in moved if size(leg) != 1] == [leg for leg in legs if size(leg) != 1]:
            perm = None
    current = legs if perm is None else [legs[i] for i in perm]
    # Equal shapes with the batch's -1 in the same place: the reshape is the identity.
    return perm, None if tuple(size(leg) for leg in current) == shape else shape


def _matmul_friendly(picked: Sequence[tuple[str, ...]], kept: set[str]) -> bool:
    """Whether a pairwise step is one (batched) matmul: every unshared leg survives it."""
    a, b = picked
    return all(leg in kept for leg in a if leg not in b) and all(
        leg in kept for leg in b if leg not in a
    )


def _layouts(
    rows: tuple[str, ...],
    cols: tuple[str, ...],
    kept: set[str],
    shared_from: tuple[str, ...],
    free_order: Sequence[str] | None = None,
) -> tuple[
    tuple[int, ...] | None, tuple[int, ...] | None, list[str], list[str], list[str], list[str]
]:
    """Permutations making ``rows`` a ``(batch, M, K)`` and ``cols`` a ``(batch, K, N)`` operand.

    Shared legs are ordered as in ``shared_from`` (one of the two operands), so that operand
    needs no copy when its shared legs are already where the matmul wants them. Free legs keep
    their operand's order, or follow ``free_order`` when given (the last step: the result then
    lands closer to the requested order).
    """
    batch = [leg for leg in shared_from if leg in rows and leg in cols and leg in kept]
    summed = [leg for leg in shared_from if leg in rows and leg in cols and leg not in kept]
    a_free = [leg for leg in rows if leg not in cols]
    b_free = [leg for leg in cols if leg not in rows]
    if free_order is not None:
        a_free.sort(key=free_order.index)
        b_free.sort(key=free_order.index)
    return (
        _perm(rows, [*batch, *a_free, *summed]),
        _perm(cols, [*batch, *summed, *b_free]),
        batch,
        a_free,
        summed,
        b_free,
    )


def _permute_cost(
    current: Sequence[str], wanted: Sequence[str], elements: Callable[[Sequence[str]], int]
) -> float:
    """Estimated cost, in elements moved, of copying ``current`` into the order ``wanted``.

    A strided copy is slow when its innermost contiguous run is short (an 8-leg interleave with
    4-element runs measured ~11× a plain copy of the same bytes on the project CPU, a 4-block
    permute with 28-element runs ~2×): the cost grows as ``1 + 16 / run``.
    """
    if tuple(current) == tuple(wanted):
        return 0.0
    run = 0
    while run < len(wanted) and current[len(current) - 1 - run] == wanted[len(wanted) - 1 - run]:
        run += 1
    inner = elements(wanted[len(wanted) - run :]) if run else 1
    return elements(wanted) * (1.0 + 16.0 / inner)


def _cheapest_layout(
    picked: Sequence[tuple[str, ...]],
    kept: set[str],
    elements: Callable[[Sequence[str]], int],
    output: Sequence[str] | None = None,
) -> tuple[int, int, bool]:
    """(row operand, operand whose shared-leg order is kept, free legs in ``output``'s order)
    moving the fewest elements.

    Either operand can play the row role and the shared legs can follow either operand's order;
    each operand whose legs are not already in the wanted order costs one strided copy. For
    the last step (``output`` given) the final permutation into ``output`` counts too, and free
    legs may be put in ``output``'s order up front: permuting two small factors is much cheaper
    than interleaving the large result (a weight build's last step).
    """

    def cost(choice: tuple[int, int, bool]) -> float:
        rows, cols = picked[choice[0]], picked[1 - choice[0]]
        order = output if choice[2] else None
        perm_rows, perm_cols, batch, a_free, _, b_free = _layouts(
            rows, cols, kept, picked[choice[1]], order
        )
        total = sum(
            _permute_cost(legs, [legs[i] for i in perm], elements)
            for legs, perm in ((rows, perm_rows), (cols, perm_cols))
            if perm is not None
        )
        if output is not None:
            total += _permute_cost((*batch, *a_free, *b_free), output, elements)
        return total

    reorder = (False, True) if output is not None else (False,)
    choices = [(first, source, r) for r in reorder for first in (0, 1) for source in (0, 1)]
    return min(choices, key=cost)


def compile_contraction(contraction: Contraction) -> Program:
    """Compile a planned contraction into a [`Program`][tnlayers.contraction.Program].

    Each pairwise step becomes permute → reshape → ``matmul`` → reshape, with every permutation
    and shape computed here once; results keep the matmul's natural leg order, so the next step
    often needs no copy. Steps a matmul cannot express run as ``torch.einsum``.

    Examples
    --------
    >>> import tnlayers, torch
    >>> net = tnlayers.low_rank(6, 4, 2)
    >>> c = tnlayers.plan(net, batch=3).strategies["sequential"].contractions[0]
    >>> x, U, V = torch.randn(3, 6), torch.randn(4, 2), torch.randn(2, 6)
    >>> torch.allclose(run_program(compile_contraction(c), [x, U, V]), x @ (U @ V).T, atol=1e-5)
    True
    """
    sizes = contraction.sizes

    # The batch leg's size is left to reshape (-1), so one program serves every batch size:
    # compiled graphs reuse the plan of a power-of-two batch bucket.
    def elements(legs: Sequence[str]) -> int:
        return math.prod(sizes[leg] for leg in legs)

    def prod(legs: Sequence[str]) -> int:
        return -1 if BATCH in legs else elements(legs)

    def size(leg: str) -> int:
        return -1 if leg == BATCH else sizes[leg]

    stack = [tuple(legs) for legs in contraction.operands]
    steps: list[MatmulStep | EinsumStep] = []
    last = len(contraction.steps) - 1
    for number, step in enumerate(contraction.steps):
        picked = [stack[p] for p in step.operands]
        for p in reversed(step.operands):
            stack.pop(p)
        kept = set(step.output)
        if len(picked) == 2 and _matmul_friendly(picked, kept):
            final = number == last
            first, source, reorder = _cheapest_layout(
                picked, kept, elements, tuple(contraction.output) if final else None
            )
            rows, cols = picked[first], picked[1 - first]
            perm_a, perm_b, batch, a_free, summed, b_free = _layouts(
                rows, cols, kept, picked[source], tuple(contraction.output) if reorder else None
            )
            hi, lo = step.operands[1], step.operands[0]
            natural = (*batch, *a_free, *b_free)
            perm_a, shape_a = _operand_layout(
                rows, perm_a, (prod(batch), prod(a_free), prod(summed)), size
            )
            perm_b, shape_b = _operand_layout(
                cols, perm_b, (prod(batch), prod(summed), prod(b_free)), size
            )
            out_shape = tuple(size(leg) for leg in natural)
            matmul_shape = (prod(batch), prod(a_free), prod(b_free))
            steps.append(
                MatmulStep(
                    "matmul",
                    hi,
                    lo,
                    first == 0,
                    perm_a,
                    shape_a,
                    perm_b,
                    shape_b,
                    None if out_shape == matmul_shape else out_shape,
                    _perm(natural, contraction.output) if final else None,
                )
            )
            stack.append(tuple(contraction.output) if final else natural)
            continue
        steps.append(_einsum_step(picked, step.output, step.operands))
        stack.append(tuple(step.output))
    return Program(tuple(steps))


def run_program(program: Program, operands: Sequence[torch.Tensor]) -> torch.Tensor:
    """Contract ``operands`` (in the contraction's operand order) with ``program``."""
    stack = list(operands)
    for step in program.steps:
        if isinstance(step, MatmulStep):
            high = stack.pop(step.hi)
            low = stack.pop(step.lo)
            a, b = (low, high) if step.rows_low else (high, low)
            if step.perm_a is not None:
                a = a.permute(step.perm_a)
            if step.shape_a is not None:
                a = a.reshape(step.shape_a)
            if step.perm_b is not None:
                b = b.permute(step.perm_b)
            if step.shape_b is not None:
                b = b.reshape(step.shape_b)
            out = torch.bmm(a, b)
            if step.out_shape is not None:
                out = out.reshape(step.out_shape)
            stack.append(out if step.out_perm is None else out.permute(step.out_perm))
        else:
            picked = [stack.pop(p) for p in step.positions]
            picked.reverse()
            stack.append(torch.einsum(step.equation, *picked))
    return stack[0]


@lru_cache(maxsize=256)
def weight_program(network: Network, optimize: str = "best") -> Program:
    """The (cached) program contracting the tensors into ``network.weight_legs``."""
    return compile_contraction(
        plan(network, 1, optimize=optimize).strategies["materialize"].contractions[0]
    )


def contract_weight(
    network: Network,
    tensors: Mapping[str, torch.Tensor],
    *,
    optimize: str = "best",
) -> torch.Tensor:
    """Materialize the dense weight of ``network`` from tensor values.

    Parameters
    ----------
    network
        The network.
    tensors
        One tensor per network tensor name, shaped as ``network.shape(name)``.
    optimize
        opt_einsum path optimiser used for the (cached) plan.

    Returns
    -------
    torch.Tensor
        ``(out_features, in_features)``, padding removed; differentiable. Pass-through legs are
        expanded into their block-diagonal form (zeros off the blocks).
    """
    operands = [tensors[name] for name in network.tensor_names]
    return weight_matrix(network, run_program(weight_program(network, optimize), operands))


def layer_weight(network: Network, contracted: torch.Tensor) -> torch.Tensor:
    """The weight as a layer multiplies by it, from a contraction into ``network.weight_legs``.

    Without pass-through legs: the ``(out_features, in_features)`` matrix (padding removed).
    With them: the contraction itself, the diagonal blocks only, for a batched GEMM
    ([`apply_weight`][tnlayers.contraction.apply_weight]).
    """
    return contracted if network.passthrough else _matrix(network, contracted)


def weight_matrix(network: Network, contracted: torch.Tensor) -> torch.Tensor:
    """``(out_features, in_features)`` matrix of a contraction into ``network.weight_legs``.

    Flattens both sides row-major and drops the rows and columns that padding added. A
    pass-through leg is expanded with an identity (``W[(p,j),(p',i)] = δ_{pp'} T[p,j,i]``): this
    is for inspection and fitting; layers never multiply by the expanded form.
    """
    if network.passthrough:
        contracted = _expand_passthrough(network, contracted)
    return _matrix(network, contracted)


def _matrix(network: Network, contracted: torch.Tensor) -> torch.Tensor:
    """``[*outputs, *inputs]`` flattened to ``(out_features, in_features)``, padding dropped."""
    weight = contracted.reshape(network.padded_out_features, network.padded_in_features)
    if network.is_padded:
        weight = weight[: network.out_features, : network.in_features]
    return weight


def _expand_passthrough(network: Network, blocks: torch.Tensor) -> torch.Tensor:
    """``[*outputs, *inputs]`` from ``[*weight_legs]``: one identity per pass-through leg."""
    # Integer sublists (torch.einsum's second calling form): one id per leg, a fresh id for
    # the input-side copy of each pass-through leg.
    ids = {leg: n for n, leg in enumerate(network.weight_legs)}
    primed = {leg: len(ids) + n for n, leg in enumerate(network.passthrough)}
    operands: list[object] = [blocks, [ids[leg] for leg in network.weight_legs]]
    for leg in network.passthrough:
        eye = torch.eye(network.sizes[leg], dtype=blocks.dtype, device=blocks.device)
        operands += [eye, [ids[leg], primed[leg]]]
    wanted = [ids[leg] for leg in network.outputs]
    wanted += [primed.get(leg, ids[leg]) for leg in network.inputs]
    return torch.einsum(*operands, wanted)


def apply_weight(
    network: Network,
    x2: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    gemm: Program | None,
) -> torch.Tensor:
    """``x2 · Wᵀ + b`` for ``x2`` of shape ``(batch, in_features)`` and a
    [`layer_weight`][tnlayers.contraction.layer_weight].

    A plain weight is one ``addmm``; block-diagonal weights (pass-through legs) run ``gemm``, the
    planned batched GEMM over their blocks.
    """
    if gemm is None or not network.passthrough:
        return torch.nn.functional.linear(x2, weight, bias)
    return apply_program(network, x2, gemm, [weight], bias)


def apply_program(
    network: Network,
    x2: torch.Tensor,
    program: Program,
    operands: Sequence[torch.Tensor],
    bias: torch.Tensor | None,
) -> torch.Tensor:
    """Run ``program`` on ``x2`` of shape ``(batch, in_features)`` viewed as the input legs,
    then ``operands``; returns ``(batch, out_features)`` with ``bias`` added.

    Zero-pads the input up to the legs' product and drops the padded outputs.
    """
    rows = x2.shape[0]
    if network.padded_in_features != network.in_features:
        x2 = torch.nn.functional.pad(x2, (0, network.padded_in_features - network.in_features))
    y = run_program(program, [x2.reshape(rows, *network.in_dims), *operands])
    y = y.reshape(rows, network.padded_out_features)
    if network.padded_out_features != network.out_features:
        y = y[:, : network.out_features]
    return y if bias is None else y + bias
