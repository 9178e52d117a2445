"""ZeroMQ sockets between stages: who binds, who connects, flow control, sample reassembly.

Topology (docs/protocol.md)::

    source PUSH --connect--> input   PULL --bind-- learner --bind-- PUB output --> SUB sinks
    biograd control DEALER --connect--> control ROUTER --bind-- learner  (CONTROL_ACK answers)

The learner binds; sources and sinks connect, so they can come and go (a restarted
source reconnects by itself). PUSH/PULL is lossless: when the learner falls behind the
high-water mark fills and a *blocking* source waits (replay). A *drop* source (live camera)
keeps at most ``queue`` whole samples of its own and drops the oldest, and since sequence
numbers are assigned before that queue, every drop shows up as a gap at the receiver.
"""

from __future__ import annotations

import collections
import logging
import os
import secrets
import socket as _socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zmq

from biograd.core import protocol
from biograd.core.errors import BioGradError
from biograd.core.events import EVENT_DTYPE, Geometry
from biograd.core.protocol import Message, MsgType, Phase, ProtocolError
from biograd.core.security import check_bind, secure_client, secure_server

log = logging.getLogger(__name__)

#: pyzmq copies frames below this size anyway; zero-copy only pays above it.
ZERO_COPY_THRESHOLD = 65536
#: Control senders remembered for an answer (oldest forgotten first: bounded memory).
MAX_PENDING_REPLIES = 1024


@dataclass(frozen=True)
class Endpoints:
    input: str
    control: str
    output: str


def endpoints(cfg, name: str = "biograd") -> Endpoints:
    """The three addresses of a learner for a :class:`PipelineConfig` (explicit ones win)."""
    if cfg.transport == "inproc":
        derived = [f"inproc://{name}-{part}" for part in ("input", "control", "output")]
    elif cfg.transport == "ipc":
        folder = Path(cfg.ipc_dir or tempfile.gettempdir())
        derived = [f"ipc://{folder / f'{name}-{cfg.port}-{part}'}" for part in ("input", "control", "output")]
    else:
        derived = [f"tcp://{cfg.bind_host}:{cfg.port + i}" for i in range(3)]
    return Endpoints(cfg.input or derived[0], cfg.control or derived[1], cfg.output or derived[2])


def connect_address(address: str) -> str:
    """The address a peer connects to for a bound ``address`` (a wildcard host becomes loopback)."""
    for wildcard in ("tcp://*:", "tcp://0.0.0.0:"):
        if address.startswith(wildcard):
            return "tcp://127.0.0.1:" + address[len(wildcard) :]
    return address


def bind(ctx: zmq.Context, kind: int, address: str, keys: str = "", hwm: int = 1000) -> zmq.Socket:
    check_bind(address, keys)
    sock = ctx.socket(kind)
    try:
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, hwm)
        sock.setsockopt(zmq.SNDHWM, hwm)
        if keys:
            secure_server(sock, keys)
        sock.bind(address)
    except zmq.ZMQError as exc:
        sock.close(0)
        raise BioGradError(f"cannot bind {address}: {exc}") from None
    except BaseException:
        sock.close(0)
        raise
    return sock


def connect(
    ctx: zmq.Context, kind: int, address: str, keys: str = "", hwm: int = 1000, linger_ms: int = 2000
) -> zmq.Socket:
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, linger_ms)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.RCVHWM, hwm)
    # A restarted learner is found again quickly.
    sock.setsockopt(zmq.RECONNECT_IVL, 100)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
    if kind == zmq.PUSH:
        # Queue only on completed connections: without it, libzmq 4.3 over ipc with a small
        # high-water mark was seen to lose the last messages of a closing PUSH socket.
        sock.setsockopt(zmq.IMMEDIATE, 1)
    if keys:
        secure_client(sock, keys)
    sock.connect(address)
    return sock


def close_bound(sock: zmq.Socket, address: str) -> None:
    """Close a bound socket and remove its ipc:// file (libzmq leaves it behind)."""
    sock.close()
    if address.startswith("ipc://"):
        try:
            os.unlink(address[len("ipc://") :])
        except OSError:
            pass


