"""The runner: the learner stage, the source stage, and replay / live / eval built from them.

Stages talk only through :mod:`pipeline.transport` (ZeroMQ), whatever the transport:

* ``inproc`` (default): one process; the source runs in a thread, the learner in the main
  thread, the sinks are called by the learner stage directly.
* ``ipc`` / ``tcp``: the same stages as separate processes (``replay`` starts the source
  as a child process ``biograd source``) or hosts (``biograd source`` / ``biograd learner``).

The learner stage trains on train samples, predicts on test samples (an ``eval`` record
at the end of each test pass), and on live samples trains when a label is known (from
the sample or a ``label`` control) and predicts otherwise. Ctrl-C / SIGTERM: the current
sample finishes, a final checkpoint is written, the stage exits 0.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import zmq

from biograd.core.config import to_dict
from biograd.core.errors import BioGradError, ConfigError, EventFormatError
from biograd.core.protocol import MsgType, Phase
from biograd.core.transport import Receiver, RecordPublisher, Sender, WireSample, connect_address, endpoints
from biograd.learner.network import BioGradLearner

log = logging.getLogger(__name__)

N_CLASSES = 10


# --- configuration helpers ----------------------------------------------------


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"cannot write {value!r} to TOML")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ConfigError(f"cannot write {type(value).__name__} to TOML")


def config_to_toml(cfg) -> str:
    """The whole RunConfig as TOML (top-level keys, then one table per section)."""
    data = to_dict(cfg)
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for section, values in data.items():
        if isinstance(values, dict):
            lines.append(f"\n[{section}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def default_bin_us(cfg) -> int:
    return cfg.pipeline.bin_us or (1000 if cfg.preset == "mnist" else 5000)


def flow_mode(cfg, live: bool) -> str:
    return cfg.pipeline.flow if cfg.pipeline.flow != "auto" else ("drop" if live else "block")


class Encoder:
    """Wire sample → SpikeRaster, as the learner expects (``learner.encoding.encode_events``).

    Polarity channels follow from the input layer: 2·W·H inputs = ON and OFF, W·H = one
    channel. Dataset samples are binned from t = 0 (N-MNIST and MNIST-as-events start
    there); live windows from their first event.
    """

    def __init__(self, cfg):
        from biograd.learner.encoding import encode_events

        self._encode = encode_events
        self.n_inputs = cfg.learner.layer_sizes[0]
        self.timesteps = cfg.learner.timesteps
        self.bin_us = default_bin_us(cfg)

    def __call__(self, sample: WireSample):
        g = sample.geometry
        if self.n_inputs == 2 * g.width * g.height:
            channels = 2
        elif self.n_inputs == g.width * g.height:
            channels = 1
        else:
            raise EventFormatError(
                f"sample {sample.sample_id!r}: a {g.width}x{g.height} sensor gives {2 * g.width * g.height} "
                f"(ON/OFF) or {g.width * g.height} inputs, the learner has {self.n_inputs} "
                f"(learner.layer_sizes[0]); crop/down-sample the source to match"
            )
        origin = int(sample.events["t"][0]) if sample.phase == Phase.LIVE and sample.events.size else 0
        return self._encode(
            sample.events,
            g,
            self.timesteps,
            self.bin_us,
            channels,
            t_origin=origin,
            source=f"sample {sample.sample_id!r}",
        )


# --- the learner stage ----------------------------------------------------------


class LearnerStage:
    """Turns received samples into learning and sink records.

    ``resume_state`` is the ``extra`` state of the checkpoint resumed from; the stage keeps
    it current (``position``) so every checkpoint says where the source's seeded order is.
    """

    def __init__(
        self,
        cfg,
        learner,
        sinks,
        checkpoints=None,
        publisher=None,
        resume_state: dict | None = None,
        frames: bool = False,
        progress: bool | None = None,
    ):
        self.cfg = cfg
        self.learner = learner
        self.sinks = sinks
        self.checkpoints = checkpoints
        self.publisher = publisher
        self.encode = Encoder(cfg)
        self.position = dict(resume_state or {"epoch": 0, "next_index": 0, "train_done": False})
        self.frames = frames
        self._last_frame = 0.0
        self.pending_label: int | None = None
        self.paused = False
        self.shutdown_requested = False
        self.invalid_samples = 0
        self.processed = 0
        self.events = 0
        self._t0 = time.monotonic()
        self._phase_stats: dict[tuple[str, int], list] = {}  # (phase, epoch) -> [correct, labelled, loss_sum, n]
        self._confusion: dict[int, np.ndarray] = {}
        self._since_metrics = 0
        self._metrics_t = time.monotonic()
        self._metrics_events = 0
        self._last_phase = "train"
        self.receiver: Receiver | None = None
        self._pbar = None
        self._progress = progress if progress is not None else (cfg.pipeline.progress or None)

    # Sink records go to the in-process sinks and to the output PUB socket.
    def emit(self, record: dict) -> None:
        self.sinks.handle(record)
        if self.publisher is not None:
            self.publisher.handle(record)

    def _counters(self) -> dict:
        c = self.receiver.counters if self.receiver else None
        return {
            "dropped": c.dropped if c else 0,
            "invalid": (c.invalid if c else 0) + self.invalid_samples,
            "gaps": c.gaps if c else 0,
        }

    # --- progress bar ---------------------------------------------------------
    def _bar(self):
        if self._pbar is None and self._progress is not False:
            from tqdm import tqdm

            self._pbar = tqdm(
                unit="sample", dynamic_ncols=True, disable=None if self._progress is None else False, file=sys.stderr
            )
        return self._pbar

    def _update_bar(self, phase: str, epoch: int) -> None:
        bar = self._bar()
        if bar is None or bar.disable:
            return
        bar.update(1)
        if self.processed % 10 == 0:
            correct, labelled = self._phase_stats.get((phase, epoch), [0, 0, 0.0, 0])[:2]
            elapsed = max(time.monotonic() - self._t0, 1e-9)
            bar.set_description(f"{phase} e{epoch}", refresh=False)
            bar.set_postfix(
                {"ev/s": f"{self.events / elapsed:,.0f}", "acc": f"{correct / labelled:.3f}" if labelled else "-"},
                refresh=False,
            )

    # --- items ------------------------------------------------------------------
    def process(self, item) -> None:
        if isinstance(item, WireSample):
            self._sample(item)
            return
        t = item.type
        if t == MsgType.CONTROL:
            self._control(item.payload)
        elif t == MsgType.SPLIT_END:
            self._split_end(item.phase, item.epoch)
        elif t == MsgType.STREAM_START:
            total = item.payload.get("total")
            bar = self._bar()
            if bar is not None and isinstance(total, int) and total > 0:
                bar.total = (bar.total or 0) + total
                bar.refresh()
            log.info(
                "source %r connected (stream %08x, %s)",
                item.payload.get("name"),
                item.stream_id,
                item.payload.get("kind"),
            )
        elif t == MsgType.STREAM_END:
            log.info("stream %08x ended: %s", item.stream_id, item.payload)
            if self.publisher is not None:
                self.publisher.ack(item.stream_id, item.seq)

    def _control(self, payload: dict) -> None:
        command = payload["command"]
        log.info("control: %s", payload)
        if command == "sleep":
            alignment = self.learner.sleep()
            self._sleep_record(alignment)
        elif command == "checkpoint":
            self.checkpoint(final=False, forced=True)
        elif command == "pause":
            self.paused = True
        elif command == "resume":
            self.paused = False
        elif command == "shutdown":
            self.shutdown_requested = True
        elif command == "label":
            self.pending_label = int(payload["label"])

    def _sleep_record(self, alignment) -> None:
        self.emit(
            {
                "type": "sleep",
                "samples": int(self.learner.samples_seen),
                "angle_deg": [float(a) for a, _ in alignment],
                "norm_ratio": [float(r) for _, r in alignment],
                "time": time.time(),
            }
        )

    def _sample(self, sample: WireSample) -> None:
        try:
            raster = self.encode(sample)
        except EventFormatError as exc:
            self.invalid_samples += 1
            log.warning("sample rejected: %s", exc)
            return
        n_out = self.learner.config.layer_sizes[-1]
        label = sample.label
        phase = {Phase.TRAIN: "train", Phase.TEST: "test", Phase.LIVE: "live"}.get(sample.phase, "live")
        if sample.phase == Phase.LIVE and label is None and self.pending_label is not None:
            label, self.pending_label = self.pending_label, None
        if label is not None and not 0 <= label < n_out:
            self.invalid_samples += 1
            log.warning("sample %r: label %d outside 0..%d", sample.sample_id, label, n_out - 1)
            return
        train = sample.phase in (Phase.TRAIN, Phase.LIVE) and label is not None
        if sample.phase == Phase.TRAIN and label is None:
            self.invalid_samples += 1
            log.warning("train sample %r has no label", sample.sample_id)
            return
        loss = None
        slept = False
        if train:
            result = self.learner.train_sample(raster, label)
            predicted, counts, loss, slept = result.prediction, result.counts, result.loss, result.slept
        else:
            predicted, counts = self.learner.predict(raster)
        predicted = int(predicted)
        correct = None if label is None else predicted == label
        stats = self._phase_stats.setdefault((phase, sample.epoch), [0, 0, 0.0, 0])
        if correct is not None:
            stats[0] += int(correct)
            stats[1] += 1
        if loss is not None and math.isfinite(loss):
            stats[2] += loss
            stats[3] += 1
        if sample.phase == Phase.TEST and label is not None:
            conf = self._confusion.setdefault(sample.epoch, np.zeros((n_out, n_out), np.int64))
            conf[label, predicted] += 1
        if sample.phase == Phase.TRAIN:
            self.position = {"epoch": sample.epoch, "next_index": sample.index + 1, "train_done": False}
        self.processed += 1
        self.events += int(sample.events.shape[0])
        self._metrics_events += int(sample.events.shape[0])
        self._last_phase = phase
        record = {
            "type": "prediction",
            "sample_id": sample.sample_id,
            "index": int(sample.index),
            "phase": phase,
            "epoch": int(sample.epoch),
            "predicted": predicted,
            "label": label,
            "correct": correct,
            "counts": [int(c) for c in counts],
            "events": int(sample.events.shape[0]),
            "time": time.time(),
        }
        if self.frames and time.monotonic() - self._last_frame >= self.cfg.sinks.frame_interval_s:
            from biograd.core.records import event_frame

            self._last_frame = time.monotonic()
            record["frame"] = event_frame(sample.events, sample.geometry.width, sample.geometry.height)
        self.emit(record)
        if slept:
            self._sleep_record(self.learner.last_alignment)
        self._since_metrics += 1
        if self._since_metrics >= self.cfg.pipeline.metrics_every:
            self.metrics(phase, sample.epoch)
        if train and self.checkpoints is not None:
            path = self.checkpoints.maybe_save(self.learner, self.extra_state())
            if path is not None:
                self.emit(
                    {
                        "type": "checkpoint",
                        "path": str(path),
                        "samples": int(self.learner.samples_seen),
                        "time": time.time(),
                    }
                )
        self._update_bar(phase, sample.epoch)

    def metrics(self, phase: str | None = None, epoch: int = 0) -> None:
        phase = phase or self._last_phase
        now = time.monotonic()
        dt = max(now - self._metrics_t, 1e-9)
        correct, labelled, loss_sum, n_loss = self._phase_stats.get((phase, epoch), [0, 0, 0.0, 0])
        self.emit(
            {
                "type": "metrics",
                "samples": int(self.learner.samples_seen),
                "processed": self.processed,
                "phase": phase,
                "epoch": epoch,
                "accuracy_running": correct / labelled if labelled else None,
                "loss": loss_sum / n_loss if n_loss else None,
                "events_per_s": self._metrics_events / dt,
                "samples_per_s": self._since_metrics / dt,
                **self._counters(),
                "sleeps": int(self.learner.sleeps),
                "time": time.time(),
            }
        )
        self._since_metrics = 0
        self._metrics_events = 0
        self._metrics_t = now

    def _split_end(self, phase: Phase, epoch: int) -> None:
        if phase == Phase.TRAIN:
            # The tail of the epoch counts before evaluation (a partial batch is applied).
            result = self.learner.flush()
            if result is not None and result.slept:
                self._sleep_record(self.learner.last_alignment)
            self.position = {"epoch": epoch, "next_index": 0, "train_done": True}
            self.metrics("train", epoch)
        elif phase == Phase.TEST:
            conf = self._confusion.pop(epoch, np.zeros((N_CLASSES, N_CLASSES), np.int64))
            total = int(conf.sum())
            self.emit(
                {
                    "type": "eval",
                    "split": "test",
                    "epoch": epoch,
                    "samples": total,
                    "accuracy": float(np.trace(conf) / total) if total else None,
                    "confusion": conf.tolist(),
                    "time": time.time(),
                }
            )
            self.position = {"epoch": epoch + 1, "next_index": 0, "train_done": False}
            if total:
                log.info("epoch %d: test accuracy %.4f on %d samples", epoch, np.trace(conf) / total, total)

    def extra_state(self) -> dict:
        return {"position": self.position, "counters": self._counters()}

    def checkpoint(self, final: bool, forced: bool = False):
        if self.checkpoints is None:
            return None
        if final:
            path = self.checkpoints.save_final(self.learner, self.extra_state())
        else:
            path = (
                self.checkpoints._save(self.learner, self.extra_state(), final=False)
                if forced
                else self.checkpoints.maybe_save(self.learner, self.extra_state())
            )
        if path is not None:
            self.emit(
                {
                    "type": "checkpoint",
                    "path": str(path),
                    "samples": int(self.learner.samples_seen),
                    "time": time.time(),
                }
            )
        return path

    def run(self, receiver: Receiver, stop: threading.Event, exit_on_end: bool = True, alive=lambda: True) -> str:
        """Receive and process until a stop reason; returns it.

        Reasons: ``"end"`` (every source that started has ended), ``"shutdown"`` (control),
        ``"signal"`` (``stop`` set: Ctrl-C / SIGTERM) and ``"source-died"`` (``alive()``
        turned false with no stream left open).
        """
        self.receiver = receiver
        seen_end = False
        pending: list = []  # received but not processed: held while paused (controls still run)
        while True:
            if stop.is_set():
                return "signal"
            if self.shutdown_requested:
                return "shutdown"
            ready = bool(pending) and not self.paused
            pending += receiver.poll(0 if ready else 100, data=not self.paused and not pending)
            i = 0
            while i < len(pending) and not (stop.is_set() or self.shutdown_requested):
                item = pending[i]
                is_control = not isinstance(item, WireSample) and item.type == MsgType.CONTROL
                if self.paused and not is_control:
                    i += 1
                    continue
                del pending[i]
                self.process(item)  # the sample in hand is finished before any stop
                if not isinstance(item, WireSample) and item.type == MsgType.STREAM_END:
                    seen_end = True
            if pending:
                continue
            if exit_on_end and seen_end and receiver.live_streams() == 0:
                return "end"
            if not alive() and receiver.live_streams() == 0:
                return "source-died"

    def finish(self, reason: str) -> None:
        """Final metrics, final checkpoint, the end record; closes the progress bar."""
        if self._pbar is not None:
            self._pbar.close()
        if self._since_metrics:
            self.metrics()
        path = self.checkpoint(final=True)
        self.emit(
            {
                "type": "end",
                "reason": reason,
                "samples": int(self.learner.samples_seen),
                "processed": self.processed,
                "events": self.events,
                **self._counters(),
                "checkpoint": str(path) if path else None,
                "time": time.time(),
            }
        )


# --- sinks ----------------------------------------------------------------------


def build_sinks(cfg, append: bool = False):
    """The run's in-process sinks from ``[sinks]``: metrics log, predictions, dashboard."""
    from biograd.core.records import SinkSet
    from biograd.sinks.metrics import MetricsLog, metrics_path
    from biograd.sinks.predictions import PredictionPublisher, PredictionWriter

    s = cfg.sinks
    n_hidden = len(cfg.learner.layer_sizes) - 2
    out = SinkSet([MetricsLog(metrics_path(s.run_dir, s.metrics_format), s.metrics_format, n_hidden, append=append)])
    if s.predictions:
        out.add(PredictionPublisher(s.predictions, keys=cfg.pipeline.keys))
    if s.predictions_file:
        out.add(PredictionWriter(s.predictions_file))
    if s.dashboard:
        from biograd.sinks.dashboard import Dashboard

        dash = Dashboard(port=s.dashboard_port)
        print(f"dashboard: {dash.url}", file=sys.stderr)
        out.add(dash)
    return out


