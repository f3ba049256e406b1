"""Side-by-side speed of Givens-circuit layers (Chen et al. 2024) against ``nn.Linear(n, n)``.

Rows: the V (2n − 3 gates), Reck and Clements (n(n − 1)/2 gates) layouts for n ∈ {64, 256, 784},
batch 256, forward (no_grad) and forward+backward. Columns: ``nn.Linear`` (the reference),
``GivensLinear`` with its automatic strategy and with each strategy forced, and the naive
gate-by-gate dense product (each gate an n × n matrix applied in turn: timed once where one
call takes seconds, and skipped where its FLOPs or the gates' memory would be prohibitive). Each
other cell is a median over repeats, best of ``--passes`` interleaved passes, printed as a ratio
to ``nn.Linear``. Where the *tiled* strategy applies, ``stage`` times its stages alone, the
tiles' blocks prebuilt (``StagesOnly``): the floor no faster build could go below.

    python benchmarks/bench_givens.py [--quick] [--passes 2] [--device cuda] [--batch 256]
"""

from __future__ import annotations

import torch
from _common import best_of_passes, machine_line, timing_arguments
from torch import nn

import tnlayers
from tnlayers._circuits.givens_exec import apply_stages, tile_blocks
from tnlayers._circuits.givens_plan import STRATEGIES

SIZES = (64, 256, 784)
LAYOUTS = ("v", "reck", "clements")
BATCH = 256
NAIVE_REPEAT_LIMIT = 2e10  # FLOPs: about 0.1 s per call here; beyond it one timed call
NAIVE_FLOP_LIMIT = 1e12  # beyond this (minutes per call) the naive column is skipped
NAIVE_BYTES_LIMIT = 6e9  # the gates autograd keeps for the backward pass


class GateByGate(nn.Module):
    """The naive execution: every gate an n × n matrix, applied one after another."""

    def __init__(self, layer: tnlayers.GivensLinear) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.layer.n
        eye = torch.eye(n, dtype=x.dtype, device=x.device)
        for (p, q), block in zip(self.layer.circuit.pairs, self.layer.gate_blocks(), strict=True):
            gate = eye.index_put(
                (torch.tensor([p, p, q, q]), torch.tensor([p, q, p, q])), block.reshape(4)
            )
            x = x @ gate.T
        return x


class StagesOnly(nn.Module):
    """The *tiled* strategy without its build: the tiles' blocks prebuilt once and held as a
    parameter, so a step times only the stages' batched matmuls (and their backward, into the
    blocks and through the state). The floor of *tiled* on this machine: however fast the build
    became, a tiled step could not beat this column."""

    def __init__(self, layer: tnlayers.GivensLinear, batch: int) -> None:
        super().__init__()
        self.plan = layer.plan(batch, training=True)
        with torch.no_grad():
            built = tile_blocks(layer.gate_blocks(), self.plan)
        self.mats = nn.Parameter(built.contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return apply_stages(x.T, self.mats, self.plan).T


def run(
    passes: int,
    budget: float,
    sizes: tuple[int, ...],
    batch: int,
    device: str,
    strategies: tuple[str, ...] = STRATEGIES,
    layouts: tuple[str, ...] = LAYOUTS,
) -> None:
    for n in sizes:
        for layout in layouts:
            layers: dict[str, nn.Module] = {"dense": nn.Linear(n, n).to(device)}
            for strategy in ("auto", *strategies):
                layers[strategy] = tnlayers.GivensLinear(
                    n, layout=layout, strategy=strategy, device=device
                )  # type: ignore[arg-type]
            auto = layers["auto"]
            assert isinstance(auto, tnlayers.GivensLinear)
            naive_flops = 2 * auto.num_params * n * n * batch
            naive_bytes = 4 * auto.num_params * n * n
            if naive_flops < NAIVE_FLOP_LIMIT and naive_bytes < NAIVE_BYTES_LIMIT:
                layers["naive"] = GateByGate(auto)
            extra = ["naive"]
            if "tiled" in strategies and auto.plan(batch, training=True).tiles is not None:
                layers["stages"] = StagesOnly(auto, batch).to(device)
                extra.insert(0, "stages")
            x = torch.randn(batch, n, device=device)
            if "stages" in layers:  # the same circuit, only the build left out
                with torch.no_grad():
                    torch.testing.assert_close(layers["stages"](x), auto(x), rtol=1e-4, atol=1e-4)
            for backward in (False, True):
                slow = ("naive",) if naive_flops > NAIVE_REPEAT_LIMIT else ()
                best = best_of_passes(layers, x, backward, passes, budget, device, slow)
                cells = " | ".join(
                    f"{name[:5]} {best[name] / best['dense']:7.2f}×"
                    if name in best
                    else f"{name[:5]}       —"
                    for name in ("auto", *strategies, *extra)
                )
                chosen = auto.chosen_strategy(batch, training=backward)
                print(
                    f"{layout:<8} n={n:<4} gates={auto.num_params:<6} B={batch} "
                    f"{'fwd+bwd' if backward else 'fwd    '} dense {best['dense'] * 1e3:7.3f} ms | "
                    f"{cells} | auto={chosen}",
                    flush=True,
                )
                print(f"{'':<9}{predictions(auto, batch, backward, best, strategies)}", flush=True)


def predictions(
    layer: tnlayers.GivensLinear,
    batch: int,
    backward: bool,
    best: dict[str, float],
    strategies: tuple[str, ...],
) -> str:
    """The chosen strategy's forced time over the best forced one, and the cost model's
    predicted time of each forced strategy with its error against the measured one."""
    report = layer.cost(batch, mode="training" if backward else "inference")
    forced = {s: best[s] for s in strategies if s in best}
    cells = []
    if report.strategy in forced:
        cells.append(f"chosen/best {forced[report.strategy] / min(forced.values()):4.2f}")
    guesses = []
    for name, measured in forced.items():
        cost = report.strategies[name]
        guess = cost.predicted_training_time_s if backward else cost.predicted_time_s
        guesses.append(f"{name[:5]} {guess * 1e3:.3g} ms ({guess / measured - 1:+.0%})")
    cells.append("predicted " + ", ".join(guesses))
    return " | ".join(cells)


def main() -> None:
    parser = timing_arguments(__doc__.splitlines()[0])
    parser.add_argument("--sizes", help="comma-separated n (default: the table's)")
    parser.add_argument("--strategies", help="comma-separated forced strategies (default: all)")
    parser.add_argument("--layouts", help="comma-separated layouts (default: all)")
    parser.add_argument("--batch", type=int, default=BATCH, help=f"rows (default {BATCH})")
    args = parser.parse_args()
    print(machine_line(args.device))
    strategies = tuple(args.strategies.split(",")) if args.strategies else STRATEGIES
    layouts = tuple(args.layouts.split(",")) if args.layouts else LAYOUTS
    if args.quick:
        run(1, 0.02, (16,), 8, args.device, strategies, layouts)
    else:
        sizes = tuple(int(n) for n in args.sizes.split(",")) if args.sizes else SIZES
        run(args.passes, 0.4, sizes, args.batch, args.device, strategies, layouts)


if __name__ == "__main__":
    main()
