"""Draw the recorded benchmark tables of ``benchmarks/README.md`` as plots, beside them.

Reads the first ``text`` block under a section's heading — the numbers as they were measured
and committed, not a new run — and writes ``bench_layers.png`` (tnlayers and its peers against
``nn.Linear``, per case, batch and mode) and ``bench_givens.png`` (the Givens layouts, each
strategy). The Benchmarks page shows both.

    python benchmarks/plot_tables.py   # seconds; needs matplotlib
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).parent
RATIO = re.compile(r"\|\s*([a-z][a-z .]*?)\s+([\d.]+)×")


def first_block(text: str, heading: str) -> list[str]:
    """Lines of the first fenced ``text`` block after the heading that starts with ``heading``."""
    start = text.index(heading)
    block = text.index("```text", start) + len("```text")
    return text[block : text.index("```", block)].strip().splitlines()


def parse(lines: list[str], label: re.Pattern[str]) -> list[tuple[str, dict[str, float]]]:
    """(row label, {implementation: ratio to dense}) for each row a ``label`` pattern matches."""
    rows = []
    for line in lines:
        found = label.match(line)
        if found:
            name = " ".join(part for part in found.groups() if part)
            rows.append((name, {k.strip(): float(v) for k, v in RATIO.findall(line)}))
    return rows


def plot(rows, keys, colours, title, path, note):
    fig, ax = plt.subplots(figsize=(9, 0.3 * len(rows) + 1.8))
    positions = list(range(len(rows)))[::-1]
    height = 0.8 / len(keys)
    for n, key in enumerate(keys):
        offsets = [p + 0.4 - height * (n + 0.5) for p in positions]
        values = [ratios.get(key, float("nan")) for _, ratios in rows]
        ax.barh(offsets, values, height, label=key, color=colours[n])
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_yticks(positions, [name for name, _ in rows], fontsize=7)
    ax.set_xlabel(f"time / nn.Linear's, log scale (left of the line: faster than dense). {note}")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.savefig(path, bbox_inches="tight", dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="where the PNGs go")
    out = parser.parse_args().out
    text = (HERE / "README.md").read_text(encoding="utf-8")
    layers = parse(
        first_block(text, "## Results: project CPU"),
        re.compile(r"((?:MPO|Kron) \S+ \S+)\s+(B=\d+)\s+(fwd\+bwd|fwd)\s"),
    )
    plot(
        layers,
        ["tnl auto", "raw oe", "tltorch fact", "tltorch reco", "tensorkrowch"],
        ["tab:blue", "0.55", "tab:orange", "tab:green", "tab:red"],
        "tnlayers (automatic strategy) and peers against nn.Linear, project CPU, 2026-11-23",
        out / "bench_layers.png",
        "Table above.",
    )
    givens = parse(
        first_block(text, "## Givens circuits"),
        re.compile(r"(v|reck|clements)\s+(n=\d+)\s+gates=\d+\s+B=\d+\s+(fwd\+bwd|fwd)\s"),
    )
    plot(
        givens,
        ["auto", "layer", "block", "mater"],
        ["tab:blue", "tab:orange", "tab:green", "tab:purple"],
        "Givens circuits (batch 256) against nn.Linear(n, n), project CPU, 2026-11-23",
        out / "bench_givens.png",
        "Table above.",
    )
    if not layers or not givens:
        raise SystemExit("no rows found: has the format of the tables in README.md changed?")
    print(f"wrote bench_layers.png ({len(layers)} rows) and bench_givens.png ({len(givens)} rows)")


if __name__ == "__main__":
    main()
