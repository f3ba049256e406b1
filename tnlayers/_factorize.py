"""Split feature sizes into leg sizes, padding sizes such as primes that split badly."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from ._errors import NetworkSpecError

__all__ = ["Factorization", "factorize", "kronecker_factors"]


@dataclass(frozen=True)
class Factorization:
    """Leg sizes chosen for a feature size.

    Attributes
    ----------
    features
        The size asked for.
    dims
        Leg sizes, small at both ends and large in the middle (seed 003's ``(4, 7, 7, 4)``).
    padded
        ``prod(dims)``; equal to ``features`` unless padding was needed.
    """

    features: int
    dims: tuple[int, ...]
    padded: int

    @property
    def padding(self) -> int:
        """How many zero features were added (0 when the split is exact)."""
        return self.padded - self.features


def _best_split(
    n: int, parts: int, better: Callable[[tuple[int, ...], tuple[int, ...]], bool]
) -> tuple[int, ...]:
    """The sorted split of ``n`` into ``parts`` factors that ``better`` prefers over all others."""
    best: tuple[int, ...] | None = None

    def search(rest: int, k: int, low: int, acc: tuple[int, ...]) -> None:
        nonlocal best
        if k == 1:
            if rest >= low:
                cand = (*acc, rest)
                if best is None or better(cand, best):
                    best = cand
            return
        f = low
        while f**k <= rest:
            if rest % f == 0:
                search(rest // f, k - 1, f, (*acc, f))
            f += 1

    search(n, parts, 1, ())
    assert best is not None  # (1, ..., 1, n) always exists
    return best


@cache
def _balanced(n: int, parts: int) -> tuple[int, ...]:
    """Factors of ``n`` into ``parts`` factors with the smallest largest factor, sorted."""
    return _best_split(n, parts, lambda a, b: (max(a), -min(a)) < (max(b), -min(b)))


def _mountain(sorted_dims: tuple[int, ...]) -> tuple[int, ...]:
    """Place small factors at both ends and large ones in the middle."""
    left: list[int] = []
    right: list[int] = []
    for position, dim in enumerate(sorted_dims):
        (left if position % 2 == 0 else right).append(dim)
    return (*left, *reversed(right))


def factorize(features: int, parts: int, *, max_padding: float = 0.1) -> Factorization:
    """Split ``features`` into ``parts`` leg sizes as balanced as possible.

    When the exact split is badly unbalanced (a prime, or a large prime factor), the size is padded
    up to the nearest size within ``max_padding`` (a fraction) whose split is most balanced.

    Parameters
    ----------
    features
        The size to split (positive).
    parts
        Number of legs (positive).
    max_padding
        Largest fraction of extra, zero-padded features accepted.

    Examples
    --------
    >>> factorize(784, 4).dims
    (4, 7, 7, 4)
    >>> f = factorize(997, 3)
    >>> f.dims, f.padding
    ((10, 10, 10), 3)
    """
    if isinstance(features, bool) or not isinstance(features, int) or features < 1:
        raise NetworkSpecError(f"cannot factorise {features!r}: expected a positive integer")
    if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
        raise NetworkSpecError(f"cannot split into {parts!r} parts: expected a positive integer")
    exact = _balanced(features, parts)
    # Accept the exact split unless its largest factor is more than twice the ideal.
    ideal = features ** (1.0 / parts)
    if max(exact) <= max(2.0 * ideal, 2) or parts == 1:
        return Factorization(features, _mountain(exact), features)
    best_size, best = features, exact
    for size in range(features + 1, features + math.ceil(max_padding * features) + 1):
        cand = _balanced(size, parts)
        if max(cand) < max(best):
            best_size, best = size, cand
    return Factorization(features, _mountain(best), best_size)


@cache
def _largest(n: int, parts: int) -> tuple[int, ...]:
    """Factors of ``n`` into ``parts`` factors: the smallest as large as possible, then the
    largest as large as possible; ascending."""
    return _best_split(n, parts, lambda a, b: (a[0], a[-1]) > (b[0], b[-1]))


def kronecker_factors(features: int, parts: int) -> tuple[int, ...]:
    """Seed 000's rule for Kronecker factor sizes: "all sub-matrices as large as possible".

    Maximises the smallest factor, then the largest, and returns them ascending. No padding: a
    size with no good split (a prime) keeps its size-1 factors.

    Examples
    --------
    >>> [kronecker_factors(784, m) for m in (2, 3, 4)]
    [(28, 28), (7, 7, 16), (4, 4, 7, 7)]
    >>> kronecker_factors(3072, 3)
    (12, 16, 16)
    """
    if isinstance(features, bool) or not isinstance(features, int) or features < 1:
        raise NetworkSpecError(f"cannot factorise {features!r}: expected a positive integer")
    if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
        raise NetworkSpecError(f"cannot split into {parts!r} parts: expected a positive integer")
    return _largest(features, parts)
