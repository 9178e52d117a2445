"""``biograd replay | live | eval | source | learner | control | keys``: the runner's commands."""

from __future__ import annotations

import argparse
import json
import logging
import threading
from dataclasses import replace

from biograd.core.errors import BioGradError, ConfigError
from biograd.pipeline.commands.options import add_config_options, run_config_from_args

log = logging.getLogger(__name__)

LIVE_KINDS = ("camera", "dvstream", "udp", "aedat", "file")


def _config(args, checkpoint: str | None = None):
    """The run's settings: ``--config`` (else, for a checkpoint of a run, that run's saved
    ``config.toml``), then ``--set``; ``--run-dir`` (else the resumed run's own folder)."""
    from biograd.pipeline.run_config import build_run_config
    from biograd.pipeline.run_dir import resolve_run_dir, run_dir_of

    saved = run_dir_of(checkpoint) if checkpoint else None
    if args.config or saved is None:
        cfg = run_config_from_args(args)
    else:
        cfg = build_run_config(saved / "config.toml", args.overrides)
        print(f"settings of {saved} (config.toml){' with ' + ' '.join(args.overrides) if args.overrides else ''}")
    if getattr(args, "run_dir", None):
        cfg = replace(cfg, sinks=replace(cfg.sinks, run_dir=args.run_dir))
    elif saved is not None and getattr(args, "resume", None):
        cfg = replace(cfg, sinks=replace(cfg.sinks, run_dir=str(saved)))
    return resolve_run_dir(cfg)


def _announce(cfg) -> None:
    """The effective learning settings, before anything runs (they are saved in config.toml too)."""
    from biograd.pipeline.run_config import describe_learning

    print(describe_learning(cfg))
    print(f"run dir: {cfg.sinks.run_dir}")


def _data_root(args):
    from biograd.core.data import data_root

    return data_root(args.data)


def _print_summary(summary: dict) -> None:
    curve = summary.get("curve")
    if curve is not None and (curve.buckets or curve.evals):
        print(curve.render())
    counters = ", ".join(f"{k} {summary[k]}" for k in ("dropped", "invalid", "gaps"))
    print(
        f"run dir: {summary['run_dir']}  ({summary['processed']} samples processed, "
        f"{summary['samples']} trained in total; {counters}; stopped by {summary['reason']})"
    )


def cmd_replay(args) -> int:
    from biograd.pipeline.runner import replay

    cfg = _config(args, args.resume)
    _announce(cfg)
    summary = replay(
        cfg, _data_root(args), resume=args.resume, epochs=args.epochs, stop=_stop_on_signals(), force=args.force
    )
    if summary["reason"] == "complete":
        done = summary["epochs"]
        print(
            f"run complete: {summary['run_dir']} has done its {done} epoch{'s' * (done != 1)} "
            f"({summary['samples']} samples trained); give --epochs N (N > {done}) to go on"
        )
        return 0
    _print_summary(summary)
    return 0


def cmd_live(args) -> int:
    from biograd.pipeline.runner import live

    cfg = _config(args, args.resume)
    if cfg.source.kind not in LIVE_KINDS:
        raise ConfigError(
            f"source.kind = {cfg.source.kind!r}: live needs one of {', '.join(LIVE_KINDS)} "
            f"(use `biograd replay` for datasets)"
        )
    _announce(cfg)
    outlive = True if args.keep_running else None
    summary = live(
        cfg, _data_root(args), resume=args.resume, stop=_stop_on_signals(), outlive=outlive, force=args.force
    )
    _print_summary(summary)
    return 0


def cmd_eval(args) -> int:
    from biograd.pipeline.runner import evaluate

    record = evaluate(_config(args, args.checkpoint), _data_root(args), args.checkpoint)
    print(
        f"test accuracy {record['accuracy']:.4f} on {record['samples']} samples"
        if record["accuracy"] is not None
        else "no labelled test samples"
    )
    if args.json:
        print(json.dumps(record))
    return 0


