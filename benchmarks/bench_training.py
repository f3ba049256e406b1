"""Training steps against their goals: tnlayers, nn.Linear and the best hand-written form.

Every row times one training step (forward + backward, gradients into ``.grad``) of:

- ``dense``: ``nn.Linear`` of the same size, the reference of every ratio;
- ``tnl``: ``TNLinear`` with its automatic strategy (``KronLinear`` for the Kronecker rows);
- ``einsum W``: the hand-written form a user types in three lines: the weight built by one
  ``torch.einsum`` over the same cores, then ``F.linear``;
- ``2 GEMMs`` (Kronecker rows): the input reshaped and multiplied by the two factors, the weight
  never formed, and the same Kronecker bias as ``KronLinear``'s default
  (``bench_kron.TwoGemmKron``).

Rows are interleaved over ``--passes`` passes and the fastest median kept, so a shared machine's
drift hits every implementation alike. The last column says whether the row meets its goal of
the training-speed issue. Under each row, the same modules timed for a whole training-loop
step: the same, then an ``AdamW`` update (the optimizer's share is not part of the goals; it is
what a training loop pays on top, and it grows with the parameter count). Batch 1 (goal 5) is
timed per call in microseconds.

Where tnlayers runs the *sequential* strategy (the weight never formed), a second line gives the
step's floor: the bytes it must move (every step of the path reads its operands and writes its
result once, and its backward reads the result's gradient and the other operand and writes each
needed gradient once), that traffic at this run's measured copy bandwidth, the GB/s achieved,
and the FLOP floor at this run's measured GEMM rate.

    python benchmarks/bench_training.py [--quick] [--passes 3] [--device cuda] [--dtype bfloat16]

On a GPU, ``--dtype bfloat16`` runs tnlayers and ``nn.Linear`` under autocast at that precision.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from _common import best_of_passes, machine_line, median_time, synced, timing_arguments
from bench_kron import TwoGemmKron
from torch import nn

import tnlayers

# (label, network builder, batches, goal per batch: ratio to dense the row must not exceed)
BATCH_GOALS = {64: 1.5, 256: 1.05, 1024: 1.05}
LARGE_GOALS = {256: 1.05, 1024: 1.05}
MPO_ROWS: list[tuple[str, Callable[[], tnlayers.Network], dict[int, float]]] = [
    ("MPO 784→256 D=2", lambda: tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), 2), BATCH_GOALS),
    ("MPO 784→256 D=8", lambda: tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), 8), BATCH_GOALS),
    ("MPO 784→256 D=16", lambda: tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), 16), LARGE_GOALS),
    ("MPO 1024² D=8", lambda: tnlayers.mpo((4, 8, 8, 4), (4, 8, 8, 4), 8), BATCH_GOALS),
    ("MPO 1024² D=32", lambda: tnlayers.mpo((4, 8, 8, 4), (4, 8, 8, 4), 32), LARGE_GOALS),
    ("MPO 4096² D=16", lambda: tnlayers.mpo((8, 8, 8, 8), (8, 8, 8, 8), 16), {256: 1.05}),
]
KRON_ROWS: list[tuple[str, int, dict[int, float]]] = [
    ("Kron 784² K=1", 1, {64: 0.5, 1024: 0.35}),
    ("Kron 784² K=4", 4, {1024: 1.05}),
]


class EinsumWeight(nn.Module):
    """The weight built by one ``torch.einsum`` over the network's tensors, then ``F.linear``."""

    def __init__(self, net: tnlayers.Network, source: tnlayers.TNLinear) -> None:
        super().__init__()
        self.net = net
        self.cores = nn.ParameterList(
            nn.Parameter(source.tensors[name].detach().clone()) for name in net.tensor_names
        )
        self.bias = nn.Parameter(torch.zeros(net.out_features))
        letters = iter("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
        letter = {leg: next(letters) for t in net.tensor_names for leg in net.legs(t)}
        lhs = ",".join("".join(letter[leg] for leg in net.legs(t)) for t in net.tensor_names)
        self.equation = f"{lhs}->" + "".join(letter[leg] for leg in (*net.outputs, *net.inputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = torch.einsum(self.equation, *self.cores)
        return nn.functional.linear(x, weight.reshape(self.net.out_features, -1), self.bias)


def training_step(
    module: nn.Module, x: torch.Tensor, autocast: torch.dtype | None, optimizer: bool = False
):
    """One step: gradients into ``.grad``; with ``optimizer``, then an ``AdamW`` update."""
    cast = (
        torch.autocast(x.device.type, dtype=autocast)
        if autocast is not None
        else contextlib.nullcontext()
    )
    params = list(module.parameters())
    update = torch.optim.AdamW(params, lr=1e-6) if optimizer else None

    def run() -> None:
        for p in params:
            p.grad = None
        with cast:
            y = module(x)
        y.float().sum().backward()
        if update is not None:
            update.step()

    return run


def time_row(
    modules: dict[str, nn.Module],
    x: torch.Tensor,
    passes: int,
    budget: float,
    autocast: torch.dtype | None,
    optimizer: bool = False,
) -> dict[str, float]:
    return best_of_passes(
        modules,
        x,
        True,
        passes,
        budget,
        x.device.type,
        make_step=lambda module: training_step(module, x, autocast, optimizer),
    )


def copy_bandwidth(device: str, budget: float) -> float:
    """Bytes per second of a 64 MiB copy (read + write): this run's bandwidth yardstick."""
    source = torch.randn(16 * 2**20, device=device)
    target = torch.empty_like(source)
    seconds = median_time(synced(lambda: target.copy_(source), device), budget)
    return 2 * source.numel() * source.element_size() / seconds


def gemm_rate(device: str, budget: float) -> float:
    """FLOP/s of a 1024³ float32 matrix product: this run's compute yardstick."""
    a, b = torch.randn(1024, 1024, device=device), torch.randn(1024, 1024, device=device)
    return 2 * 1024**3 / median_time(synced(lambda: a @ b, device), budget)


def sequential_floor(network: tnlayers.Network, batch: int, itemsize: int) -> tuple[int, int]:
    """Bytes and FLOPs of a sequential training step at its floor (the input needs no grad).

    Forward: each step of the path reads its operands and writes its result. Backward: for each
    operand that needs a gradient, read the result's gradient and the other operands, write the
    gradient. Nothing is counted twice or copied; the bias is left out.
    """
    strategy = tnlayers.plan(network, batch, input_requires_grad=False).strategies["sequential"]
    elements = 0
    for step in strategy.steps:
        operands = sum(step.operand_sizes)
        # Each needed gradient: read the result's gradient and the other operands, write the
        # operand's gradient (its own size), i.e. the result plus all operands.
        elements += operands + step.size + sum(step.requires_grad) * (step.size + operands)
    return elements * itemsize, strategy.training_flops


def floor_line(
    layer: tnlayers.TNLinear, batch: int, seconds: float, bandwidth: float, rate: float
) -> bool:
    """Print the sequential row's floor; whether it is within 1.5× of its bytes bound."""
    moved, flops = sequential_floor(layer.network, batch, 4)
    bound = moved / bandwidth
    within = seconds <= 1.5 * bound
    print(
        f"{'':<18}   sequential: moves {moved / 1e6:6.1f} MB, bytes bound {bound * 1e3:6.3f} ms "
        f"at {bandwidth / 1e9:4.1f} GB/s; achieved {moved / seconds / 1e9:5.1f} GB/s = "
        f"{seconds / bound:4.1f}× the bound (goal ≤ 1.5× {'met' if within else 'NOT met'}); "
        f"FLOP bound {flops / rate * 1e3:6.3f} ms at {rate / 1e9:4.0f} GF/s",
        flush=True,
    )
    return within


def report(label: str, batch: int, best: dict[str, float], goal: float, rows: list[dict]) -> bool:
    dense = best["dense"]
    others = {k: v / dense for k, v in best.items() if k != "dense"}
    hand = min(v for k, v in others.items() if k != "tnl")
    met = others["tnl"] <= goal
    rows.append({"row": f"{label} B={batch}", "tnl": others["tnl"], "hand": hand, "goal": goal})
    cells = " | ".join(f"{k} {v:5.2f}×" for k, v in others.items())
    print(
        f"{label:<18} B={batch:<5} dense {dense * 1e3:7.3f} ms | {cells} | goal ≤ {goal:.2f}× "
        f"{'met' if met else 'NOT met'} | vs best hand-written {others['tnl'] / hand:4.2f}",
        flush=True,
    )
    return met


def optimizer_line(best: dict[str, float], goal: float) -> bool:
    """Print the row's ratios for a whole step with ``AdamW``; whether tnlayers is within goal.

    Not the goal's measure (forward and backward alone), but what a training loop pays: the
    optimizer's update touches every parameter, and a dense layer has many more of them.
    """
    dense = best["dense"]
    cells = " | ".join(f"{k} {v / dense:5.2f}×" for k, v in best.items() if k != "dense")
    within = best["tnl"] / dense <= goal
    print(
        f"{'':<18}   + AdamW step: dense {dense * 1e3:7.3f} ms | {cells} | "
        f"{'within' if within else 'above'} the row's goal",
        flush=True,
    )
    return within


def plot(rows: list[dict], path: str, header: str) -> None:
    """Ratios to dense per row: tnlayers, the best hand-written form, and the goal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.32 * len(rows) + 1.6))
    positions = list(range(len(rows)))[::-1]
    ax.barh([p + 0.2 for p in positions], [r["tnl"] for r in rows], 0.4, label="tnlayers")
    ax.barh(
        [p - 0.2 for p in positions],
        [r["hand"] for r in rows],
        0.4,
        label="best hand-written form",
        color="0.7",
    )
    ax.scatter(
        [r["goal"] for r in rows],
        positions,
        marker="|",
        s=200,
        color="tab:red",
        zorder=3,
        label="goal",
    )
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_yticks(positions, [r["row"] for r in rows], fontsize=8)
    ax.set_xlabel("training-step time / nn.Linear's (below 1: faster than dense)")
    ax.set_title(header, fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    fig.savefig(path, bbox_inches="tight", dpi=110)


def batch_one(device: str, budget: float) -> None:
    """Goal 5: a training-mode forward at batch 1, and eval with the cached weight."""
    net = tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), 2)
    layer = tnlayers.TNLinear(net, device=device)
    dense = nn.Linear(784, 256, device=device)
    x = torch.randn(1, 784, device=device)
    train = {
        name: median_time(synced(lambda m=m: m(x), device), budget)
        for name, m in (("tnl", layer.train()), ("dense", dense.train()))
    }
    with torch.no_grad():
        layer.eval()
        layer(x)  # fills the cache
        cached = median_time(synced(lambda: layer(x), device), budget)
        plain = median_time(synced(lambda: dense(x), device), budget)
    print(
        f"batch 1, MPO 784→256 D=2: training-mode forward {train['tnl'] * 1e6:.1f} µs "
        f"(dense {train['dense'] * 1e6:.1f}; goal ≤ 40 µs "
        f"{'met' if train['tnl'] <= 40e-6 else 'NOT met'}); eval with cached W "
        f"{cached * 1e6:.1f} µs vs dense {plain * 1e6:.1f} µs (goal ≤ dense + 5 µs "
        f"{'met' if cached <= plain + 5e-6 else 'NOT met'})"
    )


def training_rows(
    quick: bool, device: str
) -> Iterator[tuple[str, int, float, dict[str, nn.Module]]]:
    """Each row of the table: its label, batch, goal, and the modules timed side by side
    (``dense``, ``tnl`` and the best hand-written form), built when the row comes up."""
    for label, build, goals in MPO_ROWS[:1] if quick else MPO_ROWS:
        net = build()
        for batch, goal in goals.items():
            if quick and batch > 64:
                continue
            layer = tnlayers.TNLinear(net, device=device)
            yield (
                label,
                batch,
                goal,
                {
                    "dense": nn.Linear(net.in_features, net.out_features, device=device),
                    "tnl": layer,
                    "einsum W": EinsumWeight(net, layer),
                },
            )
    for label, terms, goals in KRON_ROWS[:1] if quick else KRON_ROWS:
        for batch, goal in goals.items():
            if quick and batch > 64:
                continue
            yield (
                label,
                batch,
                goal,
                {
                    "dense": nn.Linear(784, 784, device=device),
                    "tnl": tnlayers.KronLinear(784, 784, bodies=2, terms=terms, device=device),
                    "2 GEMMs": TwoGemmKron((28, 28), (28, 28), terms, kron_bias=True).to(device),
                },
            )


def main() -> None:
    parser = timing_arguments(__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--plot", help="save the ratios as a bar chart (PNG) there")
    args = parser.parse_args()
    device = args.device
    autocast = None if args.dtype == "float32" else getattr(torch, args.dtype)
    budget = 0.02 if args.quick else 0.3
    passes = 1 if args.quick else args.passes
    header = machine_line(device) + f", {args.dtype}"
    bandwidth, rate = copy_bandwidth(device, budget), gemm_rate(device, budget)
    print(f"{header}; copy {bandwidth / 1e9:.1f} GB/s, GEMM {rate / 1e9:.0f} GF/s")
    met = total = near = sequential = with_optimizer = 0
    results: list[dict] = []
    for label, batch, goal, modules in training_rows(args.quick, device):
        layer = modules["tnl"]
        x = torch.randn(batch, layer.in_features, device=device)
        best = time_row(modules, x, passes, budget, autocast)
        met += report(label, batch, best, goal, results)
        total += 1
        if layer.chosen_strategy(batch, training=True) == "sequential":
            near += floor_line(layer, batch, best["tnl"], bandwidth, rate)
            sequential += 1
        with_optimizer += optimizer_line(
            time_row(modules, x, passes, budget, autocast, optimizer=True), goal
        )
    batch_one(device, budget)
    print(f"{met} of {total} training rows meet their goal")
    print(f"{with_optimizer} of {total} rows within their goal for a whole step with AdamW")
    print(f"{near} of {sequential} sequential rows within 1.5× of their bytes-moved bound")
    if args.plot:
        plot(results, args.plot, header.lstrip("# "))


if __name__ == "__main__":
    main()
