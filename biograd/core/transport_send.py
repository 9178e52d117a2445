"""A source's end of the input: PUSH socket, sequence numbers, flow control, clean shutdown, resync.

PUSH/PULL is lossless: when the learner falls behind, the high-water mark fills and a
*blocking* source waits (replay). A *drop* source (live camera) keeps at most ``queue``
whole samples of its own and drops the oldest; sequence numbers are assigned before that
queue, so every drop shows up as a gap at the receiver.

The learner answers on its output socket (STREAM_ACK, topic = type + stream id): once
for STREAM_START (``welcome``: which learner, and the position it has acknowledged), once
for STREAM_END, and with ``resync`` when it receives messages of a stream it never saw
start -- a learner that restarted (kill -9, then ``--resume``) lost this stream, and a
replay source then starts a new stream from the position the learner acknowledges.
"""

from __future__ import annotations

import collections
import logging
import os
import secrets
import socket as _socket
import threading
import time

import numpy as np
import zmq

from biograd.core import protocol
from biograd.core.events import Geometry
from biograd.core.protocol import Message, MsgType, Phase
from biograd.core.transport_base import ZERO_COPY_THRESHOLD, connect

log = logging.getLogger(__name__)


class Resync(Exception):
    """The learner lost this stream (it restarted); resend from ``position`` on a new stream."""

    def __init__(self, position: dict | None, learner: int | None):
        super().__init__(f"learner {learner} asks to resend from {position}")
        self.position = position
        self.learner = learner


class _Unit(list):
    """Frames sent together (a sample, or one SPLIT_END / CONTROL); ``droppable`` for samples."""

    droppable = True
    started = False  # some frames are on the wire: dropping the rest is the receiver's loss to count


