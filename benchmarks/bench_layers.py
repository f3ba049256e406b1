"""Side-by-side speed of tnlayers layers against nn.Linear, raw opt_einsum and peer libraries.

Every row times, in one process, forward and forward+backward of:

- ``dense``: ``nn.Linear`` of the same size (the reference of every ratio);
- ``tnl auto``: ``TNLinear`` with its automatic strategy, and ``tnl seq``/``tnl mat`` with each
  strategy forced; "chosen/best" is the forced time of the strategy ``auto`` chose over the
  better forced time (the goal: at most 1.10). Each pass builds fresh layers, whose first call
  times near-ties anew: where passes chose differently, every choice is shown
  (``auto=mat|seq chosen/best 1.31|1.00``);
- ``raw oe``: opt_einsum's cached ``contract_expression`` on the same tensors (sequential path);
- ``tltorch fact``/``tltorch rec``: tensorly-torch's BlockTT ``FactorizedLinear`` (MPO rows only,
  when the ``[bench]`` extra is installed);
- ``tensorkrowch``: the same MPO as a TensorKrowch custom network (MPO rows only, ``[bench]``).

Timing: warm-up, then the median of repeated calls; each row is measured in ``--passes`` passes
and the fastest median is kept (2 shared cores are noisy; differences under ~1.3× are ties).
GFLOP/s is the FLOP count of the implementation's own path divided by its time, printed next to
the same run's dense GEMM GFLOP/s.

    python benchmarks/bench_layers.py [--quick] [--passes 2] [--markdown out.md]
"""

from __future__ import annotations

import argparse
import platform

import opt_einsum
import torch
from _common import CASES, median_time, step
from torch import nn

import tnlayers

try:  # optional peers
    import tltorch
except ImportError:  # pragma: no cover - depends on the [bench] extra
    tltorch = None
try:
    import tensorkrowch as tk
except ImportError:  # pragma: no cover - depends on the [bench] extra
    tk = None


def tensorkrowch_layer(net: tnlayers.Network, batch: int) -> nn.Module:
    """The same MPO as a TensorKrowch custom network: cores as ParamNodes, x as a data node.

    TensorKrowch's built-in MPO class expects product-state (MPS) inputs, so a dense input is fed
    as one data node joined to every input leg and contracted core by core with
    ``contract_between`` (TensorKrowch's own contraction, un-traced).
    """

    class TKLayer(tk.TensorNetwork):
        def __init__(self) -> None:
            super().__init__(name="tnlayers_bench")
            self.cores = {
                name: tk.ParamNode(
                    shape=net.shape(name),
                    axes_names=net.legs(name),
                    name=name,
                    network=self,
                    init_method="randn",
                    std=0.1,
                )
                for name in net.tensor_names
            }
            owner = {leg: t for t in net.tensor_names for leg in net.legs(t)}
            for bond in net.bonds:
                first, second = [t for t in net.tensor_names if bond in net.legs(t)]
                self.cores[first][bond] ^ self.cores[second][bond]
            self.x = tk.Node(
                shape=(batch, *net.in_dims),
                axes_names=("batch", *net.inputs),
                name="x",
                network=self,
                data=True,
            )
            for leg in net.inputs:
                self.x[leg] ^ self.cores[owner[leg]][leg]

        def forward(self, data: torch.Tensor) -> torch.Tensor:
            self.x.tensor = data.reshape(batch, *net.in_dims)
            result = self.x
            for name in net.tensor_names:
                result = tk.contract_between(result, self.cores[name])
            order = [result.axes_names.index(leg) for leg in ("batch", *net.outputs)]
            return result.tensor.permute(order).reshape(batch, net.out_features)

    return TKLayer()


