"""Whole runs: replay, live, a stand-alone learner and eval, built from the stages.

Stages talk only through :mod:`biograd.core.transport` (ZeroMQ), whatever the transport:

* ``inproc`` (default): one process; the source runs in a thread, the learner in the main
  thread, the sinks are called by the learner stage directly.
* ``ipc`` / ``tcp``: the same stages as separate processes (``replay`` starts the source
  as a child process ``biograd source``) or hosts (``biograd source`` / ``biograd learner``).

The stages: :mod:`biograd.sources.stage` (replay / live source),
:mod:`biograd.pipeline.learner_stage` (the learning loop); the sinks are
:mod:`biograd.sinks`. Ctrl-C / SIGTERM: the current sample finishes, a final checkpoint is
written, the stage exits 0 (:mod:`biograd.pipeline.launch`).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import zmq

from biograd.core import records
from biograd.core.errors import BioGradError, ConfigError
from biograd.core.protocol import Phase
from biograd.core.transport import Receiver, RecordPublisher, WireSample, connect_address, endpoints
from biograd.learner.health import LearningHalted
from biograd.learner.network import BioGradLearner
from biograd.pipeline.encoder import Encoder, default_bin_us  # noqa: F401 (part of the runner's API)
from biograd.pipeline.launch import (  # noqa: F401 (part of the runner's API)
    install_signal_handlers,
    process_source,
    restore_signal_handlers,
    thread_source,
)
from biograd.pipeline.learner_stage import LearnerStage
from biograd.pipeline.load import open_checkpoint
from biograd.pipeline.run_dir import (  # noqa: F401 (part of the runner's API)
    config_to_toml,
    prepare_run_dir,
    resolve_run_dir,
    run_dir_of,
)
from biograd.pipeline.warmup import warm_up
from biograd.sources.stage import (  # noqa: F401
    iter_split,
    open_split,
    run_live_source,
    run_replay_source,
    work_left,
)

log = logging.getLogger(__name__)


def build_sinks(cfg, append: bool = False, live: bool = False, control: str = ""):
    """The run's in-process sinks from ``[sinks]``: metrics log, predictions, progress bar (a
    line per window when ``live``), dashboard (its label buttons send to ``control``)."""
    from biograd.sinks.fanout import SinkSet
    from biograd.sinks.metrics import MetricsLog, metrics_path
    from biograd.sinks.predictions import PredictionPublisher, PredictionWriter

    s = cfg.sinks
    n_hidden = len(cfg.learner.layer_sizes) - 2
    out = SinkSet([MetricsLog(metrics_path(s.run_dir, s.metrics_format), s.metrics_format, n_hidden, append=append)])
    if s.predictions:
        out.add(PredictionPublisher(s.predictions, keys=cfg.pipeline.keys))
    if s.predictions_file:
        out.add(PredictionWriter(s.predictions_file))
    if live:
        from biograd.sinks.console import LiveConsole

        out.add(LiveConsole())
    elif cfg.pipeline.progress:
        from biograd.sinks.progress import ProgressBar

        out.add(ProgressBar())
    if s.dashboard:
        from biograd.sinks.dashboard import Dashboard

        dash = Dashboard(port=s.dashboard_port, control=control, keys=cfg.pipeline.keys)
        print(f"dashboard: {dash.url}", file=sys.stderr)
        out.add(dash)
    return out


def make_learner(cfg, resume: str | None):
    """A new learner, or the one in checkpoint ``resume`` (any form, ``pipeline.load``) with its
    extra state (None for a bare ``.npz``)."""
    from biograd.learner.network import BioGradLearner

    if not resume:
        return BioGradLearner(cfg.learner), None
    loaded = open_checkpoint(resume)
    sizes = tuple(loaded.learner.config.layer_sizes)
    if sizes != tuple(cfg.learner.layer_sizes):
        raise ConfigError(
            f"checkpoint {loaded.path} has layer sizes {list(sizes)}, the config asks for "
            f"{list(cfg.learner.layer_sizes)} (give --set learner.layer_sizes={list(sizes)} or the run's --config)"
        )
    log.info("resuming from %s (%d samples)", loaded.path, loaded.samples)
    return loaded.learner, loaded.extra_state


def run_learner(
    cfg,
    data_root=None,
    resume: str | None = None,
    stop: threading.Event | None = None,
    start_source=None,
    exit_on_end: bool = True,
    live: bool = False,
    hold: threading.Event | None = None,
    force: bool = False,
) -> dict:
    """Bind the learner's sockets, optionally start a source, learn until the end; a summary dict.

    ``start_source(input_address, output_address, ctx, stop, position)`` starts the source
    stage (thread or process) and returns an ``alive()`` callable and a ``join()`` callable.
    ``live``: compile first (:func:`warm_up`), say "ready" with the control address, a line per
    window. ``hold``: with the dashboard on, a run that ended keeps serving it until ``hold`` is
    set (Ctrl-C). ``force``: a run folder holding another run is cleared (else refused).
    """
    from biograd.sinks.checkpoints import CheckpointManager

    stop = stop or threading.Event()
    cfg = resolve_run_dir(cfg)
    learner, extra = make_learner(cfg, resume)
    position = (extra or {}).get("position")
    run_dir = prepare_run_dir(cfg, resumes_in_place(cfg, resume), force)
    p = cfg.pipeline
    if (live or cfg.sinks.dashboard) and not p.control and p.transport == "inproc":
        # labels and controls from another terminal (or the dashboard's buttons): loopback TCP
        p = replace(p, control=f"tcp://{p.bind_host}:{p.port + 1}")
    ep = endpoints(p, name=f"biograd-{os.getpid()}" if p.transport != "tcp" else "biograd")
    if live:
        print("compiling the learner (a few seconds on the first run, then cached) ...", flush=True)
        compiled_s = warm_up(cfg, learner)
    sinks = build_sinks(cfg, append=bool(resume), live=live, control=connect_address(ep.control))
    try:
        checkpoints = CheckpointManager(
            run_dir,
            cfg.sinks.checkpoint_every,
            cfg.sinks.checkpoint_minutes,
            cfg.sinks.keep_checkpoints,
            start_samples=int(learner.samples_seen),
        )
    except BaseException:
        sinks.close()
        raise
    # Made only now: a context left behind by an error above was terminated by the garbage
    # collector at some later point, where zmq_ctx_term can block (it hung a test run once).
    ctx = zmq.Context()
    receiver = publisher = None
    join = None
    reason = None
    halted: LearningHalted | None = None
    try:
        receiver = Receiver(
            ep.input,
            ep.control,
            ctx,
            hwm=p.hwm,
            keys=p.keys,
            max_events=p.max_events,
            sample_timeout_s=p.sample_timeout_s,
            max_buffered_events=p.max_buffered_events,
            max_streams=p.max_streams,
            stream_idle_s=p.stream_idle_s,
        )
        publisher = RecordPublisher(ep.output, ctx, keys=p.keys)
        stage = LearnerStage(
            cfg, learner, sinks, checkpoints, publisher, resume_state=position, frames=cfg.sinks.dashboard
        )
        log.info("learner listening: input %s, control %s, output %s", ep.input, ep.control, ep.output)
        if p.wait_for_sinks:
            log.info("waiting for %d sink(s) to subscribe to %s", p.wait_for_sinks, ep.output)
            publisher.wait_for_sinks(p.wait_for_sinks, p.wait_for_sinks_s, stop=stop)
        ready_at = time.time()
        if live:
            control = connect_address(ep.control)
            print(
                f"ready (compiled in {compiled_s:.1f} s). Labels and controls: {control}, e.g. "
                f"`biograd label 3 --connect {control}` or `biograd control pause|resume|sleep|checkpoint|"
                f"shutdown --connect {control}`",
                flush=True,
            )
        alive = lambda: True  # noqa: E731
        if start_source is not None:
            alive, join = start_source(connect_address(ep.input), connect_address(ep.output), ctx, stop, position)
        try:
            reason = stage.run(receiver, stop, exit_on_end=exit_on_end, alive=alive)
        except LearningHalted as exc:  # the health guard: stop, keep the last good checkpoint
            halted, reason = exc, "halted"
            log.error("%s", exc)
        if reason != "end":
            stop.set()  # tells an in-process source to stop too
        stage.finish(reason, save=halted is None)
        if cfg.sinks.dashboard and cfg.sinks.dashboard_hold and reason == "end" and hold is not None:
            print(
                "run finished; the dashboard stays up until Ctrl-C (sinks.dashboard_hold=false ends at once)",
                flush=True,
            )
            hold.wait()
        stop.set()
        summary = {
            "reason": reason,
            "run_dir": str(run_dir),
            "samples": int(learner.samples_seen),
            "processed": stage.processed,
            "events": stage.events,
            "ready_at": ready_at,
            **stage.counters(),
            "learner": learner,
            "curve": stage.curve,
        }
    finally:
        stop.set()
        if join is not None:
            join(reason == "end")
        for closable in (receiver, publisher):
            if closable is not None:
                closable.close()
        sinks.close()
        from biograd.core.security import stop_authenticator

        stop_authenticator(ctx)
        # Closes anything left open (after an error); a second for the output's last records.
        ctx.destroy(linger=1000)
    if cfg.sinks.plots:
        try:
            from biograd.sinks.plots import make_plots

            made, _ = make_plots(run_dir, BioGradLearner.load, initial_weights=initial_weights)
            log.info("plots: %s", ", ".join(str(v) for v in made.values()))
        except BioGradError as exc:
            log.warning("plots not made: %s", exc)
    if halted is not None:
        raise halted  # the CLI prints the reason and exits non-zero
    return summary


def initial_weights(learner) -> list:
    """The weights ``learner`` started from: its config's seed rebuilds them."""
    return BioGradLearner(learner.config).weights


