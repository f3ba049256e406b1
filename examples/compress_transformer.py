"""Compress a small decoder-only transformer with low rank, MPO, Kronecker and BTT, then fine-tune.

A byte-level language model — 4 pre-norm blocks of width 256, 4 heads, MLP 1024, context 128,
embedding tied to the output head — is trained on Python source code: the standard library of
the interpreter running this script (``Lib/*.py``, PSF licence, read from disk: nothing is
downloaded), 90 % for training and the last 10 % for validation. Its attention projections and
MLP layers (12 matrices per block) are then compressed to 2×, 4× and 8× fewer parameters with
each method, fine-tuned briefly with the same recipe, and compared side by side: parameters,
validation perplexity before and after fine-tuning, and CPU latency per token against the dense
model (batch 1, a full context, inference). tensorly-torch's ``FactorizedLinear.from_linear``
(block tensor-train) is the peer row where it is installed.

    python examples/compress_transformer.py          # the full run (about 10 minutes, 2 cores)
    python examples/compress_transformer.py --quick  # a tiny model, a few steps (CI)
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from torch import nn
from tqdm.auto import tqdm

import tnlayers

PROJECTIONS = ["*.self_attn.*", "*.linear1", "*.linear2"]
RATIOS = (2, 4, 8)


class TinyGPT(nn.Module):
    """A decoder-only transformer over bytes, built from ``nn.TransformerEncoderLayer``."""

    def __init__(self, width: int, layers: int, heads: int, context: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(256, width)
        self.position = nn.Embedding(context, width)
        block = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0,
                                           activation="gelu", batch_first=True,
                                           norm_first=True)  # fmt: skip
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, 256, bias=False)
        self.head.weight = self.embed.weight  # tied: compress keeps it dense, and says so
        for table in (self.embed, self.position):  # GPT-2's scale: logits start near uniform
            nn.init.normal_(table.weight, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        length = tokens.shape[1]
        h = self.embed(tokens) + self.position(torch.arange(length, device=tokens.device))
        mask = nn.Transformer.generate_square_subsequent_mask(length, device=tokens.device)
        return self.head(self.norm(self.blocks(h, mask=mask, is_causal=True)))


def corpus(limit: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Training and validation bytes of the standard library's source, and where it came from."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(stdlib.glob("*.py"))
    data = b"".join(f.read_bytes() for f in files)[:limit]
    tokens = torch.frombuffer(bytearray(data), dtype=torch.uint8).long()
    split = int(0.9 * len(tokens))
    source = (
        f"{len(data):,} bytes of Python {sys.version.split()[0]}'s standard library "
        f"({len(files)} modules in {stdlib.name}/, sorted by name; PSF licence)"
    )
    return tokens[:split], tokens[split:], source


def windows(tokens: torch.Tensor, count: int, context: int, generator: torch.Generator
            ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    starts = torch.randint(0, len(tokens) - context - 1, (count,), generator=generator)
    rows = torch.stack([tokens[s : s + context + 1] for s in starts.tolist()])
    return rows[:, :-1], rows[:, 1:]


def perplexity(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> float:
    model.eval()
    x, y = data
    with torch.no_grad():
        losses = [nn.functional.cross_entropy(model(a).flatten(0, 1), b.flatten())
                  for a, b in zip(x.split(16), y.split(16), strict=True)]  # fmt: skip
    return math.exp(statistics.mean(float(v) for v in losses))


def train(model: nn.Module, tokens: torch.Tensor, steps: int, lr: float, batch: int,
          context: int, seed: int, desc: str) -> None:  # fmt: skip
    """AdamW with a short warm-up and a cosine decay to zero."""
    model.train()
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min((s + 1) / warmup, 0.5 * (1 + math.cos(math.pi * s / max(1, steps)))),
    )
    for _ in tqdm(range(steps), desc=desc, leave=False):
        x, y = windows(tokens, batch, context, generator)
        loss = nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()


def latency_per_token(models: dict[str, nn.Module], context: int, repeats: int) -> dict[str, float]:
    """Microseconds per token of a batch-1 forward over a full context, interleaved so that
    every model sees the same machine load; median over ``repeats``."""
    x = torch.randint(0, 256, (1, context), generator=torch.Generator().manual_seed(0))
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.no_grad():
        for model in models.values():
            model.eval()
            model(x)  # warm up: plans, caches
        for _ in range(repeats):
            for name, model in models.items():
                start = time.perf_counter()
                model(x)
                times[name].append(time.perf_counter() - start)
    return {name: 1e6 * statistics.median(t) / context for name, t in times.items()}


def btt_builder(ratio: float) -> Callable[[int, int], tnlayers.Network]:
    """The BTT network of the largest rank within ``ratio`` of each layer's weights."""

    def build(in_features: int, out_features: int) -> tnlayers.Network:
        rank = 1
        while tnlayers.btt(in_features, out_features, rank + 1).num_params <= ratio * (
            in_features * out_features
        ):
            rank += 1
        return tnlayers.btt(in_features, out_features, rank)

    return build


