"""The learner stage: the loop that turns received samples into learning and sink records.

It trains on train samples, predicts on test samples (an ``eval`` record at the end of each
test pass), and on live samples trains when a label is known (from the sample or a
``label`` control) and predicts otherwise. Records are built by ``biograd.core.records``,
counted by :class:`~biograd.pipeline.stats.RunStats` and written to the sinks (a
``SinkSet``) and the output socket.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from biograd.core import records
from biograd.core.errors import EventFormatError
from biograd.core.protocol import MsgType, Phase
from biograd.core.transport import Orphan, Receiver, WireSample
from biograd.learner.health import HealthGuard
from biograd.pipeline.encoder import PrefetchingEncoder
from biograd.pipeline.stats import LearningCurve, RunStats

log = logging.getLogger(__name__)

_PHASE_NAMES = {Phase.TRAIN: "train", Phase.TEST: "test", Phase.LIVE: "live"}


class LearnerStage:
    """Receives samples and controls, trains or predicts, emits records.

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
    ):
        self.cfg = cfg
        self.learner = learner
        self.sinks = sinks
        self.checkpoints = checkpoints
        self.publisher = publisher
        self.encode = PrefetchingEncoder(cfg)
        self.position = dict(resume_state or {"epoch": 0, "next_index": 0, "train_done": False})
        self.frames = frames
        self._last_frame = 0.0
        # Labels for the next live windows, oldest first: (label, request id of its sender).
        self.labels: deque[tuple[int, str | None]] = deque()
        self.label_queue = cfg.pipeline.label_queue
        self.paused = False
        self.shutdown_requested = False
        self.invalid_samples = 0
        self.processed = 0
        self.events = 0
        self.stats = RunStats(learner.config.layer_sizes[-1])
        self.guard = HealthGuard.from_config(learner.config)
        self.curve = LearningCurve()
        self._since_metrics = 0
        self._metrics_t = time.monotonic()
        self._metrics_events = 0
        self._last_phase = "train"
        self.receiver: Receiver | None = None
        self._metrics_counters = self.counters()  # as of the last metrics record

    # Sink records go to the in-process sinks and to the output PUB socket.
    def emit(self, record: dict) -> None:
        self.sinks.handle(record)
        if self.publisher is not None:
            self.publisher.handle(record)

    def counters(self) -> dict:
        """Messages dropped (flow control), invalid (protocol or sample) and sequence gaps."""
        c = self.receiver.counters if self.receiver else None
        return {
            "dropped": c.dropped if c else 0,
            "invalid": (c.invalid if c else 0) + self.invalid_samples,
            "gaps": c.gaps if c else 0,
            "orphan": c.orphan if c else 0,  # messages of streams that never started here (no effect)
            "lost_streams": c.lost_streams if c else 0,  # sources given up (silent, or table full)
            "skipped": c.skipped if c else 0,  # samples a source could not read (damaged files)
        }

    # --- items ------------------------------------------------------------------
    def process(self, item) -> None:
        if isinstance(item, WireSample):
            self._sample(item)
            return
        if isinstance(item, Orphan):
            # A source streams to us without our having seen it start: this learner restarted
            # (kill -9, --resume). It resends from the position this learner acknowledges.
            if self.publisher is not None:
                log.info("stream %08x unknown here: asking its source to resync at %s", item.stream_id, self.position)
                self.publisher.resync(item.stream_id, self.position)
            return
        t = item.type
        if t == MsgType.CONTROL:
            self._control(item.payload)
        elif t == MsgType.SPLIT_END:
            self._split_end(item.phase, item.epoch)
        elif t == MsgType.STREAM_START:
            stream_started = getattr(self.sinks, "stream_started", None)
            if stream_started is not None:
                stream_started(item.payload)
            log.info(
                "source %r connected (stream %08x, %s)",
                item.payload.get("name"),
                item.stream_id,
                item.payload.get("kind"),
            )
            if self.publisher is not None:  # welcome: where this learner is, so a restarted source continues there
                self.publisher.ack(item.stream_id, item.seq, position=self.position)
        elif t == MsgType.STREAM_END:
            log.info("stream %08x ended: %s", item.stream_id, item.payload)
            if self.publisher is not None:
                self.publisher.ack(item.stream_id, item.seq)

    def _reply(self, payload: dict, message: str, final: bool = True, **fields) -> None:
        """Answer a control's sender (CONTROL_ACK) if it asked for one (``id``)."""
        reply = getattr(self.receiver, "reply", None)
        if reply is not None and payload.get("id"):
            answer = {"command": payload["command"], "message": message, "samples": int(self.learner.samples_seen)}
            reply(payload["id"], {**answer, **fields}, final=final)

    def _control(self, payload: dict) -> None:
        command = payload["command"]
        log.debug("control: %s", payload)  # the sender is answered; the terminal shows windows
        if command == "label":
            self._queue_label(payload)
            return
        detail = ""
        if command == "sleep":
            alignment = self.learner.sleep()
            self.emit(records.sleep_record(self.learner.samples_seen, alignment))
            if alignment:
                detail = ": feedback angle " + ", ".join(f"{a:.1f}°" for a, _ in alignment)
        elif command == "checkpoint":
            path = self.checkpoint(final=False, forced=True)
            detail = f": {path}" if path else ": no run folder, nothing saved"
        elif command == "pause":
            self.paused = True
            detail = ": input is held until `resume`"
        elif command == "resume":
            self.paused = False
        elif command == "shutdown":
            self.shutdown_requested = True
            detail = ": final checkpoint, then exit"
        done = {"sleep": "slept", "checkpoint": "checkpoint saved", "pause": "paused", "resume": "resumed"}
        message = f"{done.get(command, command)} at {int(self.learner.samples_seen)} samples{detail}"
        self._reply(payload, message, status="done", paused=self.paused)

    def _queue_label(self, payload: dict) -> None:
        label = int(payload["label"])
        n_out = self.learner.config.layer_sizes[-1]
        if not 0 <= label < n_out:
            self._reply(payload, f"label {label} refused: the learner has classes 0..{n_out - 1}", status="refused")
            return
        replaced = None
        if len(self.labels) >= self.label_queue:
            replaced, old_id = self.labels.popleft()
            self._reply({"command": "label", "id": old_id}, f"label {replaced} dropped: queue full", status="dropped")
        self.labels.append((label, payload.get("id")))
        message = f"label {label} queued for the next live window ({len(self.labels)} waiting)"
        if replaced is not None:
            message += f"; the queue was full ({self.label_queue}): the oldest label {replaced} was dropped"
            log.warning("label queue full: dropped label %d for %d", replaced, label)
        self._reply(
            payload, message, final=False, status="queued", label=label, depth=len(self.labels), replaced=replaced
        )

    def _label_of(self, sample: WireSample) -> tuple[int | None, str | None]:
        """The sample's label; a live window without one takes the oldest queued label."""
        if sample.phase == Phase.LIVE and sample.label is None and self.labels:
            return self.labels.popleft()
        return sample.label, None

    def _reject(self, message: str, *args) -> None:
        self.invalid_samples += 1
        log.warning(message, *args)

    def _sample(self, sample: WireSample) -> None:
        try:
            raster = self.encode(sample)
        except EventFormatError as exc:
            self._reject("sample rejected: %s", exc)
            return
        n_out = self.learner.config.layer_sizes[-1]
        label, label_request = self._label_of(sample)
        phase = _PHASE_NAMES.get(sample.phase, "live")
        if label is not None and not 0 <= label < n_out:
            self._reject("sample %r: label %d outside 0..%d", sample.sample_id, label, n_out - 1)
            return
        if sample.phase == Phase.TRAIN and label is None:
            self._reject("train sample %r has no label", sample.sample_id)
            return
        train = sample.phase in (Phase.TRAIN, Phase.LIVE) and label is not None
        loss = None
        slept = False
        if train:
            result = self.learner.train_sample(raster, label)
            predicted, counts, loss, slept = result.prediction, result.counts, result.loss, result.slept
            self.curve.add(predicted == label)
            for warning in self.guard.observe(self.learner, result):  # raises LearningHalted
                log.warning("health: %s", warning)
        else:
            predicted, counts = self.learner.predict(raster)
        predicted = int(predicted)
        self.stats.add(phase, sample.epoch, None if label is None else predicted == label, loss)
        if sample.phase == Phase.TEST and label is not None:
            self.stats.add_test(sample.epoch, label, predicted)
        if sample.phase == Phase.TRAIN:
            self.position = {"epoch": sample.epoch, "next_index": sample.index + 1, "train_done": False}
        n_events = int(sample.events.shape[0])
        self.processed += 1
        self.events += n_events
        self._metrics_events += n_events
        self._last_phase = phase
        frame = None
        if self.frames and time.monotonic() - self._last_frame >= self.cfg.sinks.frame_interval_s:
            self._last_frame = time.monotonic()
            frame = records.event_frame(sample.events, sample.geometry.width, sample.geometry.height)
        self.emit(
            records.prediction_record(
                sample.sample_id, sample.index, phase, sample.epoch, predicted, label, counts, n_events, frame
            )
        )
        if slept:
            self.emit(records.sleep_record(self.learner.samples_seen, self.learner.last_alignment))
        if label_request is not None:
            self._reply(
                {"command": "label", "id": label_request},
                f"label {label} applied to window {sample.sample_id} (#{sample.index}; it predicted "
                f"{predicted}, {len(self.labels)} labels still waiting)",
                status="applied",
                label=label,
                window=sample.sample_id,
                index=int(sample.index),
                predicted=predicted,
                depth=len(self.labels),
            )
        self._since_metrics += 1
        if self._since_metrics >= self.cfg.pipeline.metrics_every:
            self.metrics(phase, sample.epoch)
        if train:
            self.checkpoint(final=False)

    def metrics(self, phase: str | None = None, epoch: int = 0) -> None:
        phase = phase or self._last_phase
        now = time.monotonic()
        dt = max(now - self._metrics_t, 1e-9)
        stats = self.stats.phase(phase, epoch)
        self.emit(
            records.metrics_record(
                self.learner.samples_seen,
                self.processed,
                phase,
                epoch,
                stats.accuracy,
                stats.loss,
                self._metrics_events / dt,
                self._since_metrics / dt,
                self.counters(),
                self.learner.sleeps,
            )
        )
        self._since_metrics = 0
        self._metrics_events = 0
        self._metrics_t = now
        self._metrics_counters = self.counters()

    def _split_end(self, phase: Phase, epoch: int) -> None:
        # Only the end of the pass in progress counts: a forged or stale SPLIT_END must not
        # move the saved position (one at epoch 65535 used to make a resume train nothing).
        expected = (self.position.get("epoch"), phase == Phase.TEST)
        if phase in (Phase.TRAIN, Phase.TEST) and (epoch, bool(self.position.get("train_done"))) != expected:
            self._reject("SPLIT_END %s epoch %d ignored: the learner is at %s", phase.name, epoch, self.position)
            return
        if phase == Phase.TRAIN:
            # The tail of the epoch counts before evaluation (a partial batch is applied).
            result = self.learner.flush()
            if result is not None and result.slept:
                self.emit(records.sleep_record(self.learner.samples_seen, self.learner.last_alignment))
            self.position = {"epoch": epoch, "next_index": 0, "train_done": True}
            self.metrics("train", epoch)
        elif phase == Phase.TEST:
            record = records.eval_record(self.stats.pop_confusion(epoch), epoch)
            self.emit(record)
            self.position = {"epoch": epoch + 1, "next_index": 0, "train_done": False}
            if record["samples"]:
                self.curve.evals.append((epoch, record["accuracy"], record["samples"]))
                log.info("epoch %d: test accuracy %.4f on %d samples", epoch, record["accuracy"], record["samples"])

    def extra_state(self) -> dict:
        return {"position": self.position, "counters": self.counters()}

    def checkpoint(self, final: bool, forced: bool = False):
        """Save when the checkpoint schedule says so (or at once if ``forced``, or ``final``)."""
        if self.checkpoints is None:
            return None
        if forced or final or self.checkpoints.due(int(self.learner.samples_seen)):
            self.guard.check_finite(self.learner)  # never write a diverged state
        if final:
            path = self.checkpoints.save_final(self.learner, self.extra_state())
        elif forced:
            path = self.checkpoints.save_now(self.learner, self.extra_state())
        else:
            path = self.checkpoints.maybe_save(self.learner, self.extra_state())
        if path is not None:
            self.emit(records.checkpoint_record(path, self.learner.samples_seen))
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
            if self.publisher is not None:
                self.publisher.service()  # subscriptions take effect (and cost nothing when flooded)
            pending += receiver.poll(0 if ready else 100, data=not self.paused and not pending)
            i = 0
            while i < len(pending) and not (stop.is_set() or self.shutdown_requested):
                item = pending[i]
                is_control = not isinstance(item, WireSample) and item.type == MsgType.CONTROL
                if self.paused and not is_control:
                    i += 1
                    continue
                del pending[i]
                if i < len(pending) and isinstance(pending[i], WireSample) and not self.paused:
                    self.encode.prefetch(pending[i])  # binned on the other core meanwhile
                self.process(item)  # the sample in hand is finished before any stop
                if not isinstance(item, WireSample) and item.type == MsgType.STREAM_END:
                    seen_end = True
            if pending:
                continue
            if exit_on_end and seen_end and receiver.live_streams() == 0:
                return "end"
            if not alive() and receiver.live_streams() == 0:
                return "source-died"

    def finish(self, reason: str, save: bool = True) -> None:
        """Final metrics, final checkpoint (unless ``save`` is False: a halted run), the end record."""
        self.encode.close()
        # also when only the counters moved (messages dropped or refused after the last sample)
        if self._since_metrics or self.counters() != self._metrics_counters:
            self.metrics()
        path = self.checkpoint(final=True) if save else None
        self.emit(
            records.end_record(reason, self.learner.samples_seen, self.processed, self.events, self.counters(), path)
        )