def cmd_learner(args) -> int:
    from biograd.pipeline.runner import run_learner

    cfg = _config(args, args.resume)
    p = cfg.pipeline
    p = replace(p, input=args.bind or p.input, control=args.control or p.control, output=args.output or p.output)
    cfg = replace(cfg, pipeline=replace(p, transport=p.transport if p.transport != "inproc" else "tcp"))
    _announce(cfg)
    summary = run_learner(
        cfg, None, resume=args.resume, stop=_stop_on_signals(), exit_on_end=not args.forever, force=args.force
    )
    _print_summary(summary)
    return 0


def cmd_source(args) -> int:
    from biograd.core.transport import ack_address_for, connect_address, endpoints
    from biograd.sources.stage import run_live_source, run_replay_source

    cfg = _config(args)
    p = cfg.pipeline
    address = args.connect or connect_address(
        endpoints(replace(p, transport=p.transport if p.transport != "inproc" else "tcp")).input
    )
    ack = args.ack
    if ack is None:
        try:
            ack = ack_address_for(address)
        except ValueError as exc:
            log.warning("%s: the end of the stream will not be confirmed", exc)
    stop = _stop_on_signals()
    live = args.live or cfg.source.kind in ("camera", "dvstream", "udp")
    if live:
        sent = run_live_source(
            cfg, _data_root(args), address, stop, name=args.name or "live", keys=p.keys, ack_address=ack
        )
    else:
        position = json.loads(args.position) if args.position else None
        if position is None and args.skip:
            position = {"epoch": args.start_epoch, "next_index": args.skip, "train_done": False}
        elif position is None and args.start_epoch:
            position = {"epoch": args.start_epoch, "next_index": 0, "train_done": False}
        sent = run_replay_source(
            cfg, _data_root(args), address, stop, position, name=args.name or "replay", keys=p.keys, ack_address=ack
        )
    log.info("source: %d samples sent to %s", sent, address)
    return 0


def print_answer(answer: dict) -> None:
    """One line per answer of the learner to a control (CONTROL_ACK)."""
    print(f"learner: {answer.get('message') or answer}", flush=True)


def cmd_control(args) -> int:
    from biograd.core.transport import send_control

    if args.command_name == "label" and args.label is None:
        raise ConfigError("control label needs the digit: biograd control label 3 --connect ADDR")
    from biograd.pipeline.run_config import default_control_address

    answers = send_control(
        args.connect or default_control_address(),
        args.command_name,
        args.label,
        keys=args.keys or "",
        applied_s=args.wait if args.command_name == "label" else 0.0,
        on_answer=print_answer,
        timeout_s=args.timeout,
    )
    return 0 if answers[-1].get("status") not in ("refused", "dropped") else 1


def cmd_keys(args) -> int:
    from biograd.core.security import generate_keys

    paths = generate_keys(args.dir, force=args.force)
    print(
        f"CURVE keys in {args.dir}: server.key(+_secret) for the binding learner, client.key(+_secret) "
        f"for sources/sinks; authorised clients in {paths['authorized']}. Use --set pipeline.keys={args.dir}"
    )
    return 0