def implementations(net: tnlayers.Network, peer: dict | None, batch: int):
    """(name, module, forward FLOPs) for every implementation of one case."""
    dense = nn.Linear(net.in_features, net.out_features)
    yield "dense", dense, 2 * batch * net.in_features * net.out_features
    plan = tnlayers.plan(net, batch)
    for name, strategy in (
        ("tnl auto", "auto"),
        ("tnl seq", "sequential"),
        ("tnl mat", "materialize"),
    ):
        layer = tnlayers.TNLinear(net, strategy=strategy)
        chosen = layer.chosen_strategy(batch, training=True) if strategy == "auto" else strategy
        yield name, layer, plan.strategies[chosen].flops
    layer = tnlayers.TNLinear(net)
    seq = plan.strategies["sequential"].contractions[0]
    tensors = [layer.tensors[t] for t in net.tensor_names]
    expr = opt_einsum.contract_expression(
        seq.equation(), (batch, *net.in_dims), *[t.shape for t in tensors], optimize=seq.path
    )

    def raw(x: torch.Tensor) -> torch.Tensor:
        out = expr(x.reshape(batch, *net.in_dims), *tensors, backend="torch")
        return out.reshape(batch, net.out_features) + layer.bias

    yield "raw oe", raw, seq.flops
    if tltorch is not None and peer is not None:
        rank = [1, *[peer["rank"]] * (len(net.in_dims) - 1), 1]
        for impl in ("factorized", "reconstructed"):
            module = tltorch.FactorizedLinear(
                in_tensorized_features=net.in_dims,
                out_tensorized_features=net.out_dims,
                factorization="blocktt",
                rank=rank,
                implementation=impl,
            )
            yield f"tltorch {impl[:4]}", module, None
    if tk is not None and peer is not None:
        yield "tensorkrowch", tensorkrowch_layer(net, batch), None


def run(passes: int, budget: float, quick: bool) -> list[dict]:
    torch.set_num_threads(torch.get_num_threads())
    rows = []
    cases = CASES[:1] + CASES[-2:-1] if quick else CASES
    batches = (64,) if quick else (64, 1024)
    for label, build, peer in cases:
        net = build()
        for batch in batches:
            x = torch.randn(batch, net.in_features)
            for backward in (False, True):
                best: dict[str, float] = {}
                flops: dict[str, int | None] = {}
                predicted: dict[str, float] = {}
                chosen_by_pass: list[str] = []  # each pass builds fresh layers, which time anew
                for _ in range(passes):
                    for name, module, fwd_flops in implementations(net, peer, batch):
                        seconds = median_time(step(module, x, backward), budget)
                        best[name] = min(best.get(name, float("inf")), seconds)
                        flops[name] = fwd_flops * (3 if backward else 1) if fwd_flops else None
                        if name == "tnl auto":
                            chosen_by_pass.append(module.chosen_strategy(batch, training=backward))
                            report = module.cost(
                                batch, mode="training" if backward else "inference"
                            )
                            for strategy, cost in report.strategies.items():
                                predicted[strategy] = (
                                    cost.predicted_training_time_s
                                    if backward
                                    else cost.predicted_time_s
                                )
                chosen = chosen_by_pass[-1]
                forced_name = "tnl seq" if chosen == "sequential" else "tnl mat"
                flops["tnl auto"] = flops[forced_name]  # FLOPs of the strategy this mode runs
                rows.append(
                    {
                        "case": label,
                        "batch": batch,
                        "mode": "fwd+bwd" if backward else "fwd",
                        "times": best,
                        "flops": flops,
                        "chosen": chosen,
                        "chosen_by_pass": chosen_by_pass,
                        "predicted": predicted,
                    }
                )
                print(format_row(rows[-1]), flush=True)
    return rows