def _send(sock: zmq.Socket, frames, flags: int = 0) -> None:
    big = any(isinstance(f, memoryview) and f.nbytes >= ZERO_COPY_THRESHOLD for f in frames)
    sock.send_multipart(frames, flags=flags, copy=not big)


# --- sending side -----------------------------------------------------------


class Sender:
    """A source's end: a PUSH socket with one stream id and per-stream sequence numbers.

    ``flow="block"`` waits for the learner (lossless); ``flow="drop"`` never waits: it keeps
    at most ``queue`` unsent samples and drops the oldest, counting them in ``dropped``.
    ``stop`` (a threading.Event) interrupts a blocked send.
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
    ):
        if flow not in ("block", "drop"):
            raise ValueError(f"flow must be 'block' or 'drop', got {flow!r}")
        self.ctx = ctx or zmq.Context.instance()
        self.sock = connect(self.ctx, zmq.PUSH, address, keys, hwm)
        self.flow, self.name, self.kind = flow, name, kind
        self.packet_events = packet_events
        self.stream_id = secrets.randbits(32)
        self.seq = 0
        self.sent_samples = 0
        self.dropped = 0
        self.stop = stop or threading.Event()
        self._pending: collections.deque[list[list]] = collections.deque()
        self._queue = queue
        # The learner confirms STREAM_END on its output socket; until then this socket stays
        # open, because libzmq may discard what a closed peer left unread (see close()).
        self.ack_timeout_s = ack_timeout_s
        self.acked = False
        self._ack = None
        if ack_address:
            self._ack = connect(self.ctx, zmq.SUB, ack_address, keys, linger_ms=0)
            self._ack.setsockopt(zmq.SUBSCRIBE, protocol.topic(MsgType.STREAM_ACK, self.stream_id))
        self._send_unit(
            [
                self._frames(
                    Message(
                        MsgType.STREAM_START,
                        payload={
                            "name": name,
                            "kind": kind,
                            "pid": os.getpid(),
                            "host": _socket.gethostname(),
                            "flow": flow,
                            **({"total": int(total)} if total else {}),
                        },
                    )
                )
            ]
        )

    def _frames(self, msg: Message) -> list:
        frames = protocol.encode(msg, self.stream_id, self.seq)
        self.seq += 1
        return frames

    def _send_unit(self, unit: list[list]) -> None:
        if self.flow == "block":
            for frames in unit:
                self._send_blocking(frames)
            return
        if len(self._pending) >= self._queue:
            self._pending.popleft()
            self.dropped += 1
        self._pending.append(unit)
        self._flush_nowait()

    def _send_blocking(self, frames) -> None:
        while True:
            try:
                _send(self.sock, frames, zmq.NOBLOCK)
                return
            except zmq.Again:
                if self.stop.is_set():
                    raise InterruptedError("source stopped while the learner was not receiving") from None
                self.sock.poll(100, zmq.POLLOUT)

    def _flush_nowait(self) -> None:
        # A unit is sent whole or not at all: a half-sent sample would be a gap mid-sample.
        while self._pending:
            unit = self._pending[0]
            if not self.sock.poll(0, zmq.POLLOUT):
                return
            for i, frames in enumerate(unit):
                try:
                    _send(self.sock, frames, zmq.NOBLOCK)
                except zmq.Again:
                    self._pending[0] = unit[i:]
                    return
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
        fields = dict(geometry=geometry, label=label, phase=phase, epoch=epoch, index=index, sample_id=sample_id)
        step = self.packet_events or max(1, events.shape[0])
        unit = [self._frames(Message(MsgType.SAMPLE_START, **fields))]
        for start in range(0, events.shape[0], step):
            unit.append(self._frames(Message(MsgType.EVENTS, events=events[start : start + step], **fields)))
        unit.append(self._frames(Message(MsgType.SAMPLE_END, count=int(events.shape[0]), **fields)))
        self._send_unit(unit)
        self.sent_samples += 1

    def split_end(self, phase: Phase, epoch: int, samples: int) -> None:
        self._send_unit([self._frames(Message(MsgType.SPLIT_END, phase=phase, epoch=epoch, count=samples))])

    def control(self, command: str, label: int | None = None) -> None:
        payload = {"command": command, **({"label": label} if command == "label" else {})}
        self._send_unit([self._frames(Message(MsgType.CONTROL, payload=payload))])

    def raw(self, frames) -> None:
        """Send frames as they are (tests of hostile input)."""
        self._send_blocking(list(frames))

    def close(self, reason: str = "done", timeout_s: float = 5.0) -> None:
        """Flush what is queued, send STREAM_END, wait for the learner's STREAM_ACK, close.

        Why wait: libzmq 4.3 over ipc drops what a receiver had not read yet when the
        sending peer disconnects while the receiver's queue is at its high-water mark
        (zeromq/libzmq#4660), whatever LINGER says. Keeping the connection until the
        learner confirms the last message makes the end of a stream lossless. Without an
        ack address it falls back to LINGER (``timeout_s``).
        """
        if self.stop.is_set():
            timeout_s = min(timeout_s, 0.5)  # stopping: the learner may not read any more
        deadline = time.monotonic() + timeout_s
        while self._pending and time.monotonic() < deadline and not self.stop.is_set():
            self._flush_nowait()
            if self._pending:
                self.sock.poll(10, zmq.POLLOUT)
        self.dropped += len(self._pending)
        self._pending.clear()
        end_seq = self.seq
        end = self._frames(
            Message(
                MsgType.STREAM_END, payload={"reason": reason, "samples": self.sent_samples, "dropped": self.dropped}
            )
        )
        remaining = max(0.0, deadline - time.monotonic())
        if self.sock.poll(int(remaining * 1000), zmq.POLLOUT):
            _send(self.sock, end, zmq.NOBLOCK)
            if self._ack is not None and not self.stop.is_set():
                self.acked = self._wait_ack(end_seq)
        else:
            log.warning(
                "stream %08x: STREAM_END not sent (learner not receiving for %.1f s)", self.stream_id, timeout_s
            )
        if self._ack is not None:
            self._ack.close()
        self.sock.setsockopt(zmq.LINGER, int(max(0.0, deadline - time.monotonic()) * 1000))
        self.sock.close()

    def _wait_ack(self, end_seq: int) -> bool:
        deadline = time.monotonic() + self.ack_timeout_s
        while time.monotonic() < deadline and not self.stop.is_set():
            if not self._ack.poll(100):
                continue
            try:
                msg = protocol.decode(self._ack.recv_multipart())
            except ProtocolError as exc:
                log.warning("invalid STREAM_ACK: %s", exc)
                continue
            if msg.stream_id == self.stream_id and msg.payload.get("seq") == end_seq:
                return True
        if self.stop.is_set():
            log.warning("stream %08x: stopped before the learner confirmed STREAM_END", self.stream_id)
        else:
            log.warning(
                "stream %08x: the learner did not confirm STREAM_END within %.0f s; its last messages may be lost",
                self.stream_id,
                self.ack_timeout_s,
            )
        return False


def ack_address_for(input_address: str) -> str:
    """The learner's output address by the default layout: tcp port + 2, ipc/inproc ``-output``."""
    if input_address.endswith("-input"):
        return input_address[: -len("-input")] + "-output"
    if input_address.startswith("tcp://"):
        host, port = input_address.rsplit(":", 1)
        return f"{host}:{int(port) + 2}"
    raise ValueError(f"cannot derive the learner's output address from {input_address!r}; give it")


def send_control(
    address: str,
    command: str,
    label: int | None = None,
    keys: str = "",
    ctx: zmq.Context | None = None,
    timeout_s: float = 5.0,
    applied_s: float = 0.0,
    on_answer=None,
) -> list[dict]:
    """Send one CONTROL to a learner's control address; the learner's answers (CONTROL_ACK).

    Waits up to ``timeout_s`` for the answer that the control was applied (for a label: queued),
    and for a label up to ``applied_s`` more for the answer that a window took it;
    ``on_answer(payload)`` sees each answer as it comes. Raises :class:`BioGradError` when no
    learner answers.
    """
    ctx = ctx or zmq.Context.instance()
    request_id = secrets.token_hex(8)
    sock = connect(ctx, zmq.DEALER, address, keys, linger_ms=0)
    answers: list[dict] = []
    try:
        frames = protocol.control_message(command, label, stream_id=secrets.randbits(32), request_id=request_id)
        if not sock.poll(int(timeout_s * 1000), zmq.POLLOUT):
            raise BioGradError(f"no learner accepted a connection at {address} within {timeout_s:g} s")
        sock.send_multipart(frames)
        deadline = time.monotonic() + timeout_s
        while True:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0 or not sock.poll(left_ms, zmq.POLLIN):
                if answers:
                    return answers  # queued, not yet applied: the caller says so
                raise BioGradError(
                    f"no answer from a learner at {address} within {timeout_s:g} s "
                    f"(is it running? `biograd live` prints its control address)"
                )
            try:
                msg = protocol.decode(sock.recv_multipart())
            except ProtocolError as exc:
                log.warning("invalid answer from %s: %s", address, exc)
                continue
            if msg.type != MsgType.CONTROL_ACK or (msg.payload or {}).get("id") != request_id:
                continue
            answers.append(msg.payload)
            if on_answer is not None:
                on_answer(msg.payload)
            if msg.payload.get("status") != "queued" or applied_s <= 0:
                return answers
            deadline = time.monotonic() + applied_s
    finally:
        sock.close()


# --- receiving side ---------------------------------------------------------


@dataclass
class Counters:
    """What the receiver saw; all of it goes into the metrics records."""

    messages: int = 0
    invalid: int = 0  # messages rejected by protocol validation
    gaps: int = 0  # sequence numbers never received (lost or dropped at a source)
    dropped: int = 0  # samples lost: incomplete here, or dropped by a source (its STREAM_END)
    samples: int = 0  # complete samples delivered
    events: int = 0
    streams: int = 0


@dataclass
class WireSample:
    """A sample reassembled from SAMPLE_START, EVENTS…, SAMPLE_END of one stream."""

    sample_id: str
    label: int | None
    geometry: Geometry
    events: np.ndarray
    phase: Phase
    epoch: int
    index: int
    stream_id: int


@dataclass
class _Stream:
    name: str = ""
    next_seq: int = 0
    ended: bool = False
    open: Message | None = None
    packets: list = field(default_factory=list)
    n_events: int = 0


class Receiver:
    """The learner's end: binds input (and control) PULL sockets, validates, reassembles.

    :meth:`poll` returns a list of items: :class:`WireSample`, or :class:`Message` for
    SPLIT_END, CONTROL, STREAM_START and STREAM_END. Invalid messages are dropped, counted
    and logged (rate-limited); a gap inside a sample discards that sample (counted).
    A STREAM_START whose source name matches an earlier, unfinished stream supersedes it:
    that source died and restarted.
    """

    def __init__(
        self,
        input_address: str,
        control_address: str | None = None,
        ctx: zmq.Context | None = None,
        hwm: int = 1000,
        keys: str = "",
        max_events: int = protocol.DEFAULT_MAX_EVENTS,
    ):
        self.ctx = ctx or zmq.Context.instance()
        self.addresses = [input_address] + ([control_address] if control_address else [])
        self.input = bind(self.ctx, zmq.PULL, input_address, keys, hwm)
        try:
            # ROUTER: each control's sender can be answered (CONTROL_ACK), see :meth:`reply`
            self.control = bind(self.ctx, zmq.ROUTER, control_address, keys, hwm) if control_address else None
        except BaseException:
            close_bound(self.input, input_address)
            raise
        self.max_events = max_events
        self._reply_to: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self.counters = Counters()
        self.streams: dict[int, _Stream] = {}
        self._last_log = 0.0
        self._poller_all = zmq.Poller()
        self._poller_all.register(self.input, zmq.POLLIN)
        self._poller_ctl = zmq.Poller()
        if self.control is not None:
            self._poller_all.register(self.control, zmq.POLLIN)
            self._poller_ctl.register(self.control, zmq.POLLIN)

    # Streams that started and have not ended (a superseded stream counts as ended).
    def live_streams(self) -> int:
        return sum(1 for s in self.streams.values() if s.name and not s.ended)

    def poll(self, timeout_ms: int = 100, data: bool = True, max_messages: int = 256) -> list:
        """Receive what is waiting (up to ``max_messages``); with ``data=False`` only control."""
        poller = self._poller_all if data else self._poller_ctl
        out: list = []
        ready = dict(poller.poll(timeout_ms))
        for sock in ([self.control] if self.control is not None else []) + ([self.input] if data else []):
            if sock not in ready:
                continue
            for _ in range(max_messages):
                try:
                    # copy=True: zero-copy receive (copy=False) lost and corrupted messages
                    # over ipc with a small high-water mark here (pyzmq 27.3, libzmq 4.3.5).
                    frames = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                if sock is self.control:
                    self._handle_control(frames, out)
                else:
                    self._handle(frames, out)
        return out

    def _handle_control(self, frames, out: list) -> None:
        """A message on the ROUTER: the sender's identity first, then the message."""
        identity, frames = frames[0], frames[1:]
        before = len(out)
        self._handle(frames, out)
        if len(out) > before:
            item = out[-1]
            request_id = (getattr(item, "payload", None) or {}).get("id")
            if getattr(item, "type", None) == MsgType.CONTROL and request_id:
                self._reply_to[request_id] = identity
                while len(self._reply_to) > MAX_PENDING_REPLIES:
                    self._reply_to.popitem(last=False)

    def reply(self, request_id: str | None, payload: dict, final: bool = True) -> None:
        """Answer the sender of control ``request_id`` (CONTROL_ACK); no-op for unanswerable ones."""
        identity = self._reply_to.get(request_id) if request_id else None
        if identity is None or self.control is None:
            return
        if final:
            del self._reply_to[request_id]
        frames = protocol.encode(Message(MsgType.CONTROL_ACK, payload={"id": request_id, **payload}))
        try:
            self.control.send_multipart([identity, *frames], zmq.NOBLOCK)
        except zmq.ZMQError:  # the sender left: nobody to tell
            pass

    def _invalid(self, problem: str) -> None:
        self.counters.invalid += 1
        now = time.monotonic()
        if now - self._last_log > 1.0:
            self._last_log = now
            log.warning("dropped an invalid message (%d so far): %s", self.counters.invalid, problem)

    def _discard(self, stream: _Stream, why: str) -> None:
        if stream.open is not None:
            self.counters.dropped += 1
            log.warning("discarded incomplete sample %r: %s", stream.open.sample_id, why)
        stream.open, stream.packets, stream.n_events = None, [], 0

    def _handle(self, frames, out: list) -> None:
        self.counters.messages += 1
        try:
            msg = protocol.decode(frames, max_events=self.max_events)
        except ProtocolError as exc:
            self._invalid(str(exc))
            # The stream's sequence moved on, but which stream is unknown: the next valid
            # message of that stream shows a gap, which discards its open sample.
            return
        if msg.type in protocol.RECORD_TYPES.values():
            self._invalid(f"{msg.type.name} is a learner output, not a learner input")
            return
        stream = self.streams.get(msg.stream_id)
        if stream is None:
            stream = self.streams[msg.stream_id] = _Stream(next_seq=0)
            self.counters.streams += 1
        if msg.seq != stream.next_seq:
            if msg.seq > stream.next_seq:
                self.counters.gaps += msg.seq - stream.next_seq
                self._discard(
                    stream, f"messages {stream.next_seq}..{msg.seq - 1} of stream {msg.stream_id:08x} missing"
                )
            else:
                self._invalid(f"stream {msg.stream_id:08x} sequence went back from {stream.next_seq - 1} to {msg.seq}")
                return
        stream.next_seq = msg.seq + 1
        t = msg.type
        if stream.ended and t != MsgType.STREAM_START:
            # Left in the socket by a source that has since restarted (superseded): stale.
            if t == MsgType.SAMPLE_START:
                self.counters.dropped += 1
            return
        if t == MsgType.STREAM_START:
            stream.name = str(msg.payload.get("name", "")) or f"{msg.stream_id:08x}"
            for other_id, other in self.streams.items():
                if other_id != msg.stream_id and other.name == stream.name and not other.ended:
                    self._discard(other, f"source {other.name!r} restarted")
                    other.ended = True
                    log.info("source %r restarted: stream %08x replaces %08x", stream.name, msg.stream_id, other_id)
            out.append(msg)
        elif t == MsgType.STREAM_END:
            self._discard(stream, "stream ended inside a sample")
            stream.ended = True
            reported = msg.payload.get("dropped", 0)
            if isinstance(reported, int) and reported > 0:
                self.counters.dropped += reported
            out.append(msg)
        elif t == MsgType.SAMPLE_START:
            self._discard(stream, "a new sample started before SAMPLE_END")
            stream.open = msg
        elif t == MsgType.EVENTS:
            if stream.open is None:
                self._invalid(f"EVENTS outside a sample on stream {msg.stream_id:08x}")
            elif msg.geometry != stream.open.geometry or msg.sample_id != stream.open.sample_id:
                self._invalid(
                    f"EVENTS for {msg.sample_id!r} {msg.geometry} inside sample "
                    f"{stream.open.sample_id!r} {stream.open.geometry}"
                )
                self._discard(stream, "mismatched EVENTS")
            elif stream.n_events + msg.count > self.max_events:
                self._invalid(f"sample {msg.sample_id!r} exceeds {self.max_events} events")
                self._discard(stream, "too many events")
            else:
                stream.packets.append(msg.events)
                stream.n_events += msg.count
        elif t == MsgType.SAMPLE_END:
            opened = stream.open
            if opened is None:
                self._invalid(f"SAMPLE_END of {msg.sample_id!r} without SAMPLE_START")
                return
            if (msg.sample_id, msg.label, msg.geometry) != (
                opened.sample_id,
                opened.label,
                opened.geometry,
            ) or msg.count != stream.n_events:
                self._invalid(
                    f"SAMPLE_END of {msg.sample_id!r} says {msg.count} events, "
                    f"received {stream.n_events} (or its fields differ from SAMPLE_START)"
                )
                self._discard(stream, "SAMPLE_END does not match")
                return
            # One packet: the array over the received bytes as it is (read-only, no copy).
            events = (
                np.concatenate(stream.packets)
                if len(stream.packets) > 1
                else stream.packets[0]
                if stream.packets
                else np.zeros(0, EVENT_DTYPE)
            )
            if len(stream.packets) > 1 and events.size > 1 and np.any(np.diff(events["t"]) < 0):
                self._invalid(f"sample {msg.sample_id!r}: timestamps go backwards between packets")
                self._discard(stream, "timestamps go backwards")
                return
            stream.open, stream.packets, stream.n_events = None, [], 0
            self.counters.samples += 1
            self.counters.events += events.shape[0]
            out.append(
                WireSample(
                    opened.sample_id,
                    opened.label,
                    opened.geometry,
                    events,
                    opened.phase,
                    opened.epoch,
                    opened.index,
                    msg.stream_id,
                )
            )
        else:  # SPLIT_END, CONTROL
            out.append(msg)

    def close(self) -> None:
        close_bound(self.input, self.addresses[0])
        if self.control is not None:
            close_bound(self.control, self.addresses[1])


class RecordPublisher:
    """The learner's output: every sink record on a PUB socket (one message type per record type).

    An XPUB, so the learner can see sinks subscribe (:meth:`wait_for_sinks`); it publishes
    exactly like a PUB.
    """

    def __init__(self, address: str, ctx: zmq.Context | None = None, keys: str = "", hwm: int = 10000):
        self.ctx = ctx or zmq.Context.instance()
        self.address = address
        self.sock = bind(self.ctx, zmq.XPUB, address, keys, hwm)
        # report every subscription, also a second sink's to a topic already subscribed
        self.sock.setsockopt(zmq.XPUB_VERBOSE, 1)
        self.seq = 0
        self.stream_id = secrets.randbits(32)

    def wait_for_sinks(self, count: int, timeout_s: float) -> None:
        """Block until ``count`` sinks have subscribed, so they see the run from its first record.

        A sink counts once its subscription to the ``end`` record (or to everything) arrives;
        RecordSubscriber subscribes to ``end`` last. PUB/SUB keeps nothing for late joiners,
        which is why a run that must be logged whole by another process waits here.
        """
        wanted = {b"\x01" + protocol.topic(protocol.RECORD_TYPES["end"]), b"\x01"}
        seen = 0
        deadline = time.monotonic() + timeout_s
        while seen < count:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0 or not self.sock.poll(left_ms):
                raise BioGradError(
                    f"only {seen} of {count} sinks subscribed to {self.address} "
                    f"within {timeout_s:g} s (pipeline.wait_for_sinks)"
                )
            if self.sock.recv() in wanted:
                seen += 1

    def handle(self, record: dict) -> None:
        frames = protocol.record_message(record, self.stream_id, self.seq)
        self.seq += 1
        try:
            self.sock.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:  # a PUB never blocks; ZeroMQ drops for a slow subscriber
            pass

    def ack(self, stream_id: int, seq: int) -> None:
        """Confirm a source's STREAM_END (topic = type + its stream id)."""
        frames = protocol.encode(Message(MsgType.STREAM_ACK, stream_id=stream_id, seq=seq, payload={"seq": seq}))
        try:
            self.sock.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:
            pass

    def close(self) -> None:
        close_bound(self.sock, self.address)


class RecordSubscriber:
    """A sink's end: SUB to a learner's output; :meth:`recv` gives record dicts.

    ``types`` limits the record types (``("prediction",)``); gaps in the publisher's sequence
    (a slow subscriber) are counted in ``gaps``, invalid messages in ``invalid``.
    """

    def __init__(
        self,
        address: str,
        types: tuple[str, ...] = (),
        ctx: zmq.Context | None = None,
        keys: str = "",
        hwm: int = 10000,
    ):
        self.ctx = ctx or zmq.Context.instance()
        self.sock = connect(self.ctx, zmq.SUB, address, keys, hwm, linger_ms=0)
        # "end" last: a learner waiting for sinks counts this one as subscribed when it sees "end"
        for kind in sorted(types or ("",), key=lambda k: k == "end"):
            self.sock.setsockopt(zmq.SUBSCRIBE, protocol.topic(protocol.RECORD_TYPES[kind]) if kind else b"")
        self.gaps = self.invalid = 0
        self._next: dict[int, int] = {}
        self.filtered = bool(types)

    def recv(self, timeout_ms: int | None = None) -> dict | None:
        """The next record, or None after ``timeout_ms`` without one."""
        while True:
            if timeout_ms is not None and not self.sock.poll(timeout_ms):
                return None
            frames = self.sock.recv_multipart()
            try:
                msg = protocol.decode(frames)
            except ProtocolError as exc:
                self.invalid += 1
                log.warning("invalid record message: %s", exc)
                continue
            if msg.type == MsgType.STREAM_ACK:
                continue
            if msg.type not in protocol.RECORD_TYPES.values():
                self.invalid += 1
                continue
            expected = self._next.get(msg.stream_id)
            if expected is not None and msg.seq > expected and not self.filtered:
                self.gaps += msg.seq - expected
            self._next[msg.stream_id] = msg.seq + 1
            return msg.payload

    def close(self) -> None:
        self.sock.close()
