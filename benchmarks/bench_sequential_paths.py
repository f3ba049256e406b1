"""Sequential paths on random MPO chains: the model's bet against what "auto" runs after timing.

For random MPO chains where the plan keeps a *sequential* path that joins groups of cores
before the batch meets them (the cost model predicts it faster than the path with the fewest
FLOPs), a layer with ``strategy="auto"`` times both paths at its first training call and runs
the faster. This script measures, per network, a training step (forward + backward) of

- the path with the fewest FLOPs,
- the path the cost model keeps (what ``"model"`` runs), and
- the path ``"auto"`` runs after its first call timed the two,

interleaved in one process (min over passes of medians), and prints the distribution of the
last two over the first — the model's path over every network (what *sequential* forced
runs), both over the networks where ``"auto"`` runs *sequential* — as the median, the shares at
least 10 % faster and slower, and the worst. It also prints what the first call costs, timing
included, in training steps.

    python benchmarks/bench_sequential_paths.py              # 300 networks, ~3 min
    python benchmarks/bench_sequential_paths.py --quick      # 6 networks
    python benchmarks/bench_sequential_paths.py --device cuda --networks 100
"""

from __future__ import annotations

import random
import statistics
import time

import torch
from _common import machine_line, median_time, synced, timing_arguments
from tqdm import tqdm

import tnlayers
from tnlayers._layers.strategy import programs


def random_chain(rng: random.Random) -> tnlayers.Network | None:
    """An MPO of 3–6 cores, legs 2–8, bond 1–16, at most 4,096 features each way."""
    cores = rng.randint(3, 6)
    ins = tuple(rng.randint(2, 8) for _ in range(cores))
    outs = tuple(rng.randint(2, 8) for _ in range(cores))
    if max(torch.Size(ins).numel(), torch.Size(outs).numel()) > 4096:
        return None
    return tnlayers.mpo(ins, outs, rng.choice((1, 2, 4, 8, 16)))


def summary(ratios: list[float]) -> str:
    if not ratios:
        return "none"
    faster = sum(r <= 0.9 for r in ratios) / len(ratios)
    slower = sum(r >= 1.1 for r in ratios) / len(ratios)
    return (
        f"median {statistics.median(ratios):.2f}×, ≥ 10 % faster {faster:4.0%}, "
        f"≥ 10 % slower {slower:4.0%}, worst {max(ratios):.2f}×"
    )


def main() -> None:
    parser = timing_arguments(__doc__.splitlines()[0])
    parser.add_argument("--networks", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(passes=3)
    args = parser.parse_args()
    device = args.device
    count = 6 if args.quick else args.networks
    budget = 0.01 if args.quick else 0.05
    passes = 1 if args.quick else args.passes
    print(machine_line(device))
    rng = random.Random(args.seed)
    forced_ratios: list[float] = []  # every network: the model's path over the fewest FLOPs
    model_ratios: list[float] = []  # where "auto" runs sequential
    auto_ratios: list[float] = []
    first_call_steps: list[float] = []
    drawn = 0
    bar = tqdm(total=count, desc="networks", unit="net")
    while len(forced_ratios) < count:
        net = random_chain(rng)
        batch = rng.choice((16, 64, 256))
        if net is None:
            continue
        drawn += 1
        layer = tnlayers.TNLinear(net, device=device)
        if layer.plan(batch).strategies["sequential"].fewest_flops is None:
            continue
        x = torch.randn(batch, net.in_features, device=device)
        start = time.perf_counter()
        layer(x).sum().backward()  # the first call: times where the option needs it
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        first = time.perf_counter() - start

        def run(fewest: bool, layer=layer, x=x, batch=batch):
            config = layer._config
            kind = torch.device(device).type
            found = programs(config, batch, "float32", kind, "sequential", fewest)
            execution = ("sequential", found)
            step = lambda: layer._run(execution, x, use_cache=False).sum().backward()  # noqa: E731
            return synced(step, device)

        runs = {"fewest": run(True), "kept": run(False)}
        best: dict[str, float] = {}
        for _ in range(passes):
            for name, fn in runs.items():
                t = median_time(fn, budget)
                best[name] = min(best.get(name, t), t)
        forced_ratios.append(best["kept"] / best["fewest"])
        decision = layer.decision(batch, training=True)
        if decision.strategy == "sequential":
            ran = best["fewest"] if decision.fewest_flops_path else best["kept"]
            model_ratios.append(best["kept"] / best["fewest"])
            auto_ratios.append(ran / best["fewest"])
            first_call_steps.append(first / ran)
        bar.update()
    bar.close()
    print(
        f"{count} random MPO chains (3–6 cores, legs 2–8, bond 1–16, batch 16/64/256; "
        f"{drawn} drawn) where the plan keeps a grouped sequential path; training step over "
        f"the path with the fewest FLOPs, min of {passes} interleaved medians:"
    )
    print(f"  'sequential' forced, the model's path:    {summary(forced_ratios)}")
    print(f"  {len(auto_ratios)} where 'auto' runs sequential:")
    print(f"    the model's path ('model'):            {summary(model_ratios)}")
    print(f"    what 'auto' runs after timing:         {summary(auto_ratios)}")
    if first_call_steps:
        steps = statistics.median(first_call_steps)
        print(
            f"  the first call of 'auto' (planning and timing included) costs a median "
            f"{steps:.0f} training steps (max {max(first_call_steps):.0f})"
        )


if __name__ == "__main__":
    main()
