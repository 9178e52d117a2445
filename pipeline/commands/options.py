"""Options shared by every subcommand that runs a stage."""

from __future__ import annotations

import argparse


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