def make_learner(cfg, resume: str | None):
    """A new learner, or the one in checkpoint ``resume`` with its extra state."""
    from biograd.learner.network import BioGradLearner

    if not resume:
        return BioGradLearner(cfg.learner), None
    from biograd.sinks.checkpoints import load_checkpoint

    ckpt = load_checkpoint(resume, BioGradLearner.load)
    if tuple(ckpt.learner.config.layer_sizes) != tuple(cfg.learner.layer_sizes):
        raise ConfigError(
            f"checkpoint {ckpt.path} has layer sizes {ckpt.learner.config.layer_sizes}, "
            f"the config asks for {cfg.learner.layer_sizes}"
        )
    log.info("resuming from %s (%d samples)", ckpt.path, ckpt.samples)
    return ckpt.learner, ckpt.extra_state


# --- the source stage -----------------------------------------------------------


def _split_config(cfg, split: str):
    src = cfg.source
    return replace(src, split=split, shuffle=src.shuffle if split == "train" else False)


def open_split(cfg, data_root, split: str):
    """The dataset of ``split`` (``sources.open_source``); test splits are never shuffled."""
    from biograd.sources import open_source

    dataset = open_source(_split_config(cfg, split), data_root)
    if not hasattr(dataset, "iter_epoch"):
        raise ConfigError(f"source.kind = {cfg.source.kind!r} is a stream, not a dataset: use `biograd live`")
    return dataset


