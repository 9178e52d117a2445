"""`biograd data download nmnist`, `biograd data info PATH` and `biograd label [K] --connect ADDR`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def cmd_download(args) -> int:
    from biograd.core.data import data_root
    from biograd.sources.download import download_nmnist

    dest = Path(args.dest).expanduser() if args.dest else data_root(args.data) / "nmnist"
    splits = args.split or ["Train", "Test"]
    download_nmnist(dest, splits, keep_archives=args.keep_archives)
    print(f"N-MNIST {', '.join(splits)} in {dest}")
    return 0


def cmd_info(args) -> int:
    from biograd.sources.info import describe, format_info

    print(format_info(describe(args.path)))
    return 0


def _send_label(connect: str, keys: str, text: str, wait_s: float, timeout_s: float = 10.0) -> None:
    from biograd.core.errors import ConfigError
    from biograd.pipeline.commands.stages import print_answer

    if not text.strip().isdigit() or not 0 <= int(text) <= 9:
        raise ConfigError(f"label {text.strip()!r}: must be a digit 0..9")
    from biograd.core.transport import send_control

    answers = send_control(
        connect, "label", int(text), keys=keys, applied_s=wait_s, on_answer=print_answer, timeout_s=timeout_s
    )
    if answers and answers[-1].get("status") == "queued" and wait_s > 0:
        print(f"still queued after {wait_s:g} s (no live window arrived yet)", flush=True)


def cmd_label(args) -> int:
    """One label (``biograd label 3``), or the keyboard helper: one digit per line from stdin."""
    from biograd.pipeline.run_config import default_control_address

    keys = args.keys or ""
    args.connect = args.connect or default_control_address()
    if args.digit is not None:
        _send_label(args.connect, keys, args.digit, args.wait, args.timeout)
        return 0
    from biograd.core.errors import ConfigError

    print("type the digit now in front of the camera and press Enter (q or Ctrl-D to quit)", flush=True)
    for line in sys.stdin:
        if line.strip().lower() in ("q", "quit", "exit"):
            break
        if not line.strip():
            continue
        try:
            _send_label(args.connect, keys, line, 0.0, args.timeout)  # typing goes on; the learner queues
        except ConfigError as exc:  # a typo must not end the labelling session
            print(f"ignored: {exc}", file=sys.stderr, flush=True)
    return 0


def register(subparsers) -> None:
    data = subparsers.add_parser("data", help="download and inspect datasets")
    data_sub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    data.set_defaults(func=lambda args: (data.print_help(), 2)[1])

    p = data_sub.add_parser("download", help="fetch a dataset (verifies MD5, resumes partial downloads)")
    p.add_argument("dataset", choices=("nmnist",))
    p.add_argument("--dest", metavar="DIR", help="where to unpack (default: <data root>/nmnist)")
    p.add_argument("--data", metavar="PATH", help="data root (default: $BIOGRAD_DATA, else ~/.cache/biograd/data)")
    p.add_argument("--split", action="append", choices=("Train", "Test"), help="only this split (repeatable)")
    p.add_argument("--keep-archives", action="store_true", help="keep the .zip files after unpacking")
    p.set_defaults(func=cmd_download)

    p = data_sub.add_parser("info", help="format, geometry, events/samples, duration, polarity of a file or folder")
    p.add_argument("path")
    p.set_defaults(func=cmd_info)

    p = subparsers.add_parser(
        "label",
        help="say the next live window shows digit K; without K, read digits from the keyboard (one per line)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("digit", metavar="K", nargs="?", help="the digit; omit it to label interactively")
    p.add_argument(
        "--connect",
        default=None,
        metavar="ADDR",
        help="the learner's control address (printed by `biograd live`; default tcp://127.0.0.1:5556, "
        "or $BIOGRAD_PORT + 1)",
    )
    p.add_argument("--keys", metavar="DIR", help="CURVE key folder")
    p.add_argument(
        "--wait", type=float, default=10.0, metavar="S", help="wait this long for the window the label is applied to"
    )
    p.add_argument("--timeout", type=float, default=10.0, metavar="S", help="wait this long for the learner's answer")
    p.set_defaults(func=cmd_label)
