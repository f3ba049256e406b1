"""The ``tnlayers`` console command."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ._core.builders import kronecker, low_rank, mpo
from ._core.catalogue import CATALOGUE
from ._core.cost import cost
from ._core.errors import TNLayersError
from ._core.network import Network

__all__ = ["main"]


def _ints(text: str) -> tuple[int, ...] | int:
    """``"4,7,7,4"`` or ``"4x7x7x4"`` → a tuple; ``"784"`` → an int."""
    try:
        parts = [int(p) for p in text.replace("x", ",").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected positive integers separated by commas (e.g. 4,7,7,4), got {text!r}"
        ) from None
    if any(p < 1 for p in parts):
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return parts[0] if len(parts) == 1 else tuple(parts)


def _positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a positive {kind.__name__}, got {text!r}"
            ) from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


# Which options each kind of network reads; defaults apply where the option is not given.
_OPTIONS = {
    "mpo": {"in_dims", "out_dims", "bond", "cores"},
    "kronecker": {"in_dims", "out_dims", "terms", "cores"},
    "low-rank": {"in_dims", "out_dims", "rank"},
}
_DEFAULTS = {"bond": 4, "terms": 1, "rank": 16, "cores": None}
_FLAGS = {
    "in_dims": "--in",
    "out_dims": "--out",
    "bond": "--bond",
    "cores": "--cores",
    "terms": "--terms",
    "rank": "--rank",
}


def _sizes(text: str) -> dict[str, int]:
    """``"i=28,k=28,a=8"`` → ``{"i": 28, "k": 28, "a": 8}``."""
    sizes = {}
    for item in text.split(","):
        leg, _, size = item.partition("=")
        if not leg.strip() or not size.strip().isdigit() or int(size) < 1:
            raise argparse.ArgumentTypeError(
                f"expected leg=size pairs separated by commas (e.g. i=28,a=8), got {item!r}"
            )
        sizes[leg.strip()] = int(size)
    return sizes


def _is_einsum(text: str) -> bool:
    return "->" in text


def _network_from_args(args: argparse.Namespace) -> Network:
    if _is_einsum(args.network):
        if args.sizes is None:
            raise TNLayersError(
                "a network given as a string needs the size of every leg: "
                "--sizes i=28,k=28,j=64,a=8,b=8"
            )
        shape_flags = [_FLAGS[name] for name in _FLAGS if getattr(args, name) is not None]
        if shape_flags:
            raise TNLayersError(
                f"{', '.join(shape_flags)} does not apply to a network given as a string"
            )
        return Network.from_einsum(args.network, sizes=args.sizes)
    if args.sizes is not None:
        raise TNLayersError("--sizes applies only to a network given as a string")
    kind = args.network if args.network in _OPTIONS else None
    if kind is None and args.network not in CATALOGUE and not args.network.endswith(".json"):
        names = ", ".join([*_OPTIONS, *CATALOGUE])
        raise TNLayersError(
            f"unknown network {args.network!r}; choose one of: {names}, a .json file, or a "
            "string such as 'ia,ajb,bk : ik -> j' with --sizes"
        )
    given = {name for name in _FLAGS if getattr(args, name) is not None}
    unused = sorted(given - _OPTIONS.get(kind or "", set()))
    if unused:
        flags = ", ".join(_FLAGS[name] for name in unused)
        what = f"the {kind} network" if kind else f"{args.network!r}, whose sizes are fixed"
        raise TNLayersError(f"{flags} does not apply to {what}")
    if kind is not None:
        for name in ("in_dims", "out_dims"):
            if getattr(args, name) is None:
                raise TNLayersError(f"a {kind} network needs {_FLAGS[name]}")
    value: dict[str, Any] = {name: getattr(args, name) or _DEFAULTS.get(name) for name in _FLAGS}
    if kind == "mpo":
        return mpo(value["in_dims"], value["out_dims"], value["bond"], cores=value["cores"])
    if kind == "kronecker":
        return kronecker(value["in_dims"], value["out_dims"], value["terms"], bodies=value["cores"])
    if kind == "low-rank":
        return low_rank(value["in_dims"], value["out_dims"], value["rank"])
    if args.network in CATALOGUE:
        return CATALOGUE[args.network].build()
    try:
        text = Path(args.network).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise TNLayersError(f"cannot read {args.network}: {err}") from None
    return Network.from_json(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tnlayers", description="Tensor-network layers: cost reports and the demo."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="cost table of the papers' networks + a short MNIST race")
    demo.add_argument(
        "--epochs", type=_positive(int), default=40, help="passes over the data per model"
    )
    demo.add_argument("--bond", type=_positive(int), default=4, help="MPO bond size D")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quick", action="store_true", help="tiny data, one epoch (CI)")
    demo.add_argument("--json", action="store_true", help="print the results as JSON")

    network_args = argparse.ArgumentParser(add_help=False)
    network_args.add_argument(
        "network",
        nargs="?",
        default=None,
        help="a built-in name (see --list), mpo, kronecker, low-rank, a .json file, or a string "
        "'tensors : inputs -> outputs' such as 'ia,ajb,bk : ik -> j' (with --sizes)",
    )
    network_args.add_argument(
        "--sizes", type=_sizes, help="leg sizes of a string network: i=28,k=28,j=64,a=8,b=8"
    )
    network_args.add_argument("--in", dest="in_dims", type=_ints, help="input leg sizes")
    network_args.add_argument("--out", dest="out_dims", type=_ints, help="output leg sizes")
    network_args.add_argument("--bond", type=_ints, help="MPO bond size(s) (default 4)")
    network_args.add_argument("--cores", type=_positive(int), help="number of cores/bodies")
    network_args.add_argument("--terms", type=_positive(int), help="Kronecker terms (default 1)")
    network_args.add_argument("--rank", type=_positive(int), help="low-rank rank (default 16)")
    network_args.add_argument("--batch", type=_positive(int), default=64)
    network_args.add_argument("--mode", choices=["training", "inference"], default="training")

    report = sub.add_parser(
        "cost",
        parents=[network_args],
        help="print the cost report of a network",
        description="Examples: 'tnlayers cost fc2-mpo1-d2', "
        "'tnlayers cost mpo --in 4,7,7,4 --out 4,4,4,4 --bond 8 --batch 1024', "
        "'tnlayers cost kronecker --in 28,28 --out 28,28 --terms 4', "
        "'tnlayers cost low-rank --in 784 --out 256 --rank 16', "
        "\"tnlayers cost 'ia,ajb,bk : ik -> j' --sizes i=28,k=28,j=64,a=8,b=8\", "
        "'tnlayers cost --list'.",
    )
    report.add_argument("--list", action="store_true", help="list the built-in networks")
    report.add_argument("--itemsize", type=_positive(int), default=4, help="bytes per element")
    report.add_argument("--json", action="store_true", help="print the report as JSON")

    drawing = sub.add_parser(
        "draw",
        parents=[network_args],
        help="draw a network, or its contraction path, to an image file",
        description="Examples: 'tnlayers draw fc2-mpo1-d2 -o net.png', "
        "'tnlayers draw mpo --in 4,7,7,4 --out 4,4,4,4 --bond 4 --path -o path.png'. "
        'Needs matplotlib: pip install "tnlayers[plot]".',
    )
    drawing.add_argument(
        "-o", "--output", required=True, help="image file to write (.png, .svg, .pdf ...)"
    )
    drawing.add_argument(
        "--path",
        action="store_true",
        help="draw the contraction path of the chosen strategy (steps sized by FLOPs) instead "
        "of the graph",
    )
    drawing.add_argument(
        "--strategy", choices=["sequential", "materialize"], help="with --path: which strategy"
    )
    drawing.add_argument("--json", action="store_true", help="print what was written as JSON")
    return parser


def _draw(args: argparse.Namespace) -> int:
    if args.network is None:
        raise TNLayersError("name the network to draw (see 'tnlayers cost --list')")
    if args.strategy is not None and not args.path:
        raise TNLayersError("--strategy applies only with --path")
    network = _network_from_args(args)
    output = Path(args.output)
    if not output.parent.is_dir():
        raise TNLayersError(f"cannot write {output}: directory {output.parent} does not exist")
    if args.path:
        from ._analysis.path_plot import plot_path

        plot_path(network, args.batch, strategy=args.strategy, mode=args.mode, path=output)
    else:
        from ._core.draw import draw

        draw(network, output)
    what = "contraction path" if args.path else "network"
    if args.json:
        print(json.dumps({"written": str(output), "drawing": what}))
    else:
        print(f"wrote the {what} drawing to {output}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tnlayers`` command."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            from ._demo import run_demo

            if args.json:
                results = run_demo(
                    epochs=args.epochs,
                    bond=args.bond,
                    seed=args.seed,
                    quick=args.quick,
                    echo=lambda line: None,
                )
                print(json.dumps(results, indent=2))
            else:
                run_demo(epochs=args.epochs, bond=args.bond, seed=args.seed, quick=args.quick)
            return 0
        if args.command == "draw":
            return _draw(args)
        if args.list or args.network is None:
            if args.json:
                listing = [
                    {"name": name, "paper": entry.paper, "description": entry.description}
                    for name, entry in CATALOGUE.items()
                ]
                print(json.dumps(listing, indent=2))
                return 0
            for name, entry in CATALOGUE.items():
                print(f"{name:<14} {entry.paper:<24} {entry.description}")
            return 0
        network = _network_from_args(args)
        the_report = cost(network, args.batch, mode=args.mode, itemsize=args.itemsize)
        if args.json:
            print(json.dumps(the_report.to_dict(), indent=2))
        else:
            print(the_report)
        return 0
    except (TNLayersError, ImportError) as err:
        print(f"tnlayers: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (``tnlayers cost --list | head``): not an error of ours. Point
        # stdout at devnull so that Python's exit-time flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