class Sender:
    """A source's end: a PUSH socket with one stream id and per-stream sequence numbers.

    ``flow="block"`` waits for the learner (lossless); ``flow="drop"`` never waits: it keeps
    at most ``queue`` unsent samples and drops the oldest, counting them in ``dropped``
    (SPLIT_END and CONTROL are never dropped). ``stop`` (a threading.Event) interrupts a
    blocked send. Without ``ctx`` the sender owns a context and terminates it on close, so
    no zero-copy buffer is released while libzmq may still be sending it.
    """

    def __init__(
        self,
        address: str,
        ctx: zmq.Context | None = None,
        flow: str = "block",
        hwm: int = 1000,
        queue: int = 64,
        keys: str = "",
        name: str = "source",
        kind: str = "",
        packet_events: int = 0,
        stop: threading.Event | None = None,
        total: int | None = None,
        ack_address: str | None = None,
        ack_timeout_s: float = 120.0,
        stop_timeout_s: float = 5.0,
        position: dict | None = None,
        ping_s: float = 1.0,
    ):
        if flow not in ("block", "drop"):
            raise ValueError(f"flow must be 'block' or 'drop', got {flow!r}")
        self._own_ctx = ctx is None
        self.ctx = ctx if ctx is not None else zmq.Context()
        self.address, self.keys, self.hwm = address, keys, hwm
        try:
            self.sock = connect(self.ctx, zmq.PUSH, address, keys, hwm)
        except BaseException:
            if self._own_ctx:  # not left for the garbage collector, whose term() can block
                self.ctx.term()
            raise
        self.flow, self.name, self.kind = flow, name, kind
        self.packet_events = packet_events
        self.sent_samples = 0
        self.dropped = 0
        self.skipped = 0  # samples the source could not read (a damaged file), set by its owner
        self.stop = stop or threading.Event()
        self._pending: collections.deque[_Unit] = collections.deque()
        self._queue = queue
        # The learner confirms STREAM_END on its output socket; until then this socket stays
        # open, because libzmq may discard what a closed peer left unread (see close()).
        self.ack_timeout_s = ack_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.ping_s = ping_s
        self.acked = False
        self.learner: int | None = None  # the learner instance that welcomed this stream
        self.learner_position: dict | None = None
        self._end_seq: int | None = None
        self._end_queued_at: float | None = None
        self._ack = None
        if ack_address:
            self._ack = connect(self.ctx, zmq.SUB, ack_address, keys, linger_ms=0, max_frame=1 << 16)
        self._total = total
        self._start(position)

    # --- stream start / restart -------------------------------------------------
    def _start(self, position: dict | None) -> None:
        self.stream_id = secrets.randbits(32)
        self.seq = 0
        self.learner = self.learner_position = None
        self.acked = False
        if self._ack is not None:
            self._ack.setsockopt(zmq.SUBSCRIBE, protocol.topic(MsgType.STREAM_ACK, self.stream_id))
        payload = {
            "name": self.name,
            "kind": self.kind,
            "pid": os.getpid(),
            "host": _socket.gethostname(),
            "flow": self.flow,
            **({"total": int(self._total)} if self._total else {}),
            **({"position": position} if position is not None else {}),
        }
        unit = _Unit([self._frames(Message(MsgType.STREAM_START, payload=payload))])
        unit.droppable = False
        self._send_unit(unit)

    def restart(self, position: dict | None = None, total: int | None = None) -> None:
        """Start a new stream on the same socket (after :class:`Resync`); queued samples are abandoned.

        No STREAM_END for the old stream (a learner that sees every stream ended would stop):
        the new STREAM_START carries the same name, which makes a learner that knows the old
        stream close it (a restarted source).
        """
        if self._ack is not None:
            self._ack.setsockopt(zmq.UNSUBSCRIBE, protocol.topic(MsgType.STREAM_ACK, self.stream_id))
        self._pending.clear()
        self._total = total
        self._start(position)

    def wait_welcome(self, timeout_s: float) -> dict | None:
        """Wait until the learner has processed STREAM_START; its acknowledged position (or None)."""
        if self._ack is None:
            return None
        deadline = time.monotonic() + timeout_s
        while self.learner is None and time.monotonic() < deadline and not self.stop.is_set():
            self._flush_nowait()
            self._read_acks(100)
        return self.learner_position

    # --- acknowledgements -------------------------------------------------------
    def _read_acks(self, timeout_ms: int = 0) -> None:
        """Handle what the learner said; raises :class:`Resync` if it lost this stream."""
        if self._ack is None or not self._ack.poll(timeout_ms):
            return
        while True:
            try:
                frames = self._ack.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                msg = protocol.decode(frames)
            except Exception as exc:  # noqa: BLE001 - a bad ack is logged, never fatal
                log.warning("invalid STREAM_ACK: %s", exc)
                continue
            payload = msg.payload or {}
            if msg.type != MsgType.STREAM_ACK or msg.stream_id != self.stream_id:
                continue
            learner = payload.get("learner")
            position = payload.get("position")
            position = position if isinstance(position, dict) else None
            if payload.get("resync"):
                raise Resync(position, learner if isinstance(learner, int) else None)
            if payload.get("seq") == 0 and self.learner is None:
                self.learner = learner if isinstance(learner, int) else -1
                self.learner_position = position
            elif self._end_seq is not None and payload.get("seq") == self._end_seq:
                self.acked = True

    def check(self) -> None:
        """Cheap (one non-blocking poll): raise :class:`Resync` if the learner lost this stream."""
        if self._ack is not None:
            self._read_acks(0)

    # --- sending ------------------------------------------------------------------
    def _frames(self, msg: Message) -> list:
        frames = protocol.encode(msg, self.stream_id, self.seq)
        self.seq += 1
        return frames

    def _send(self, frames, flags: int = 0) -> None:
        big = not self.stop.is_set() and any(
            isinstance(f, memoryview) and f.nbytes >= ZERO_COPY_THRESHOLD for f in frames
        )
        # Zero-copy only while running: pyzmq holds the buffer until libzmq releases it, and
        # close() terminates the context before the interpreter may drop those references.
        self.sock.send_multipart(frames, flags=flags, copy=not big)

    def _send_unit(self, unit: _Unit) -> None:
        if self.flow == "block":
            for frames in unit:
                self._send_blocking(frames)
            return
        if len(self._pending) >= self._queue:
            for i, queued in enumerate(self._pending):
                if queued.droppable and not queued.started:
                    del self._pending[i]
                    self.dropped += 1
                    break
        self._pending.append(unit)
        self._flush_nowait()

    def _send_blocking(self, frames) -> None:
        while True:
            try:
                self._send(frames, zmq.NOBLOCK)
                return
            except zmq.Again:
                if self.stop.is_set():
                    raise InterruptedError("source stopped while the learner was not receiving") from None
                self.check()
                self.sock.poll(100, zmq.POLLOUT)

    def _flush_nowait(self) -> None:
        # A unit is sent whole or not at all: a half-sent sample would be a gap mid-sample.
        while self._pending:
            unit = self._pending[0]
            if not self.sock.poll(0, zmq.POLLOUT):
                return
            while unit:
                try:
                    self._send(unit[0], zmq.NOBLOCK)
                except zmq.Again:
                    return
                unit.started = True
                del unit[0]
            self._pending.popleft()

    def send_sample(
        self,
        sample_id: str,
        label: int | None,
        geometry: Geometry,
        events: np.ndarray,
        phase: Phase = Phase.TRAIN,
        epoch: int = 0,
        index: int = -1,
    ) -> None:
        """SAMPLE_START, the events in packets of at most ``packet_events``, SAMPLE_END."""
        head = Message(
            MsgType.SAMPLE_START,
            geometry=geometry,
            label=label,
            phase=phase,
            epoch=epoch,
            index=index,
            sample_id=sample_id,
        )
        step = self.packet_events or max(1, events.shape[0])
        unit = _Unit([self._frames(head)])
        for start in range(0, events.shape[0], step):
            unit.append(self._frames(head._replace(type=MsgType.EVENTS, events=events[start : start + step])))
        unit.append(self._frames(head._replace(type=MsgType.SAMPLE_END, count=int(events.shape[0]))))
        self._send_unit(unit)
        self.sent_samples += 1

    def _send_control_unit(self, msg: Message) -> None:
        unit = _Unit([self._frames(msg)])
        unit.droppable = False
        self._send_unit(unit)

    def split_end(self, phase: Phase, epoch: int, samples: int) -> None:
        self._send_control_unit(Message(MsgType.SPLIT_END, phase=phase, epoch=epoch, count=samples))

    def control(self, command: str, label: int | None = None) -> None:
        payload = {"command": command, **({"label": label} if command == "label" else {})}
        self._send_control_unit(Message(MsgType.CONTROL, payload=payload))

    def raw(self, frames) -> None:
        """Send frames as they are (tests of hostile input)."""
        self._send_blocking(list(frames))

    # --- the end ------------------------------------------------------------------
    def finish(self, reason: str = "done", timeout_s: float = 5.0) -> bool:
        """Flush what is queued, send STREAM_END and wait for the learner's STREAM_ACK.

        Why wait: libzmq 4.3 over ipc drops what a receiver had not read yet when the
        sending peer disconnects while the receiver's queue is at its high-water mark
        (zeromq/libzmq#4660), whatever LINGER says. Keeping the connection until the
        learner confirms the last message makes the end of a stream lossless. May raise
        :class:`Resync` (a restarted learner lost this stream while we waited). Stopping
        (``stop`` set): queued samples are dropped and counted, STREAM_END still goes out
        if the learner reads within ``stop_timeout_s``, and no ack is awaited.
        """
        stopping = self.stop.is_set()
        deadline = time.monotonic() + (self.stop_timeout_s if stopping else timeout_s)
        while self._pending and time.monotonic() < deadline and not self.stop.is_set():
            self._flush_nowait()
            if self._pending:
                self.sock.poll(10, zmq.POLLOUT)
        # A unit already partly on the wire is the receiver's to count (it sees it incomplete).
        self.dropped += sum(1 for u in self._pending if u.droppable and not u.started)
        self._pending.clear()
        self._end_seq = self.seq
        end_payload = {"reason": reason, "samples": self.sent_samples, "dropped": self.dropped}
        if self.skipped:
            end_payload["skipped"] = self.skipped
        end = self._frames(Message(MsgType.STREAM_END, payload=end_payload))
        remaining = max(0.0, deadline - time.monotonic())
        if not self.sock.poll(int(remaining * 1000), zmq.POLLOUT):
            log.warning(
                "stream %08x: STREAM_END not sent (learner not receiving for %.1f s)",
                self.stream_id,
                self.stop_timeout_s if stopping else timeout_s,
            )
            return False
        self._send(end, zmq.NOBLOCK)
        self._end_queued_at = time.monotonic()
        if self._ack is None or stopping:
            return False
        ack_deadline = time.monotonic() + self.ack_timeout_s
        next_ping = time.monotonic() + self.ping_s
        while not self.acked and time.monotonic() < ack_deadline and not self.stop.is_set():
            self._read_acks(100)
            if not self.acked and time.monotonic() >= next_ping and self.sock.poll(0, zmq.POLLOUT):
                # Still no ack: the learner may have restarted and lost this stream. A repeated
                # STREAM_END is ignored by a learner that knows the stream (it ended) and makes
                # one that does not ask for a resync.
                next_ping = time.monotonic() + self.ping_s
                self._send(self._frames(Message(MsgType.STREAM_END, payload=end_payload)), zmq.NOBLOCK)
        if not self.acked:
            log.warning(
                "stream %08x: the learner did not confirm STREAM_END%s; its last messages may be lost",
                self.stream_id,
                " (stopped)" if self.stop.is_set() else f" within {self.ack_timeout_s:.0f} s",
            )
        return self.acked

    def close(self, reason: str | None = "done", timeout_s: float = 5.0) -> None:
        """:meth:`finish` (unless ``reason`` is None: already finished), then close the sockets.

        The context, when the sender owns it, is terminated here: ``term`` returns once libzmq
        has released every message, so a zero-copy buffer is never freed while being sent
        (pyzmq drops its references at interpreter exit; a SIGTERMed source used to put
        corrupted frames on the wire).
        """
        if reason is not None:
            try:
                self.finish(reason, timeout_s)
            except Resync:
                log.warning("stream %08x: the learner restarted while the stream was ending", self.stream_id)
        if self._ack is not None:
            self._ack.close(0)
        # STREAM_END may sit behind up to a high-water mark of messages: while the learner reads,
        # give libzmq the time to send them (stopping: up to stop_timeout_s); unsent, nothing waits.
        if self._end_queued_at is None:
            linger = 0.0
        elif self.stop.is_set():
            linger = max(0.0, self._end_queued_at + self.stop_timeout_s - time.monotonic())
        else:
            linger = timeout_s
        self.sock.close(int(linger * 1000))
        if self._own_ctx:
            self.ctx.term()
