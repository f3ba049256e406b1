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


def _network_from_args(args: argparse.Namespace) -> Network:
    kind = args.network if args.network in _OPTIONS else None
    if kind is None and args.network not in CATALOGUE and not args.network.endswith(".json"):
        names = ", ".join([*_OPTIONS, *CATALOGUE])
        raise TNLayersError(
            f"unknown network {args.network!r}; choose one of: {names}, or a .json file"
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
        "--seconds", type=_positive(float), default=8.0, help="training time per model"
    )
    demo.add_argument("--bond", type=_positive(int), default=4, help="MPO bond size D")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quick", action="store_true", help="tiny data, 1 s per model (CI)")

    report = sub.add_parser(
        "cost",
        help="print the cost report of a network",
        description="Examples: 'tnlayers cost fc2-mpo1-d2', "
        "'tnlayers cost mpo --in 4,7,7,4 --out 4,4,4,4 --bond 8 --batch 1024', "
        "'tnlayers cost kronecker --in 28,28 --out 28,28 --terms 4', "
        "'tnlayers cost low-rank --in 784 --out 256 --rank 16', 'tnlayers cost --list'.",
    )
    report.add_argument(
        "network",
        nargs="?",
        default=None,
        help="a built-in name (see --list), mpo, kronecker, low-rank or a .json file",
    )
    report.add_argument("--list", action="store_true", help="list the built-in networks")
    report.add_argument("--in", dest="in_dims", type=_ints, help="input leg sizes or features")
    report.add_argument("--out", dest="out_dims", type=_ints, help="output leg sizes or features")
    report.add_argument("--bond", type=_ints, help="MPO bond size(s) (default 4)")
    report.add_argument("--cores", type=_positive(int), help="number of cores/bodies")
    report.add_argument("--terms", type=_positive(int), help="Kronecker terms K (default 1)")
    report.add_argument("--rank", type=_positive(int), help="low-rank rank (default 16)")
    report.add_argument("--batch", type=_positive(int), default=64)
    report.add_argument("--mode", choices=["training", "inference"], default="training")
    report.add_argument("--itemsize", type=_positive(int), default=4, help="bytes per element")
    report.add_argument("--json", action="store_true", help="print to_dict() as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tnlayers`` command."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            from ._demo import run_demo

            run_demo(seconds=args.seconds, bond=args.bond, seed=args.seed, quick=args.quick)
            return 0
        if args.list or args.network is None:
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