def resumes_in_place(cfg, resume: str | None) -> bool:
    """True when ``resume`` is a checkpoint of the run folder this run writes to."""
    if not resume:
        return False
    own = run_dir_of(resume)
    return own is not None and own.resolve() == Path(cfg.sinks.run_dir).expanduser().resolve()


def replay(
    cfg,
    data_root,
    resume: str | None = None,
    stop: threading.Event | None = None,
    epochs: int | None = None,
    force: bool = False,
) -> dict:
    """Dataset → learner → sinks: per epoch the train split then the test split (eval record).

    Resuming a run that has done all its epochs does nothing: the summary's reason is
    ``"complete"`` (its ``epochs`` say how many); give more ``epochs`` to go on.
    """
    if epochs:
        cfg = replace(cfg, source=replace(cfg.source, epochs=epochs))
    cfg = resolve_run_dir(cfg)
    if resume:
        loaded = open_checkpoint(resume)
        position = (loaded.extra_state or {}).get("position")
        if not work_left(cfg, position):
            return {
                "reason": "complete",
                "run_dir": str(run_dir_of(resume) or cfg.sinks.run_dir),
                "epochs": cfg.source.epochs,
                "samples": int(loaded.samples),
                "processed": 0,
                "events": 0,
                "dropped": 0,
                "invalid": 0,
                "gaps": 0,
                "learner": loaded.learner,
            }
    if cfg.pipeline.transport == "inproc":
        start = thread_source(
            lambda address, output, ctx, stop_, position: run_replay_source(
                cfg, data_root, address, stop_, position, ctx=ctx, keys=cfg.pipeline.keys, ack_address=output
            )
        )
    else:
        config_file = Path(cfg.sinks.run_dir) / "config.toml"
        start = process_source(["--config", str(config_file), "--data", str(data_root)])
    return run_learner(cfg, data_root, resume, stop, start, hold=stop, force=force)