def iter_split(cfg, data_root, split: str, epoch: int, skip: int = 0):
    """(index, Sample) of one pass over ``split`` in the source's seeded order of ``epoch``."""
    dataset = open_split(cfg, data_root, split)
    for i, sample in enumerate(dataset.iter_epoch(epoch, skip)):
        yield skip + i, sample


def split_length(cfg, data_root, split: str) -> int:
    return len(open_split(cfg, data_root, split))


class Pacer:
    """``source.speed`` > 0 replays datasets in (scaled) real time: a sample is sent once the
    previous samples' durations (last minus first timestamp), divided by ``speed``, have passed."""

    def __init__(self, speed: float, stop: threading.Event):
        self.speed, self.stop = speed, stop
        self._start = time.monotonic()
        self._due = 0.0

    def wait(self, events: np.ndarray) -> None:
        if self.speed <= 0:
            return
        delay = self._start + self._due - time.monotonic()
        if delay > 0:
            self.stop.wait(delay)
        if events.size:
            self._due += (int(events["t"][-1]) - int(events["t"][0])) / 1e6 / self.speed


def run_replay_source(
    cfg,
    data_root,
    address: str,
    stop: threading.Event,
    position: dict | None = None,
    ctx: zmq.Context | None = None,
    name: str = "replay",
    keys: str = "",
    epochs: int | None = None,
    ack_address: str | None = None,
) -> int:
    """Send every epoch (train split, then test split) from ``position`` on; returns samples sent."""
    epochs = epochs or cfg.source.epochs
    if position is None:
        # source.skip counts samples of the whole run, as the datasets do.
        epoch, index = divmod(cfg.source.skip, max(1, split_length(cfg, data_root, "train")))
        position = {"epoch": epoch, "next_index": index, "train_done": False}
    p = cfg.pipeline
    has_test = cfg.pipeline.evaluate and cfg.source.kind in ("nmnist", "mnist")
    start_epoch = int(position["epoch"])
    total = 0
    train_len = split_length(cfg, data_root, "train")
    test_len = split_length(cfg, data_root, "test") if has_test else 0
    for e in range(start_epoch, epochs):
        if not (e == start_epoch and position.get("train_done")):
            total += train_len - (int(position["next_index"]) if e == start_epoch else 0)
        total += test_len
    sender = Sender(
        address,
        ctx,
        flow=flow_mode(cfg, live=False),
        hwm=p.hwm,
        queue=p.queue,
        keys=keys,
        name=name,
        kind=cfg.source.kind,
        packet_events=p.packet_events,
        stop=stop,
        total=total,
        ack_address=ack_address,
    )
    sent = 0
    pacer = Pacer(cfg.source.speed, stop)

    def send_split(split: str, phase, epoch: int, skip: int = 0) -> bool:
        """Send one split of one epoch; False when asked to stop part-way."""
        nonlocal sent
        n = 0
        for index, sample in iter_split(cfg, data_root, split, epoch, skip):
            pacer.wait(sample.events)
            if stop.is_set():
                return False
            sender.send_sample(sample.sample_id, sample.label, sample.geometry, sample.events, phase, epoch, index)
            n += 1
        sender.split_end(phase, epoch, n)
        sent += n
        return True

    try:
        for epoch in range(start_epoch, epochs):
            if not (epoch == start_epoch and position.get("train_done")):
                skip = int(position["next_index"]) if epoch == start_epoch else 0
                if not send_split("train", Phase.TRAIN, epoch, skip):
                    return sent
            if has_test and not send_split("test", Phase.TEST, epoch):
                return sent
        return sent
    except InterruptedError:
        return sent
    finally:
        sender.close("stopped" if stop.is_set() else "done")