def tltorch_variant(model: nn.Module, ratio: float) -> nn.Module | None:
    """tensorly-torch's block tensor-train ``from_linear`` on the same layers, or ``None``.

    tensorly-torch cannot reach the projections fused inside ``nn.MultiheadAttention``; they are
    unfused with tnlayers first. Each layer gets the largest TT rank within ``1 / ratio`` of its
    weights (tensorly-torch's fractional ``rank`` is not a parameter ratio).
    """
    try:
        import tltorch
    except ImportError:
        return None
    import copy
    import warnings

    def factorized(linear: nn.Linear) -> nn.Module:
        def build(rank: int) -> tuple[nn.Module, int]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                layer = tltorch.FactorizedLinear.from_linear(
                    linear, rank=rank, factorization="blocktt", n_tensorized_modes=2
                )
            return layer, sum(p.numel() for n, p in layer.named_parameters() if "bias" not in n)

        low, high = 1, min(linear.in_features, linear.out_features)
        best = build(1)[0]
        while low <= high:  # parameters grow with the rank: the largest rank within budget
            middle = (low + high) // 2
            layer, weights = build(middle)
            if weights <= linear.weight.numel() / ratio:
                best, low = layer, middle + 1
            else:
                high = middle - 1
        return best

    small = copy.deepcopy(model)
    for block in small.blocks.layers:
        block.self_attn = tnlayers.UnfusedMultiheadAttention.from_attention(block.self_attn)
        block.activation_relu_or_gelu = 0  # the fused fast path needs the fused weights
        for owner, name in [(block.self_attn, p) for p in ("q_proj", "k_proj", "v_proj",
                            "out_proj")] + [(block, "linear1"), (block, "linear2")]:  # fmt: skip
            setattr(owner, name, factorized(getattr(owner, name)))
    return small


