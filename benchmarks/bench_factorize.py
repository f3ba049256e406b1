"""Factorising feature sizes into leg sizes: worst time over awkward sizes up to 10⁹.

Goal (issue "No silent wrong results", part 3): any size up to 10⁹, any number of legs up to
8, in under 50 ms, with no unbounded cache. Sizes: primes and near-primes (the cases that need
padding), powers of two and highly composite numbers (many divisors), and random sizes.

    python benchmarks/bench_factorize.py   # ~20 s
"""

from __future__ import annotations

import platform
import random
import time

from tnlayers._core.factorize import _balanced, _largest, factorize, kronecker_factors

SIZES = [
    250_002,
    1_000_003,
    999_999_937,
    982_451_653,
    2**30 - 1,
    2**29,
    735_134_400,  # 1,344 divisors
    997_920_000,
    1_000_000_000,
]


def main() -> None:
    rng = random.Random(0)
    sizes = SIZES + [rng.randint(2, 10**9) for _ in range(40)]
    print(f"# {platform.processor() or platform.machine()}")
    worst: dict[str, tuple[float, int, int]] = {}
    for name, function in (("factorize", factorize), ("kronecker_factors", kronecker_factors)):
        slowest = (0.0, 0, 0)
        for size in sizes:
            for parts in range(1, 9):
                _balanced.cache_clear()
                _largest.cache_clear()
                start = time.perf_counter()
                function(size, parts)
                elapsed = time.perf_counter() - start
                slowest = max(slowest, (elapsed, size, parts))
        worst[name] = slowest
        print(
            f"{name:<18} {len(sizes) * 8} calls, slowest {slowest[0] * 1e3:.1f} ms "
            f"(size {slowest[1]:,}, {slowest[2]} legs)"
        )


if __name__ == "__main__":
    main()
