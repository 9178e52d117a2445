"""The ``biograd`` command: each module of :mod:`biograd.pipeline.commands` registers its subcommands."""

from __future__ import annotations

import argparse
import logging
import sys

from biograd.core.errors import BioGradError
from biograd.pipeline.commands import continual, data, deploy, predict, sinks, stages

COMMAND_MODULES = (stages, data, predict, sinks, deploy, continual)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="biograd",
        description="BioGrad streaming learner: online learning for event cameras "
        "(N-MNIST, MNIST, AEDAT4, DVS cameras) with a Lava/Loihi deployment stage.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BioGradError as exc:
        print(f"biograd: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("biograd: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
