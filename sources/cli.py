"""`biograd data download nmnist`, `biograd data info PATH` and `biograd label K --connect ADDR`."""
from __future__ import annotations

import argparse
from pathlib import Path


def cmd_download(args) -> int:
    from pipeline.data import data_root
    from sources.download import download_nmnist
    dest = Path(args.dest).expanduser() if args.dest else data_root(args.data) / "nmnist"
    splits = args.split or ["Train", "Test"]
    download_nmnist(dest, splits, keep_archives=args.keep_archives)
    print(f"N-MNIST {', '.join(splits)} in {dest}")
    return 0


def cmd_info(args) -> int:
    from sources.info import describe, format_info
    print(format_info(describe(args.path)))
    return 0


def cmd_label(args) -> int:
    from pipeline.errors import ConfigError
    from pipeline.transport import send_control
    if not 0 <= args.digit <= 9:
        raise ConfigError(f"label {args.digit}: must be a digit 0..9")
    send_control(args.connect, "label", args.digit, keys=args.keys or "")
    print(f"the next live window at {args.connect} is labelled {args.digit}")
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

    p = subparsers.add_parser("label", help="say the next live window shows digit K (control message)",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("digit", metavar="K", type=int)
    p.add_argument("--connect", required=True, metavar="ADDR", help="the learner's control address")
    p.add_argument("--keys", metavar="DIR", help="CURVE key folder")
    p.set_defaults(func=cmd_label)