def _stop_on_signals() -> threading.Event:
    from biograd.pipeline.launch import install_signal_handlers

    stop = threading.Event()
    install_signal_handlers(stop)
    return stop


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "replay",
        help="dataset -> learner -> sinks (train, then test each epoch)",
        description="Replay a dataset through source -> ZeroMQ -> learner -> sinks. "
        "Per epoch: the train split, then the test split (eval record).",
    )
    add_config_options(p)
    p.add_argument(
        "--resume",
        metavar="CKPT",
        help="go on with a run: its run dir (or a checkpoint dir or .npz); its saved settings, then --set",
    )
    p.add_argument(
        "--epochs",
        type=int,
        help="epochs (default source.epochs, 1 in the dataset presets: one streaming pass)",
    )
    p.add_argument("--run-dir", help="where the run writes (default sinks.run_dir, else a new runs/<time>)")
    p.add_argument("--force", action="store_true", help="the run folder holds another run: delete it, start over")
    p.set_defaults(func=cmd_replay)

    p = subparsers.add_parser("live", help="camera / DV network stream / recording -> learner, in real time")
    add_config_options(p)
    p.add_argument("--resume", metavar="CKPT", help="continue from a checkpoint (run dir, checkpoint dir or .npz)")
    p.add_argument("--run-dir", help="where the run writes (default sinks.run_dir, else a new runs/<time>)")
    p.add_argument("--force", action="store_true", help="the run folder holds another run: delete it, start over")
    p.add_argument(
        "--keep-running",
        action="store_true",
        help="stay up for labels and controls after a recording ends (a camera or stream: always)",
    )
    p.set_defaults(func=cmd_live)

    p = subparsers.add_parser("eval", help="test-split accuracy of a checkpoint")
    add_config_options(p)
    p.add_argument("--checkpoint", required=True, metavar="CKPT")
    p.add_argument("--json", action="store_true", help="also print the eval record as JSON")
    p.set_defaults(func=cmd_eval)

    p = subparsers.add_parser("source", help="stand-alone source stage: send samples to a learner")
    add_config_options(p)
    p.add_argument("--connect", metavar="ADDR", help="learner input address (default from [pipeline])")
    p.add_argument(
        "--ack",
        metavar="ADDR",
        help="learner output address that confirms the end of the stream "
        "(default: derived from --connect: tcp port + 2, ipc ...-output)",
    )
    p.add_argument("--name", help="source name; a restarted source with the same name replaces the old stream")
    p.add_argument("--live", action="store_true", help="window a packet stream (default for camera/dvstream)")
    p.add_argument("--start-epoch", type=int, default=0)
    p.add_argument("--skip", type=int, default=0, help="skip this many samples of the first epoch's order")
    p.add_argument("--position", help=argparse.SUPPRESS)  # JSON from a checkpoint, set by replay
    p.add_argument("--run-dir", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_source)

    p = subparsers.add_parser("learner", help="stand-alone learner stage: bind, learn, publish records")
    add_config_options(p)
    p.add_argument("--bind", metavar="ADDR", help="input address (default tcp://127.0.0.1:5555)")
    p.add_argument("--control", metavar="ADDR", help="control address (default port + 1)")
    p.add_argument("--output", metavar="ADDR", help="records PUB address (default port + 2)")
    p.add_argument("--resume", metavar="CKPT")
    p.add_argument("--run-dir")
    p.add_argument("--forever", action="store_true", help="keep running after every source has ended")
    p.add_argument("--force", action="store_true", help="the run folder holds another run: delete it, start over")
    p.set_defaults(func=cmd_learner)

    p = subparsers.add_parser("control", help="send a control message to a learner")
    p.add_argument(
        "command_name", metavar="COMMAND", choices=("sleep", "checkpoint", "pause", "resume", "shutdown", "label")
    )
    p.add_argument("label", nargs="?", type=int, help="for `label`: the digit of the next live window")
    p.add_argument(
        "--connect",
        default=None,
        metavar="ADDR",
        help="the learner's control address (printed by `biograd live`; default tcp://127.0.0.1:5556, "
        "or $BIOGRAD_PORT + 1)",
    )
    p.add_argument("--keys", metavar="DIR", help="CURVE key folder")
    p.add_argument("--wait", type=float, default=10.0, metavar="S", help="label: wait this long for its window")
    p.add_argument("--timeout", type=float, default=10.0, metavar="S", help="wait this long for the learner's answer")
    p.set_defaults(func=cmd_control)

    p = subparsers.add_parser("keys", help="create CURVE keys for non-loopback transports")
    p.add_argument("dir")
    p.add_argument("--force", action="store_true", help="overwrite existing keys")
    p.set_defaults(func=cmd_keys)


__all__ = ["register", "BioGradError"]