def run_live_source(
    cfg,
    data_root,
    address: str,
    stop: threading.Event,
    ctx: zmq.Context | None = None,
    name: str = "live",
    keys: str = "",
    window=None,
    ack_address: str | None = None,
) -> int:
    """Packets from a camera / DV stream / recording, cut into windows, sent as live samples."""
    from biograd.sources import open_source

    p = cfg.pipeline
    stream = open_source(cfg.source, data_root)
    windower = window if window is not None else _make_windower(cfg, stream)
    sender = Sender(
        address,
        ctx,
        flow=flow_mode(cfg, live=True),
        hwm=p.hwm,
        queue=p.queue,
        keys=keys,
        name=name,
        kind=cfg.source.kind,
        packet_events=p.packet_events,
        stop=stop,
        ack_address=ack_address,
    )
    sent = 0
    try:

        def send(samples):
            nonlocal sent
            for sample in samples:
                sender.send_sample(sample.sample_id, sample.label, sample.geometry, sample.events, Phase.LIVE, 0, sent)
                sent += 1

        for packet in stream:
            if stop.is_set():
                break
            send(windower.push(packet))
        else:
            send(windower.flush())  # a recording ended: its last, partial window too
        return sent
    except InterruptedError:
        return sent
    finally:
        close = getattr(stream, "close", None)
        if close:
            close()
        log.info("live source: %d windows sent, %d dropped (learner behind)", sent, sender.dropped)
        sender.close("stopped" if stop.is_set() else "done")


