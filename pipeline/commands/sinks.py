"""``biograd sink …`` (sinks running in their own process) and ``biograd report RUN_DIR``."""

from __future__ import annotations

import argparse
import logging
import sys
import time

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    sink = subparsers.add_parser(
        "sink",
        help="run a sink in its own process, subscribed to a learner's output socket",
        description="Subscribe to the sink records a learner publishes (the runner's output PUB "
        "socket, or sinks.predictions) and print, log or show them.",
    )
    kinds = sink.add_subparsers(dest="sink_kind", metavar="SINK", required=True)

    pred = kinds.add_parser("predictions", help="print prediction records as JSON lines")
    _connect_options(pred)
    pred.set_defaults(func=_predictions)

    met = kinds.add_parser("metrics", help="write the metrics log (JSON lines or CSV, flushed per line)")
    _connect_options(met)
    met.add_argument("--out", required=True, metavar="PATH", help="metrics file to write (.jsonl or .csv)")
    met.add_argument("--hidden", type=int, metavar="N", help="hidden layers of the learner (needed for CSV)")
    met.add_argument("--append", action="store_true", help="continue an existing log")
    met.set_defaults(func=_metrics)

    dash = kinds.add_parser("dashboard", help="serve the live dashboard on 127.0.0.1")
    _connect_options(dash)
    dash.add_argument("--port", type=int, default=8765, help="TCP port on 127.0.0.1 (0 = any free port)")
    dash.set_defaults(func=_dashboard)

    report = subparsers.add_parser(
        "report",
        help="draw a run's plots (PNG) from its metrics log and latest checkpoint",
        description="Write learning_curves, confusion, feedback_angle, weights and event_rate PNGs "
        "into RUN_DIR/plots (or --out).",
    )
    report.add_argument("run_dir", metavar="RUN_DIR")
    report.add_argument("--out", metavar="DIR", help="where to write the PNGs (default RUN_DIR/plots)")
    report.set_defaults(func=_report)


def _connect_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--connect", required=True, metavar="ADDR", help="ZeroMQ address of the PUB socket, e.g. tcp://127.0.0.1:5560"
    )
    parser.add_argument(
        "--count", type=int, default=0, metavar="N", help="stop after N records (0 = until the end record)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="S",
        help="stop when nothing arrives for S seconds (default: wait)",
    )
    parser.add_argument(
        "--keys",
        default="",
        metavar="DIR",
        help="CURVE key folder (`biograd keys DIR`) when the learner's socket is encrypted",
    )


def _predictions(args) -> int:
    from biograd.sinks.predictions import print_predictions

    return print_predictions(
        args.connect, count=args.count, idle_timeout=args.timeout, stream=sys.stdout, keys=args.keys
    )


def _feed(args, sink, types=None, close=True) -> int:
    from biograd.core.protocol import RECORD_TYPES
    from biograd.sinks.predictions import RecordSubscriber

    subscriber = RecordSubscriber(args.connect, types or tuple(RECORD_TYPES), keys=args.keys)
    # PUB/SUB keeps nothing for late joiners: tell whoever starts the learner that we listen now.
    print(f"biograd: subscribed to {args.connect}", file=sys.stderr, flush=True)
    try:
        for record in subscriber.records(count=args.count, idle_timeout=args.timeout):
            sink.handle(record)
    finally:
        subscriber.close()
        if close:
            sink.close()
    if subscriber.invalid:
        print(f"biograd: dropped {subscriber.invalid} invalid messages from {args.connect}", file=sys.stderr)
    return 0


def _metrics(args) -> int:
    from biograd.core.errors import BioGradError
    from biograd.sinks.metrics import MetricsLog

    fmt = "csv" if args.out.endswith(".csv") else "jsonl"
    if fmt == "jsonl" and not args.out.endswith(".jsonl"):
        raise BioGradError(f"--out {args.out}: name it .jsonl or .csv (that picks the format)")
    return _feed(args, MetricsLog(args.out, fmt, n_hidden=args.hidden, append=args.append))


def _dashboard(args) -> int:
    from biograd.sinks.dashboard import Dashboard

    dashboard = Dashboard(port=args.port)
    print(f"biograd: live dashboard at {dashboard.url}", flush=True)
    try:
        _feed(args, dashboard, close=False)
        if not args.count and args.timeout is None:
            # The run ended; keep showing its last state until the user is done looking.
            print("biograd: the run ended; the dashboard stays up until Ctrl-C", flush=True)
            while True:
                time.sleep(1)
    finally:
        dashboard.close()
    return 0


def _report(args) -> int:
    from biograd.sinks.plots import make_plots

    started = time.monotonic()
    from biograd.learner.network import BioGradLearner

    made, skipped = make_plots(
        args.run_dir, BioGradLearner.load, args.out, initial_weights=lambda lr: BioGradLearner(lr.config).weights
    )
    for name, path in made.items():
        print(f"{name}: {path}")
    for name, reason in skipped.items():
        print(f"{name}: not drawn ({reason})")
    log.debug("report took %.1f s", time.monotonic() - started)
    return 0 if made else 1
