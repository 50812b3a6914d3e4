"""The `gsmt` command: one sub-command per job; library functions do the work."""

from __future__ import annotations

import argparse
import sys

from gsmt import __version__
from gsmt.errors import GsmtError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gsmt", description=__doc__)
    parser.add_argument("--version", action="version", version=f"gsmt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_synth,):
        add(sub)
    return parser


def _add_synth(sub) -> None:
    from gsmt.data import synth

    p = sub.add_parser("synth", help="write a synthetic dataset (annotations + features)")
    synth.add_arguments(p)
    p.set_defaults(func=synth.run_cli)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except GsmtError as exc:
        print(f"gsmt: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gsmt: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
