"""Split feature sizes into leg sizes, padding sizes such as primes that split badly."""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from .errors import NetworkSpecError

__all__ = ["Factorization", "factorize", "kronecker_factors"]


@dataclass(frozen=True)
class Factorization:
    """Leg sizes chosen for a feature size.

    Attributes
    ----------
    features
        The size asked for.
    dims
        Leg sizes, small at both ends and large in the middle (MPO-Net's ``(4, 7, 7, 4)``).
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


def _divisors(n: int) -> list[int]:
    """Every divisor of ``n``, ascending (trial division: about √n / 2 steps at most)."""
    primes: dict[int, int] = {}
    rest, p = n, 2
    while p * p <= rest:
        while rest % p == 0:
            primes[p] = primes.get(p, 0) + 1
            rest //= p
        p += 1 if p == 2 else 2
    if rest > 1:
        primes[rest] = primes.get(rest, 0) + 1
    divisors = [1]
    for prime, power in primes.items():
        divisors = [d * prime**e for d in divisors for e in range(power + 1)]
    return sorted(divisors)


def _best_split(
    n: int,
    parts: int,
    better: Callable[[tuple[int, ...], tuple[int, ...]], bool],
    hopeless: Callable[[tuple[int, ...], int, int, tuple[int, ...]], bool],
    largest_first: bool = False,
) -> tuple[int, ...]:
    """The sorted split of ``n`` into ``parts`` factors that ``better`` prefers over all others.

    Only divisors of ``n`` can be factors, so the search walks them (at most 1,344 for any size
    below 10⁹) rather than every integer, and ``hopeless(chosen, rest, k, best)`` cuts branches
    that cannot beat ``best`` (factors are chosen ascending; ``rest`` is left for ``k`` more).
    ``largest_first`` tries the first (smallest) factor from the largest possible down, for
    rules that want it large.
    """
    best: tuple[int, ...] | None = None
    divisors = _divisors(n)

    def search(rest: int, k: int, low: int, acc: tuple[int, ...]) -> None:
        nonlocal best
        if best is not None and hopeless(acc, rest, k, best):
            return
        if k == 1:
            if rest >= low:
                cand = (*acc, rest)
                if best is None or better(cand, best):
                    best = cand
            return
        candidates = divisors[bisect.bisect_left(divisors, low) :]
        if largest_first and not acc:
            candidates = [f for f in reversed(candidates) if f**k <= rest]
        for f in candidates:
            if f**k > rest:  # ascending: none further fits (the largest-first list is filtered)
                break
            if rest % f == 0:
                search(rest // f, k - 1, f, (*acc, f))

    search(n, parts, 1, ())
    assert best is not None  # (1, ..., 1, n) always exists
    return best


def _smallest_fit(low: int, high: int, parts: int, cap: int) -> int | None:
    """The smallest product of ``parts`` integers, each at most ``cap``, in ``[low, high]``."""
    best: int | None = None

    def search(need: int, k: int, largest: int, product: int) -> None:
        # Factors are chosen in descending order, each at most ``largest``; their product so
        # far is ``product`` and the rest must multiply to at least ``need``.
        nonlocal best
        if product * need > high or (best is not None and (product * need >= best or best == low)):
            return  # cannot fit, or cannot beat the best product found
        if k == 1:
            factor = max(need, 1)
            total = product * factor
            if factor <= largest and total <= high and (best is None or total < best):
                best = total
            return
        smallest = max(1, math.ceil(need ** (1.0 / k) - 1e-9))
        for factor in range(min(largest, max(need, 1)), smallest - 1, -1):
            search(-(-need // factor), k - 1, factor, product * factor)

    search(low, parts, cap, 1)
    return best


@lru_cache(maxsize=1024)
def _balanced(n: int, parts: int) -> tuple[int, ...]:
    """Factors of ``n`` into ``parts`` factors with the smallest largest factor, sorted."""
    return _best_split(
        n,
        parts,
        lambda a, b: (max(a), -min(a)) < (max(b), -min(b)),
        # The largest factor is at least the k-th root of what is left; and with a smallest
        # factor no larger than the best's, only a strictly smaller largest factor can win.
        lambda chosen, rest, k, best: (
            rest > best[-1] ** k
            or (bool(chosen) and chosen[0] <= best[0] and rest > (best[-1] - 1) ** k)
        ),
        largest_first=True,
    )


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
    # The padded size: the smallest largest factor any size within the padding allows (the
    # first cap with a fitting product), and the smallest such size.
    limit = features + math.ceil(max_padding * features)
    for cap in range(max(2, math.ceil(ideal - 1e-9)), max(exact)):
        size = _smallest_fit(features + 1, limit, parts, cap)
        if size is not None:
            return Factorization(features, _mountain(_balanced(size, parts)), size)
    return Factorization(features, _mountain(exact), features)


@lru_cache(maxsize=1024)
def _largest(n: int, parts: int) -> tuple[int, ...]:
    """Factors of ``n`` into ``parts`` factors: the smallest as large as possible, then the
    largest as large as possible; ascending."""
    return _best_split(
        n,
        parts,
        lambda a, b: (a[0], a[-1]) > (b[0], b[-1]),
        # The smallest factor is the first one chosen.
        lambda chosen, rest, k, best: bool(chosen) and chosen[0] < best[0],
        largest_first=True,
    )


def kronecker_factors(features: int, parts: int) -> tuple[int, ...]:
    """QiMLP's rule for Kronecker factor sizes: "all sub-matrices as large as possible".

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