def projection_params(model: nn.Module) -> int:
    """Weights of the attention projections and MLP layers (what is compressed)."""
    total = 0
    for block in model.blocks.layers:
        for module in (block.self_attn, block.linear1, block.linear2):
            total += sum(p.numel() for n, p in module.named_parameters() if "bias" not in n)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny model, a few steps (CI)")
    parser.add_argument("--steps", type=int, default=500, help="training steps of the dense model")
    parser.add_argument("--finetune", type=int, default=40, help="fine-tuning steps per variant")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(""))
    args = parser.parse_args()
    width, layers, heads, context, batch, size, repeats = 256, 4, 4, 128, 16, 2_000_000, 15
    if args.quick:
        width, layers, heads, context, batch, size, repeats = 32, 1, 2, 16, 4, 20_000, 2
        args.steps, args.finetune = 3, 2
    torch.set_num_threads(2)
    torch.manual_seed(0)
    train_tokens, valid_tokens, source = corpus(size)
    valid = windows(valid_tokens, 64 if not args.quick else 8, context,
                    torch.Generator().manual_seed(1))  # fmt: skip

    dense = TinyGPT(width, layers, heads, context)
    start = time.perf_counter()
    train(dense, train_tokens, args.steps, 2e-3, batch, context, 0, "dense")
    dense_seconds = time.perf_counter() - start
    dense_ppl = perplexity(dense, valid)
    dense_projections = projection_params(dense)

    variants: dict[str, tuple[str, int, nn.Module, float]] = {}
    methods: list[tuple[str, Callable[[float], dict]]] = [
        ("low rank", lambda r: {"method": "low_rank", "param_ratio": 1 / r}),
        ("MPO", lambda r: {"method": "mpo", "param_ratio": 1 / r}),
        ("Kronecker", lambda r: {"method": "kronecker", "param_ratio": 1 / r}),
        ("BTT", lambda r: {"network": btt_builder(1 / r)}),
        ("auto", lambda r: {"method": "auto", "param_ratio": 1 / r}),
    ]
    ratios = RATIOS[:1] if args.quick else RATIOS
    jobs = [(label, ratio, settings) for label, settings in methods for ratio in ratios]
    reports = {}
    for label, ratio, settings in tqdm(jobs, desc="compress + fine-tune"):
        small, report = tnlayers.compress(dense, names=PROJECTIONS, **settings(ratio))
        reports[f"{label} {ratio}x"] = report
        before = perplexity(small, valid)
        train(small, train_tokens, args.finetune, 5e-4, batch, context, 1, f"{label} {ratio}x")
        variants[f"{label} {ratio}x"] = (label, ratio, small, before)
    peers = 0
    for ratio in ratios:
        peer = tltorch_variant(dense, ratio)
        if peer is None:
            break
        before = perplexity(peer, valid)
        train(peer, train_tokens, args.finetune, 5e-4, batch, context, 1, f"tltorch {ratio}x")
        variants[f"tensorly-torch BlockTT {ratio}x"] = (
            "tensorly-torch BlockTT",
            ratio,
            peer,
            before,
        )
        peers += 1

    timing = latency_per_token(
        {"dense": dense, **{k: v[2] for k, v in variants.items()}}, context, repeats
    )
    rows = []
    for name, (label, ratio, model, before) in variants.items():
        rows.append({
            "variant": name, "method": label, "ratio": ratio,
            "projection_params": projection_params(model),
            "model_params": sum(p.numel() for p in model.parameters()),
            "ppl_compressed": before, "ppl_finetuned": perplexity(model, valid),
            "us_per_token": timing[name],
        })  # fmt: skip

    dense_total = sum(p.numel() for p in dense.parameters())
    lines = [
        f"Corpus: {source}. Model: {layers} blocks, width {width}, {heads} heads, MLP "
        f"{4 * width}, context {context}, {dense_total:,} parameters ({dense_projections:,} in "
        f"the attention projections and MLPs). Dense training: {args.steps} AdamW steps of "
        f"{batch}×{context} bytes ({dense_seconds:.0f} s). Each variant: compressed from the "
        f"trained model, then {args.finetune} fine-tuning steps. Perplexity on "
        f"{valid[0].shape[0]} validation windows; latency: batch 1, {context} tokens, median "
        f"of {repeats}, interleaved with the dense model. One seed.",
        "",
        "| variant | projection params | model params | ppl after compress | ppl after fine-tune "
        "| µs / token | latency vs dense |",
        "|---|---|---|---|---|---|---|",
        f"| dense | {dense_projections:,} | {dense_total:,} | {dense_ppl:.2f} | {dense_ppl:.2f} | "
        f"{timing['dense']:.1f} | 1.00× |",
    ]
    for row in rows:
        lines.append(
            f"| {row['variant']} | {row['projection_params']:,} | {row['model_params']:,} | "
            f"{row['ppl_compressed']:.2f} | {row['ppl_finetuned']:.2f} | "
            f"{row['us_per_token']:.1f} | {row['us_per_token'] / timing['dense']:.2f}× |"
        )
    if not peers:
        lines += [
            "",
            "(tensorly-torch is not installed: no peer row; `pip install tensorly-torch`)",
        ]
    lines += ["", 'What `method="auto"` chose (layers per structure):', ""]
    for ratio in ratios:
        chosen: dict[str, int] = {}
        for layer in reports[f"auto {ratio}x"].layers:
            chosen[layer.structure] = chosen.get(layer.structure, 0) + 1
        lines.append(f"- {ratio}×: " + ", ".join(f"{k} {v}" for k, v in sorted(chosen.items())))
    table = "\n".join(lines)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(table + "\n")
    (args.out / "results.json").write_text(json.dumps(
        {"dense": {"ppl": dense_ppl, "us_per_token": timing["dense"],
                   "projection_params": dense_projections}, "rows": rows}, indent=1))  # fmt: skip
    print(table)
    middle = ratios[len(ratios) // 2]
    print(
        f"\nValidation perplexity (lower is better; a byte model guessing uniformly scores 256): "
        f"dense {dense_ppl:.2f}; at {middle}× fewer parameters after fine-tuning: "
        + ", ".join(f"{r['method']} {r['ppl_finetuned']:.2f}" for r in rows if r["ratio"] == middle)
    )

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        x = [r["projection_params"] / dense_projections for r in mine]
        left.plot(x, [r["ppl_finetuned"] for r in mine], marker="o", label=method)
        right.plot(x, [r["us_per_token"] / timing["dense"] for r in mine], marker="o", label=method)
    left.axhline(dense_ppl, color="black", linestyle="--", linewidth=1, label="dense")
    right.axhline(1.0, color="black", linestyle="--", linewidth=1, label="dense")
    for ax, title in ((left, "validation perplexity after fine-tuning"),
                      (right, "CPU latency per token / dense")):  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_xlabel("compressed-layer parameters / dense")
        ax.set_title(title, fontsize=10)
    left.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out / "compress_transformer.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