def _make_windower(cfg, stream):
    from biograd.sources import make_windower

    return make_windower(cfg.source, stream)


# --- whole runs -----------------------------------------------------------------


def install_signal_handlers(stop: threading.Event):
    """Ctrl-C and SIGTERM set ``stop``; a second Ctrl-C interrupts at once."""
    previous = {}

    def handler(signum, frame):
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        log.info("%s: finishing the current sample, then a final checkpoint", signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    return previous


def restore_signal_handlers(previous) -> None:
    for sig, h in previous.items():
        signal.signal(sig, h)


def _prepare_run_dir(cfg, resume: bool) -> Path:
    run_dir = Path(cfg.sinks.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.toml").write_text(config_to_toml(cfg))
    return run_dir


def run_learner(
    cfg,
    data_root=None,
    resume: str | None = None,
    stop: threading.Event | None = None,
    start_source=None,
    exit_on_end: bool = True,
    live: bool = False,
) -> dict:
    """Bind the learner's sockets, optionally start a source, learn until the end; a summary dict.

    ``start_source(input_address, output_address, ctx, stop, position)`` starts the source
    stage (thread or process) and returns an ``alive()`` callable and a ``join()`` callable.
    """
    from biograd.sinks.checkpoints import CheckpointManager

    stop = stop or threading.Event()
    learner, extra = make_learner(cfg, resume)
    position = (extra or {}).get("position")
    run_dir = _prepare_run_dir(cfg, bool(resume))
    p = cfg.pipeline
    ep = endpoints(p, name=f"biograd-{os.getpid()}" if p.transport != "tcp" else "biograd")
    ctx = zmq.Context()
    sinks = build_sinks(cfg, append=bool(resume))
    checkpoints = CheckpointManager(
        run_dir,
        cfg.sinks.checkpoint_every,
        cfg.sinks.checkpoint_minutes,
        cfg.sinks.keep_checkpoints,
        start_samples=int(learner.samples_seen),
    )
    receiver = publisher = None
    join = None
    reason = None
    try:
        receiver = Receiver(ep.input, ep.control, ctx, hwm=p.hwm, keys=p.keys, max_events=p.max_events)
        publisher = RecordPublisher(ep.output, ctx, keys=p.keys)
        stage = LearnerStage(
            cfg, learner, sinks, checkpoints, publisher, resume_state=position, frames=cfg.sinks.dashboard
        )
        log.info("learner listening: input %s, control %s, output %s", ep.input, ep.control, ep.output)
        if p.wait_for_sinks:
            log.info("waiting for %d sink(s) to subscribe to %s", p.wait_for_sinks, ep.output)
            publisher.wait_for_sinks(p.wait_for_sinks, p.wait_for_sinks_s)
        alive = lambda: True  # noqa: E731
        if start_source is not None:
            alive, join = start_source(connect_address(ep.input), connect_address(ep.output), ctx, stop, position)
        reason = stage.run(receiver, stop, exit_on_end=exit_on_end, alive=alive)
        stop.set()  # tells an in-process source to stop too
        stage.finish(reason)
        summary = {
            "reason": reason,
            "run_dir": str(run_dir),
            "samples": int(learner.samples_seen),
            "processed": stage.processed,
            "events": stage.events,
            **stage._counters(),
            "learner": learner,
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

            made, _ = make_plots(run_dir, BioGradLearner.load)
            log.info("plots: %s", ", ".join(str(v) for v in made.values()))
        except BioGradError as exc:
            log.warning("plots not made: %s", exc)
    return summary


def thread_source(target):
    """A ``start_source`` running ``target(address, output, ctx, stop, position)`` in a thread."""

    def start(address, output, ctx, stop, position):
        errors = []

        def body():
            try:
                target(address, output, ctx, stop, position)
            except BaseException as exc:  # surfaced in join(): a failing source fails the run
                errors.append(exc)
                log.error("source failed: %s", exc)

        thread = threading.Thread(target=body, name="biograd-source", daemon=True)
        thread.start()

        def join(graceful: bool = False):
            thread.join(timeout=10)
            if errors:
                raise errors[0]

        return thread.is_alive, join

    return start


def process_source(argv: list[str], env: dict | None = None):
    """A ``start_source`` running ``biograd source …`` as a child process."""

    def start(address, output, ctx, stop, position):
        args = [sys.executable, "-m", "biograd.pipeline.cli", "source", "--connect", address, "--ack", output, *argv]
        if position:
            args += ["--position", json.dumps(position)]
        proc = subprocess.Popen(args, env=env)

        def join(graceful: bool = False):
            if graceful:  # a finished source exits by itself once its end of stream is acknowledged
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.returncode not in (0, -signal.SIGTERM):
                raise BioGradError(f"source process exited with status {proc.returncode}")

        return (lambda: proc.poll() is None), join

    return start


def replay(
    cfg, data_root, resume: str | None = None, stop: threading.Event | None = None, epochs: int | None = None
) -> dict:
    """Dataset → learner → sinks: per epoch the train split then the test split (eval record)."""
    if epochs:
        cfg = replace(cfg, source=replace(cfg.source, epochs=epochs))
    if cfg.pipeline.transport == "inproc":
        start = thread_source(
            lambda address, output, ctx, stop_, position: run_replay_source(
                cfg, data_root, address, stop_, position, ctx=ctx, keys=cfg.pipeline.keys, ack_address=output
            )
        )
    else:
        config_file = Path(cfg.sinks.run_dir) / "config.toml"
        start = process_source(["--config", str(config_file), "--data", str(data_root)])
    return run_learner(cfg, data_root, resume, stop, start)


def live(cfg, data_root, resume: str | None = None, stop: threading.Event | None = None) -> dict:
    """Camera / DV network stream / recording → learner → sinks, in real time (drop oldest)."""
    start = thread_source(
        lambda address, output, ctx, stop_, position: run_live_source(
            cfg, data_root, address, stop_, ctx=ctx, keys=cfg.pipeline.keys, ack_address=output
        )
    )
    return run_learner(cfg, data_root, resume, stop, start, live=True)


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
    total = int(conf.sum())
    return {
        "type": "eval",
        "split": "test",
        "epoch": (extra or {}).get("position", {}).get("epoch"),
        "samples": total,
        "accuracy": float(np.trace(conf) / total) if total else None,
        "confusion": conf.tolist(),
        "checkpoint": str(checkpoint),
        "time": time.time(),
    }
