"""The ``tnlayers`` console command."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ._builders import kronecker, low_rank, mpo
from ._catalogue import CATALOGUE
from ._cost import cost
from ._errors import TNLayersError
from ._network import Network

__all__ = ["main"]


def _ints(text: str) -> tuple[int, ...] | int:
    parts = [int(p) for p in text.replace("x", ",").split(",") if p.strip()]
    return parts[0] if len(parts) == 1 else tuple(parts)


def _network_from_args(args: argparse.Namespace) -> Network:
    if args.network in CATALOGUE:
        return CATALOGUE[args.network].build()
    if args.network == "mpo":
        return mpo(args.in_dims, args.out_dims, args.bond, cores=args.cores)
    if args.network == "kronecker":
        return kronecker(args.in_dims, args.out_dims, args.terms, bodies=args.cores)
    if args.network == "low-rank":
        return low_rank(args.in_dims, args.out_dims, args.rank)
    if args.network.endswith(".json"):
        return Network.from_json(Path(args.network).read_text(encoding="utf-8"))
    names = ", ".join(["mpo", "kronecker", "low-rank", *CATALOGUE])
    raise TNLayersError(
        f"unknown network {args.network!r}; choose one of: {names}, or a .json file"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tnlayers", description="Tensor-network layers: cost reports and the demo."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="cost table of the papers' networks + a short MNIST race")
    demo.add_argument("--seconds", type=float, default=8.0, help="training time per model")
    demo.add_argument("--bond", type=int, default=4, help="MPO bond size D")
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
    report.add_argument("--bond", type=_ints, default=4, help="MPO bond size(s)")
    report.add_argument("--cores", type=int, default=None, help="number of cores/bodies")
    report.add_argument("--terms", type=int, default=1, help="Kronecker terms K")
    report.add_argument("--rank", type=int, default=16, help="low-rank rank")
    report.add_argument("--batch", type=int, default=64)
    report.add_argument("--mode", choices=["training", "inference"], default="training")
    report.add_argument("--itemsize", type=int, default=4, help="bytes per element")
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
                print(f"{name:<14} {entry.paper:<12} {entry.description}")
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
