"""Contraction paths: tnlayers' default "best" against opt_einsum's optimisers.

For chains (MPO), rings and random networks of up to 24 tensors, at batch 1, 64 and 1024, prints
the FLOPs of the sequential path that "best" finds divided by those of opt_einsum's "dp" (exact
over connected sub-networks), of "auto-hq" (opt_einsum's default for large networks; its result
depends on PYTHONHASHSEED above 15 operands) and of the left-to-right sweep, with the planning
time of "best" (a new network, nothing cached) and of "dp".

Goals (issue "No silent wrong results", part 4): ratio to dp ≤ 1.05, never above the sweep for
chains, planning ≤ 0.5 s at 24 tensors.

    python benchmarks/bench_paths.py           # ~6 min: dp alone takes ~2 min per ring-24 case
    python benchmarks/bench_paths.py --quick   # small networks only
"""

from __future__ import annotations

import argparse
import platform
import time

import opt_einsum

import tnlayers
from tnlayers._core.paths import _best_path, _sweep, best_path, path_flops
from tnlayers._core.plan import BATCH
from tnlayers.testing import random_network


def ring(n: int, leg: int = 2, bond: int = 3) -> tnlayers.Network:
    cores = ", ".join(f"b{k} i{k} o{k} b{(k + 1) % n}" for k in range(n))
    ins, outs = " ".join(f"i{k}" for k in range(n)), " ".join(f"o{k}" for k in range(n))
    sizes = {
        **{f"{s}{k}": leg for s in "io" for k in range(n)},
        **{f"b{k}": bond for k in range(n)},
    }
    return tnlayers.Network.from_einsum(f"{cores} : {ins} -> {outs}", sizes)


def opt_einsum_path(operands, output, sizes, optimize):
    symbols = {leg: opt_einsum.get_symbol(k) for k, leg in enumerate(sizes)}
    equation = ",".join("".join(symbols[leg] for leg in ops) for ops in operands)
    equation += "->" + "".join(symbols[leg] for leg in output)
    shapes = [tuple(sizes[leg] for leg in ops) for ops in operands]
    start = time.perf_counter()
    path, _ = opt_einsum.contract_path(equation, *shapes, shapes=True, optimize=optimize)
    return path, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    cases = {
        "MPO 8 cores (4→4, D=8)": tnlayers.mpo((4,) * 8, (4,) * 8, 8),
        "MPO 16 cores (2→2, D=4)": tnlayers.mpo((2,) * 16, (2,) * 16, 4),
        "ring 12 (2→2, D=4)": ring(12, 2, 4),
        "random 6 tensors (seed 7)": random_network(7, max_tensors=6),
    }
    if not args.quick:
        cases["MPO 24 cores (2→2, D=3)"] = tnlayers.mpo((2,) * 24, (2,) * 24, 3)
        cases["ring 24 (2→2, D=3)"] = ring(24, 2, 3)
        cases["MPO 23 cores (2→2, D=3)"] = tnlayers.mpo((2,) * 23, (2,) * 23, 3)
    print(f"# {platform.processor() or platform.machine()}, opt_einsum {opt_einsum.__version__}")
    print(
        f"{'network':<28}{'batch':>6}{'tensors':>8}{'best/dp':>9}{'best/auto-hq':>14}"
        f"{'best/sweep':>12}{'plan best':>11}{'plan dp':>9}"
    )
    for name, net in cases.items():
        for batch in (1, 64, 1024):
            operands = [(BATCH, *net.inputs), *(net.legs(t) for t in net.tensor_names)]
            output, sizes = (BATCH, *net.outputs), {**net.sizes, BATCH: batch}
            _best_path.cache_clear()
            start = time.perf_counter()
            ours = best_path(operands, output, sizes, 0)
            t_best = time.perf_counter() - start
            flops = path_flops(operands, output, sizes, ours)
            dp, t_dp = opt_einsum_path(operands, output, sizes, "dp")
            hq, _ = opt_einsum_path(operands, output, sizes, "auto-hq")
            sweep = _sweep(0, range(1, len(operands)))
            ratios = [flops / path_flops(operands, output, sizes, p) for p in (dp, hq, sweep)]
            print(
                f"{name:<28}{batch:>6}{len(net.tensor_names):>8}{ratios[0]:>9.3f}"
                f"{ratios[1]:>14.3f}{ratios[2]:>12.3f}{t_best:>10.3f}s{t_dp:>8.2f}s"
            )


if __name__ == "__main__":
    main()