def format_row(row: dict) -> str:
    dense = row["times"]["dense"]
    dense_rate = row["flops"]["dense"] / dense / 1e9
    cells = [
        f"{row['case']:<18}B={row['batch']:<5}{row['mode']:<8}dense {dense * 1e3:7.3f} ms"
        f" ({dense_rate:5.1f} GF/s)"
    ]
    for name, seconds in row["times"].items():
        if name == "dense":
            continue
        rate = row["flops"][name] / seconds / 1e9 if row["flops"][name] else float("nan")
        cells.append(f"{name} {seconds / dense:5.2f}× ({rate:5.1f} GF/s)")
    # The goal compares the chosen strategy with the better one, both timed as forced layers in
    # the same pass (comparing the separate "auto" layer would add run-to-run noise).
    t = row["times"]
    forced = {"sequential": t["tnl seq"], "materialize": t["tnl mat"]}
    # Where the passes' fresh layers timed a near-tie differently, every choice is shown: the
    # auto column is the better pass, and a wrong choice in another pass is still a result.
    choices = list(dict.fromkeys(row.get("chosen_by_pass") or [row["chosen"]]))
    names = "|".join(c[:3] for c in choices)
    ratios = "|".join(f"{forced[c] / min(forced.values()):4.2f}" for c in choices)
    cells.append(f"auto={names} chosen/best {ratios}")
    # The cost model's predictions beside what was measured, with their error.
    guesses = []
    for name, measured in forced.items():
        guess = row["predicted"].get(name)
        if guess is not None:
            guesses.append(f"{name[:3]} {guess * 1e3:.3g} ms ({guess / measured - 1:+.0%})")
    cells.append("predicted " + ", ".join(guesses))
    return " | ".join(cells)


def overhead(budget: float) -> dict[str, float]:
    """Per-call time at batch 1 of the 4-core MPO (sequential) against its raw contraction."""
    net = tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), 2)
    layer = tnlayers.TNLinear(net, strategy="sequential")
    x = torch.randn(1, 784)
    seq = tnlayers.plan(net, 1).strategies["sequential"].contractions[0]
    program = tnlayers.contraction.compile_contraction(seq)
    tensors = [layer.tensors[t] for t in net.tensor_names]
    expr = opt_einsum.contract_expression(seq.equation(), *seq.shapes(), optimize=seq.path)
    dense = nn.Linear(784, 256)
    with torch.no_grad():
        return {
            "layer": median_time(lambda: layer(x), budget),
            "program": median_time(
                lambda: (
                    tnlayers.contraction.run_program(
                        program, [x.reshape(1, 4, 7, 7, 4), *tensors]
                    ).reshape(1, 256)
                    + layer.bias
                ),
                budget,
            ),
            "raw oe": median_time(
                lambda: expr(x.reshape(1, 4, 7, 7, 4), *tensors, backend="torch"), budget
            ),
            "dense": median_time(lambda: dense(x), budget),
        }


def cached_inference(budget: float) -> tuple[float, float]:
    """Eval-mode forward with the cached materialized weight vs nn.Linear, batch 1024."""
    net = tnlayers.mpo((4, 8, 8, 4), (4, 8, 8, 4), 8)
    layer = tnlayers.TNLinear(net, strategy="materialize").eval()
    dense = nn.Linear(1024, 1024).eval()
    x = torch.randn(1024, 1024)
    with torch.no_grad():
        return median_time(lambda: layer(x), budget), median_time(lambda: dense(x), budget)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two cases, batch 64, short timing")
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--budget", type=float, default=0.25, help="seconds per measurement")
    args = parser.parse_args()
    budget = 0.02 if args.quick else args.budget
    passes = 1 if args.quick else args.passes
    print(
        f"# torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}, tltorch: {tltorch is not None}"
    )
    run(passes, budget, args.quick)
    calls = overhead(budget)
    print(
        "per call, MPO 784→256 D=2, batch 1 (µs): "
        + ", ".join(f"{k} {v * 1e6:.1f}" for k, v in calls.items())
        + f"; layer overhead over its program {1e6 * (calls['layer'] - calls['program']):.1f} µs"
    )
    cached, dense = cached_inference(budget)
    print(f"eval forward with cached W, MPO 1024² D=8, batch 1024: {cached / dense:.3f}× dense")


if __name__ == "__main__":
    main()
