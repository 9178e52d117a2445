"""The learner's output: sink records and STREAM_ACKs on an XPUB socket, and the sinks' SUB end.

Every record carries, in the header's ``index`` field, its number among the records of its
type (``seq`` numbers all messages). A subscriber, filtered by type or not, sees every loss
as a gap in that number and counts it (:attr:`RecordSubscriber.lost`); a slow subscriber
loses records (ZeroMQ drops at its high-water mark) but never stalls learning.

The XPUB runs in manual mode: a subscription takes effect only if it is a known topic (all,
one record type, or one stream's STREAM_ACK), so a subscription flood costs no memory, and a
peer sending a subscription longer than any topic is disconnected by libzmq.
"""

from __future__ import annotations

import collections
import logging
import threading
import time

import zmq

from biograd.core import protocol
from biograd.core.errors import BioGradError
from biograd.core.protocol import Message, MsgType
from biograd.core.transport_base import bind, close_bound, connect, max_frame_bytes

log = logging.getLogger(__name__)

_ACK_PREFIX = protocol.topic(MsgType.STREAM_ACK)
_RECORD_TOPICS = frozenset(protocol.topic(t) for t in protocol.RECORD_TYPES.values())
_END_TOPIC = protocol.topic(protocol.RECORD_TYPES["end"])
MAX_ACK_TOPICS = 4096  # distinct sources subscribed for acknowledgements at once
_REMEMBERED_ACKS = 1024


class RecordPublisher:
    """The learner's output: every sink record on an XPUB socket (one message type per record type).

    :meth:`wait_for_sinks` lets the learner see sinks subscribe; :meth:`service` applies the
    subscriptions that arrived (called by :meth:`handle`, and by the learner's loop).
    """

    def __init__(self, address: str, ctx: zmq.Context | None = None, keys: str = "", hwm: int = 10000):
        self.ctx = ctx or zmq.Context.instance()
        self.address = address
        # Subscriptions are the only input: none is longer than a STREAM_ACK topic (9 bytes).
        self.sock = bind(self.ctx, zmq.XPUB, address, keys, hwm, max_frame=64)
        self.sock.setsockopt(zmq.XPUB_MANUAL, 1)
        self.seq = 0
        self.stream_id = protocol.new_stream_id()
        self._index: dict[str, int] = {}
        self._ack_topics: collections.Counter[bytes] = collections.Counter()
        self._acks: collections.OrderedDict[int, dict] = collections.OrderedDict()  # re-sent on late subscription
        self.sinks_subscribed = 0  # subscriptions to "end" or to everything, not yet waited for
        # Until a sink subscribes to records, none is encoded (they would be dropped unsent).
        # Once one has, every record is, even after it leaves: no bookkeeping of who listens.
        self.record_subscriber_seen = False
        self.ignored_subscriptions = 0

    # --- subscriptions --------------------------------------------------------------
    def service(self, limit: int = 1000) -> None:
        """Apply up to ``limit`` waiting (un)subscriptions; unknown topics are ignored (counted)."""
        for _ in range(limit):
            if not int(self.sock.get(zmq.EVENTS)) & zmq.POLLIN:
                return  # the common case, checked without raising zmq.Again on every record
            try:
                message = self.sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if not message or message[0] not in (0, 1):
                continue
            subscribe, topic = message[0] == 1, message[1:]
            if topic == b"" or topic in _RECORD_TOPICS:
                self.record_subscriber_seen |= subscribe
                if subscribe and topic in (b"", _END_TOPIC):
                    self.sinks_subscribed += 1
            elif topic.startswith(_ACK_PREFIX) and len(topic) == len(_ACK_PREFIX) + 4:
                if subscribe and len(self._ack_topics) >= MAX_ACK_TOPICS and topic not in self._ack_topics:
                    self.ignored_subscriptions += 1
                    continue
                self._ack_topics[topic] += 1 if subscribe else -1
                if self._ack_topics[topic] <= 0:
                    del self._ack_topics[topic]
            else:
                if subscribe:
                    self.ignored_subscriptions += 1
                continue
            self.sock.setsockopt(zmq.SUBSCRIBE if subscribe else zmq.UNSUBSCRIBE, topic)
            if subscribe and topic.startswith(_ACK_PREFIX):
                # The source subscribed after its acknowledgement went out: send it again.
                remembered = self._acks.get(int.from_bytes(topic[len(_ACK_PREFIX) :], "little"))
                if remembered is not None:
                    self._send_ack(remembered)

    def wait_for_sinks(self, count: int, timeout_s: float, stop: threading.Event | None = None) -> None:
        """Block until ``count`` sinks have subscribed, so they see the run from its first record.

        A sink counts once its subscription to the ``end`` record (or to everything) arrives;
        RecordSubscriber subscribes to ``end`` last. PUB/SUB keeps nothing for late joiners,
        which is why a run that must be logged whole by another process waits here. ``stop``
        (Ctrl-C / SIGTERM) ends the wait at once.
        """
        deadline = time.monotonic() + timeout_s
        self.service()
        while self.sinks_subscribed < count:
            if stop is not None and stop.is_set():
                return
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                raise BioGradError(
                    f"only {self.sinks_subscribed} of {count} sinks subscribed to {self.address} "
                    f"within {timeout_s:g} s (pipeline.wait_for_sinks)"
                )
            if self.sock.poll(min(left_ms, 100)):
                self.service()
        self.sinks_subscribed -= count

    # --- publishing ---------------------------------------------------------------
    def handle(self, record: dict) -> None:
        self.service()
        kind = str(record.get("type"))
        if kind not in protocol.RECORD_TYPES:
            raise protocol.ProtocolError(f"record type {kind!r} is not one of {', '.join(protocol.RECORD_TYPES)}")
        index = self._index.get(kind, 0)
        seq = self.seq
        self.seq += 1
        self._index[kind] = index + 1
        if not self.record_subscriber_seen and kind != "end":
            return  # no sink has ever subscribed: the numbers advance, nothing to encode
        frames = protocol.record_message(record, self.stream_id, seq, index=index)
        if kind == "end":
            self._send_reliably(frames, timeout_s=2.0)
            return
        try:
            self.sock.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:  # an XPUB never blocks; ZeroMQ drops for a slow subscriber
            pass

    def _send_reliably(self, frames, timeout_s: float) -> None:
        """The last record: wait up to ``timeout_s`` for slow subscribers to make room for it."""
        self.sock.setsockopt(zmq.XPUB_NODROP, 1)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                try:
                    self.sock.send_multipart(frames, zmq.NOBLOCK)
                    return
                except zmq.Again:
                    if time.monotonic() > deadline:
                        break
                    self.sock.poll(20, zmq.POLLOUT)
                    self.service()
        finally:
            self.sock.setsockopt(zmq.XPUB_NODROP, 0)
        try:
            self.sock.send_multipart(frames, zmq.NOBLOCK)  # to every subscriber with room
        except zmq.Again:
            pass

    def ack(self, stream_id: int, seq: int, **fields) -> None:
        """Answer a source (topic = STREAM_ACK + its stream id): ``{"seq": seq, **fields}``."""
        payload = {"seq": seq, "learner": self.stream_id, **fields, "_stream": stream_id}
        self._acks[stream_id] = payload
        self._acks.move_to_end(stream_id)
        while len(self._acks) > _REMEMBERED_ACKS:
            self._acks.popitem(last=False)
        self.service()
        self._send_ack(payload)

    def resync(self, stream_id: int, position: dict | None) -> None:
        """Tell a source this learner does not know its stream: start again from ``position``."""
        self.ack(stream_id, -1, resync=True, position=position)

    def _send_ack(self, payload: dict) -> None:
        body = {k: v for k, v in payload.items() if k != "_stream"}
        sid, seq = payload["_stream"], payload["seq"]
        frames = protocol.encode(Message(MsgType.STREAM_ACK, stream_id=sid, seq=max(seq, 0), payload=body))
        try:
            self.sock.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:
            pass

    def close(self) -> None:
        close_bound(self.sock, self.address)


