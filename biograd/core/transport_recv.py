"""The learner's input: bound PULL sockets, validation, sample reassembly, bounded memory.

What a hostile or broken peer can cost is bounded by settings (``pipeline.*``, safe defaults):

* ``max_events``: events in one message or sample; libzmq disconnects a peer whose frame is
  larger than that (ZMQ_MAXMSGSIZE) before allocating it.
* ``sample_timeout_s``: a sample left half-received that long is discarded (counted).
* ``max_buffered_events``: events held in all half-received samples together; above it the
  oldest open sample is discarded (counted).
* ``max_streams``: the stream table is an LRU; the least recently heard stream is forgotten.
* ``max_gap``: a sequence jump larger than this is not believed (one forged header must not
  add 1.8e19 to ``gaps``); the message is invalid unless the next one confirms the jump.
* ``stream_idle_s``: a stream silent that long while the learner waits for input is given up
  (its source died without STREAM_END), so the learner can end.

Messages of a stream whose STREAM_START was never seen here have no effect (counted in
``orphan``); the receiver asks, rate-limited, for that source to resync (:class:`Orphan`).
"""

from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import zmq

from biograd.core import protocol
from biograd.core.events import EVENT_DTYPE
from biograd.core.protocol import Message, MsgType
from biograd.core.transport_base import Counters, Orphan, WireSample, bind, close_bound, max_frame_bytes, peek_header

log = logging.getLogger(__name__)

DEFAULT_SAMPLE_TIMEOUT_S = 60.0
DEFAULT_MAX_BUFFERED_EVENTS = 16_000_000  # 208 MB of half-received samples at most
DEFAULT_MAX_STREAMS = 1024
DEFAULT_MAX_GAP = 1 << 20
DEFAULT_STREAM_IDLE_S = 300.0
#: Control senders remembered for an answer (oldest forgotten first: bounded memory).
MAX_PENDING_REPLIES = 1024
_MAX_ORPHANS = 256


@dataclass
class _Stream:
    sid: int = 0
    name: str = ""
    next_seq: int = 0
    ended: bool = False
    open: Message | None = None
    opened_at: float = 0.0
    packets: list = field(default_factory=list)
    n_events: int = 0
    skipping: bool = False  # the open sample was discarded: ignore its remaining messages quietly
    jump: int = -1  # an unconfirmed large sequence jump: the seq that would confirm it
    last_seen: float = 0.0