def live(
    cfg,
    data_root,
    resume: str | None = None,
    stop: threading.Event | None = None,
    outlive: bool | None = None,
    force: bool = False,
) -> dict:
    """Camera / DV network stream / recording → learner → sinks, in real time (drop oldest).

    ``outlive`` (default: for a camera or network stream, not for a recording): the learner
    stays up after its source ends, which is started again (a dropped camera or stream
    reconnects); labels and controls keep working until Ctrl-C or a ``shutdown`` control.
    """
    streaming = cfg.source.kind in ("camera", "dvstream")
    outlive = streaming if outlive is None else outlive
    start = thread_source(
        lambda address, output, ctx, stop_, position: run_live_source(
            cfg, data_root, address, stop_, ctx=ctx, keys=cfg.pipeline.keys, ack_address=output
        ),
        outlive=outlive,
        restart_s=2.0 if outlive and streaming else None,
    )
    return run_learner(cfg, data_root, resume, stop, start, exit_on_end=not outlive, live=True, hold=stop, force=force)


def evaluate(cfg, data_root, checkpoint: str) -> dict:
    """Test-split accuracy of a checkpoint: an ``eval`` record (no learning)."""
    learner, extra = make_learner(cfg, checkpoint)
    encode = Encoder(cfg)
    n_out = learner.config.layer_sizes[-1]
    conf = np.zeros((n_out, n_out), np.int64)
    for index, sample in iter_split(cfg, data_root, "test", 0):
        wire = WireSample(sample.sample_id, sample.label, sample.geometry, sample.events, Phase.TEST, 0, index, 0)
        predicted, _ = learner.predict(encode(wire))
        if sample.label is not None:
            conf[sample.label, int(predicted)] += 1
    return records.eval_record(conf, (extra or {}).get("position", {}).get("epoch"), checkpoint=str(checkpoint))
