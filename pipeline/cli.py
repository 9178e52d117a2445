"""The ``biograd`` command.

Each stage package may offer a ``cli`` module with ``register(subparsers)``;
only stages that do are shown, so a subcommand appears once it is built.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from biograd.pipeline.errors import BioGradError

STAGE_CLI_MODULES = ("biograd.pipeline.stage_cli", "biograd.sources.cli", "biograd.sinks.cli", "biograd.deploy.cli")


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """--config FILE, --set KEY=VALUE and --data PATH, shared by every subcommand that runs a stage."""
    parser.add_argument(
        "--config", metavar="FILE", help="TOML file with [source] [learner] [pipeline] [sinks] [deploy] sections"
    )
    parser.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        dest="overrides",
        help="override one setting, e.g. --set learner.lr=0.002 (repeatable)",
    )
    parser.add_argument("--data", metavar="PATH", help="dataset root folder (default: $BIOGRAD_DATA)")


def run_config_from_args(args):
    from biograd.pipeline.run_config import build_run_config

    return build_run_config(args.config, args.overrides)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="biograd",
        description="BioGrad streaming learner: online learning for event cameras "
        "(N-MNIST, MNIST, AEDAT4, DVS cameras) with a Lava/Loihi deployment stage.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in STAGE_CLI_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # stage not built yet: its subcommands are not offered
            raise
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
