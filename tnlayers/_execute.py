"""Execute: planned contractions compiled to flat sequences of torch calls.

[`compile_contraction`][tnlayers.compile_contraction] turns a planned
[`Contraction`][tnlayers.Contraction] into a [`Program`][tnlayers.Program]: a list of two-operand
``torch.einsum`` calls with precomputed equations. Two-operand ``torch.einsum`` goes straight to
torch's C++ pairwise kernel (permute + bmm) and never calls opt_einsum, so nothing is re-planned
per call, and the program is plain torch code that ``torch.compile(fullgraph=True)`` traces.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import NamedTuple

import torch

from ._network import Network
from ._plan import Contraction, plan

__all__ = ["Program", "compile_contraction", "contract_weight", "run_program", "weight_program"]

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


class Program(NamedTuple):
    """A contraction compiled to two-operand ``torch.einsum`` calls; run it with
    [`run_program`][tnlayers.run_program].

    It holds only strings and integers, so ``torch.compile`` can treat it as a constant.

    Attributes
    ----------
    positions
        For each step, the stack positions to pop, highest first.
    equations
        For each step, the ``torch.einsum`` equation of the popped operands.
    """

    positions: tuple[tuple[int, ...], ...]
    equations: tuple[str, ...]


def compile_contraction(contraction: Contraction) -> Program:
    """Compile a planned contraction into a [`Program`][tnlayers.Program].

    Examples
    --------
    >>> import tnlayers, torch
    >>> net = tnlayers.low_rank(6, 4, 2)
    >>> c = tnlayers.plan(net, batch=3).strategies["sequential"].contractions[0]
    >>> x, U, V = torch.randn(3, 6), torch.randn(4, 2), torch.randn(2, 6)
    >>> torch.allclose(run_program(compile_contraction(c), [x, U, V]), x @ (U @ V).T, atol=1e-5)
    True
    """
    positions: list[tuple[int, ...]] = []
    equations: list[str] = []
    for step in contraction.steps:
        legs = list(dict.fromkeys([*(leg for ops in step.inputs for leg in ops), *step.output]))
        if len(legs) > len(_LETTERS):
            raise NotImplementedError(
                f"a contraction step touches {len(legs)} distinct legs; torch.einsum allows "
                f"{len(_LETTERS)}"
            )
        letter = dict(zip(legs, _LETTERS, strict=False))
        lhs = ",".join("".join(letter[leg] for leg in ops) for ops in step.inputs)
        equations.append(lhs + "->" + "".join(letter[leg] for leg in step.output))
        # Pop from the highest position down so lower positions stay valid.
        positions.append(tuple(reversed(step.operands)))
    return Program(tuple(positions), tuple(equations))


def run_program(program: Program, operands: Sequence[torch.Tensor]) -> torch.Tensor:
    """Contract ``operands`` (in the contraction's operand order) with ``program``."""
    stack = list(operands)
    for positions, equation in zip(program.positions, program.equations, strict=True):
        picked = [stack.pop(p) for p in positions]
        picked.reverse()
        stack.append(torch.einsum(equation, *picked))
    return stack[0]


@lru_cache(maxsize=256)
def weight_program(network: Network, optimize: str = "auto-hq") -> Program:
    """The (cached) program contracting the tensors into ``[*outputs, *inputs]``."""
    return compile_contraction(
        plan(network, 1, optimize=optimize).strategies["materialise"].contractions[0]
    )


def contract_weight(
    network: Network,
    tensors: Mapping[str, torch.Tensor],
    *,
    optimize: str = "auto-hq",
) -> torch.Tensor:
    """Materialise the dense weight of ``network`` from tensor values.

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
        ``(out_features, in_features)``, padding removed; differentiable.
    """
    operands = [tensors[name] for name in network.tensor_names]
    weight = run_program(weight_program(network, optimize), operands)
    weight = weight.reshape(network.padded_out_features, network.padded_in_features)
    if network.is_padded:
        weight = weight[: network.out_features, : network.in_features]
    return weight