class Receiver:
    """The learner's end: binds input (and control) PULL sockets, validates, reassembles.

    :meth:`poll` returns a list of items: :class:`WireSample`, :class:`Orphan`, or
    :class:`Message` for SPLIT_END, CONTROL, STREAM_START and STREAM_END. Invalid messages
    are dropped, counted once and logged (rate-limited); a gap inside a sample discards that
    sample (counted). A STREAM_START whose source name matches an earlier, unfinished stream
    supersedes it: that source died and restarted.
    """

    def __init__(
        self,
        input_address: str,
        control_address: str | None = None,
        ctx: zmq.Context | None = None,
        hwm: int = 1000,
        keys: str = "",
        max_events: int = protocol.DEFAULT_MAX_EVENTS,
        sample_timeout_s: float = DEFAULT_SAMPLE_TIMEOUT_S,
        max_buffered_events: int = DEFAULT_MAX_BUFFERED_EVENTS,
        max_streams: int = DEFAULT_MAX_STREAMS,
        max_gap: int = DEFAULT_MAX_GAP,
        stream_idle_s: float = DEFAULT_STREAM_IDLE_S,
        clock=time.monotonic,
    ):
        self.ctx = ctx or zmq.Context.instance()
        self.addresses = [input_address] + ([control_address] if control_address else [])
        self.input = bind(self.ctx, zmq.PULL, input_address, keys, hwm, max_frame_bytes(max_events))
        self.control: zmq.Socket | None = None
        try:
            if control_address:
                # ROUTER: each control's sender can be answered (CONTROL_ACK), see :meth:`reply`
                self.control = bind(self.ctx, zmq.ROUTER, control_address, keys, hwm, max_frame_bytes(0))
        except BaseException:
            close_bound(self.input, input_address)
            raise
        self.max_events = max_events
        self._reply_to: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self.sample_timeout_s = sample_timeout_s
        self.max_buffered_events = max_buffered_events
        self.max_streams = max_streams
        self.max_gap = max_gap
        self.stream_idle_s = stream_idle_s
        self._clock = clock
        self.counters = Counters()
        self.streams: collections.OrderedDict[int, _Stream] = collections.OrderedDict()
        self._open: dict[int, _Stream] = {}  # streams with a half-received sample
        self._buffered = 0  # events held in half-received samples
        self._orphans: collections.OrderedDict[int, float] = collections.OrderedDict()
        self._last_log = 0.0
        self._last_sweep = clock()
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
        socks = ([self.control] if self.control is not None else []) + ([self.input] if data else [])
        for sock in socks:
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
        now = self._clock()
        if data and now - self._last_sweep >= 1.0:
            self._last_sweep = now
            self._sweep(now, idle=self.input not in ready)
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
        if identity is None or self.control is None or request_id is None:
            return
        if final:
            del self._reply_to[request_id]
        frames = protocol.encode(Message(MsgType.CONTROL_ACK, payload={"id": request_id, **payload}))
        try:
            self.control.send_multipart([identity, *frames], zmq.NOBLOCK)
        except zmq.ZMQError:  # the sender left: nobody to tell
            pass

    # --- bounds -------------------------------------------------------------------
    def _sweep(self, now: float, idle: bool) -> None:
        for stream in list(self._open.values()):
            if stream.open is not None and now - stream.opened_at > self.sample_timeout_s:
                self._discard(stream, f"half-received for more than {self.sample_timeout_s:g} s")
        if idle and self.stream_idle_s > 0:
            # Only while no input waits: a stream whose messages are queued behind others is alive.
            for sid, stream in self.streams.items():
                if stream.name and not stream.ended and now - stream.last_seen > self.stream_idle_s:
                    self._discard(stream, "its source went silent")
                    stream.ended = True
                    self.counters.lost_streams += 1
                    log.warning(
                        "stream %08x (%r) silent for %.0f s without STREAM_END: given up",
                        sid,
                        stream.name,
                        self.stream_idle_s,
                    )

    def _evict(self) -> None:
        while len(self.streams) > self.max_streams:
            sid, stream = self.streams.popitem(last=False)
            if stream.name and not stream.ended:
                self.counters.lost_streams += 1
                log.warning("stream table full (pipeline.max_streams = %d): forgot stream %08x", self.max_streams, sid)
            self._discard(stream, "its stream was forgotten (pipeline.max_streams)")

    def _invalid(self, problem: str) -> None:
        self.counters.invalid += 1
        now = time.monotonic()
        if now - self._last_log > 1.0:
            self._last_log = now
            log.warning("dropped an invalid message (%d so far): %s", self.counters.invalid, problem)

    def _discard(self, stream: _Stream, why: str) -> None:
        if stream.open is not None:
            self.counters.dropped += 1
            stream.skipping = True
            log.warning("discarded incomplete sample %r: %s", stream.open.sample_id, why)
        self._buffered -= stream.n_events
        self._open.pop(stream.sid, None)
        stream.open, stream.packets, stream.n_events = None, [], 0

    def _orphan(self, stream_id: int, out: list) -> None:
        self.counters.orphan += 1
        now = self._clock()
        last = self._orphans.pop(stream_id, None)
        self._orphans[stream_id] = last if last is not None and now - last < 1.0 else now
        if last is None or now - last >= 1.0:
            out.append(Orphan(stream_id))
        while len(self._orphans) > _MAX_ORPHANS:
            self._orphans.popitem(last=False)

    # --- one message ----------------------------------------------------------------
    def _handle(self, frames, out: list) -> None:
        self.counters.messages += 1
        try:
            msg = protocol.decode(frames, max_events=self.max_events)
        except Exception as exc:  # noqa: BLE001 - no message may stop the learner
            self._invalid(str(exc) or type(exc).__name__)
            self._broken(frames)
            return
        if msg.type in protocol.RECORD_TYPES.values() or msg.type in (MsgType.STREAM_ACK, MsgType.CONTROL_ACK):
            self._invalid(f"{msg.type.name} is a learner output, not a learner input")
            self._broken(frames)
            return
        stream = self.streams.get(msg.stream_id)
        t = msg.type
        if stream is None:
            if t == MsgType.CONTROL:  # `biograd control` sends one message, no stream
                out.append(msg)
            elif t == MsgType.STREAM_START and msg.seq == 0:
                stream = self.streams[msg.stream_id] = _Stream(sid=msg.stream_id)
                self.counters.streams += 1
                self._orphans.pop(msg.stream_id, None)
                self._evict()
            else:
                self._orphan(msg.stream_id, out)
            if stream is None:
                return
        else:
            self.streams.move_to_end(msg.stream_id)
        if not self._sequence(stream, msg):
            return
        stream.last_seen = self._clock()
        if stream.ended and t != MsgType.STREAM_START:
            # Left in the socket by a source that has since restarted (superseded): stale.
            if t == MsgType.SAMPLE_START:
                self.counters.dropped += 1
            return
        if t == MsgType.STREAM_START:
            self._stream_start(stream, msg, out)
        elif t == MsgType.STREAM_END:
            self._discard(stream, "stream ended inside a sample")
            stream.ended = True
            reported = msg.payload.get("dropped", 0) if msg.payload else 0
            # A source drops whole samples of at least 2 messages each: more cannot be true.
            if isinstance(reported, int) and not isinstance(reported, bool) and 0 <= reported <= msg.seq // 2:
                self.counters.dropped += reported
            else:
                self._invalid(
                    f"STREAM_END of {msg.stream_id:08x} reports dropped={reported!r} after {msg.seq} messages"
                )
            skipped = msg.payload.get("skipped", 0) if msg.payload else 0
            if isinstance(skipped, int) and not isinstance(skipped, bool) and 0 <= skipped < 2**31:
                self.counters.skipped += skipped
            out.append(msg)
        elif t in protocol.SAMPLE_TYPES:
            self._sample_part(stream, msg, out)
        else:  # SPLIT_END, CONTROL
            out.append(msg)

    def _broken(self, frames) -> None:
        """A rejected message used a sequence number of its stream: account it there, once."""
        head = peek_header(frames)
        if head is None:
            return
        stream = self.streams.get(head[0])
        if stream is not None and head[1] == stream.next_seq:
            stream.next_seq += 1
            self._discard(stream, "one of its messages was invalid")

    def _sequence(self, stream: _Stream, msg: Message) -> bool:
        if msg.seq == stream.next_seq:
            stream.next_seq += 1
            stream.jump = -1
            return True
        if msg.seq < stream.next_seq:
            self._invalid(f"stream {msg.stream_id:08x} sequence went back from {stream.next_seq - 1} to {msg.seq}")
            return False
        missing = msg.seq - stream.next_seq
        if missing > self.max_gap and msg.seq != stream.jump:
            # Not believed until the next message continues from here (a real, huge loss).
            stream.jump = msg.seq + 1
            self._invalid(f"stream {msg.stream_id:08x} jumped {missing} messages ahead (pipeline.max_gap)")
            return False
        if msg.seq == stream.jump:
            missing = min(missing, self.max_gap)
        stream.jump = -1
        self.counters.gaps += missing
        self._discard(stream, f"messages {stream.next_seq}..{msg.seq - 1} of stream {msg.stream_id:08x} missing")
        stream.next_seq = msg.seq + 1
        return True

    def _stream_start(self, stream: _Stream, msg: Message, out: list) -> None:
        stream.name = str(msg.payload.get("name", "") if msg.payload else "")[:256] or f"{msg.stream_id:08x}"
        for other_id, other in self.streams.items():
            if other_id != msg.stream_id and other.name == stream.name and not other.ended:
                self._discard(other, f"source {other.name!r} restarted")
                other.ended = True
                log.info("source %r restarted: stream %08x replaces %08x", stream.name, msg.stream_id, other_id)
        out.append(msg)

    def _sample_part(self, stream: _Stream, msg: Message, out: list) -> None:
        t = msg.type
        if t == MsgType.SAMPLE_START:
            self._discard(stream, "a new sample started before SAMPLE_END")
            stream.skipping = False
            stream.open, stream.opened_at = msg, self._clock()
            self._open[msg.stream_id] = stream
            return
        if stream.open is None:
            if not stream.skipping:
                self._invalid(f"{t.name} outside a sample on stream {msg.stream_id:08x}")
            if t == MsgType.SAMPLE_END:
                stream.skipping = False
            return
        opened = stream.open
        if t == MsgType.EVENTS:
            if msg.geometry != opened.geometry or msg.sample_id != opened.sample_id:
                self._invalid(
                    f"EVENTS for {msg.sample_id!r} {msg.geometry} inside sample {opened.sample_id!r} {opened.geometry}"
                )
                self._discard(stream, "mismatched EVENTS")
            elif stream.n_events + msg.count > self.max_events:
                self._invalid(f"sample {msg.sample_id!r} exceeds {self.max_events} events")
                self._discard(stream, "too many events")
            else:
                stream.packets.append(msg.events)
                stream.n_events += msg.count
                self._buffered += msg.count
                if self._buffered > self.max_buffered_events:
                    self._shed()
            return
        # SAMPLE_END
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
            stream.skipping = False
            return
        # One packet: the array over the received bytes as it is (read-only, no copy).
        packets = stream.packets
        events = np.concatenate(packets) if len(packets) > 1 else packets[0] if packets else np.zeros(0, EVENT_DTYPE)
        if len(packets) > 1 and events.size > 1 and np.any(np.diff(events["t"]) < 0):
            self._invalid(f"sample {msg.sample_id!r}: timestamps go backwards between packets")
            self._discard(stream, "timestamps go backwards")
            stream.skipping = False
            return
        self._buffered -= stream.n_events
        self._open.pop(msg.stream_id, None)
        stream.open, stream.packets, stream.n_events = None, [], 0
        self.counters.samples += 1
        self.counters.events += events.shape[0]
        assert opened.geometry is not None  # decode requires it on sample messages
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

    def _shed(self) -> None:
        """Over ``max_buffered_events``: discard the oldest half-received samples first."""
        for stream in sorted(self._open.values(), key=lambda s: s.opened_at):
            if self._buffered <= self.max_buffered_events:
                return
            self._discard(stream, f"half-received samples exceed {self.max_buffered_events} events")

    def close(self) -> None:
        close_bound(self.input, self.addresses[0])
        if self.control is not None:
            close_bound(self.control, self.addresses[1])