class RecordSubscriber:
    """A sink's end: SUB to a learner's output; :meth:`recv` gives record dicts.

    ``types`` limits the record types (``("prediction",)``). Lost records (a slow subscriber,
    or one that joined late) are counted in :attr:`lost`, per type from the header's record
    number; invalid messages in ``invalid``.
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
        self.sock = connect(self.ctx, zmq.SUB, address, keys, hwm, linger_ms=0, max_frame=max_frame_bytes(0))
        # "end" last: a learner waiting for sinks counts this one as subscribed when it sees "end"
        for kind in sorted(types or ("",), key=lambda k: k == "end"):
            self.sock.setsockopt(zmq.SUBSCRIBE, protocol.topic(protocol.RECORD_TYPES[kind]) if kind else b"")
        self.lost = self.invalid = 0
        self._next: dict[tuple[int, int], int] = {}
        self._warned = 0.0

    @property
    def gaps(self) -> int:  # the name before records were numbered per type
        return self.lost

    def recv(self, timeout_ms: int | None = None) -> dict | None:
        """The next record, or None after ``timeout_ms`` without one."""
        while True:
            if timeout_ms is not None and not self.sock.poll(timeout_ms):
                return None
            frames = self.sock.recv_multipart()
            try:
                msg = protocol.decode(frames)
            except Exception as exc:  # noqa: BLE001 - one bad publisher must not stop a sink
                self.invalid += 1
                log.warning("invalid record message: %s", exc)
                continue
            if msg.type == MsgType.STREAM_ACK:
                continue
            if msg.type not in protocol.RECORD_TYPES.values() or msg.payload is None:
                self.invalid += 1
                continue
            if msg.index >= 0:
                key = (msg.stream_id, int(msg.type))
                expected = self._next.get(key)
                if expected is not None and msg.index > expected:
                    self.lost += msg.index - expected
                    now = time.monotonic()
                    if now - self._warned > 5.0:
                        self._warned = now
                        log.warning("%d records lost so far (this subscriber is too slow)", self.lost)
                if expected is None or msg.index >= expected:
                    self._next[key] = msg.index + 1
            return msg.payload

    def close(self) -> None:
        self.sock.close()
