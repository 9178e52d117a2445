"""Predictions: per sample (or live window) the predicted class, output spike counts and label.

:class:`PredictionPublisher` publishes prediction records on its own ZeroMQ PUB
socket in the wire protocol (``pipeline/protocol.py``, message type
PREDICTION), so other programs can subscribe without touching the learner;
:class:`PredictionWriter` writes them as JSON lines. :class:`RecordSubscriber`
is the other end: it connects a SUB socket to any PUB carrying sink records
(the runner's output socket or a PredictionPublisher) and yields the records.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import zmq

from biograd.core import transport
from biograd.core.errors import BioGradError
from biograd.core.protocol import RECORD_TYPES, record_message
from biograd.core.records import RecordError, check_record, to_json
from biograd.core.security import check_bind, secure_server

log = logging.getLogger(__name__)


def _check_address(address: str, what: str) -> None:
    if "://" not in address:
        raise BioGradError(f"{what} {address!r}: expected a ZeroMQ address such as tcp://127.0.0.1:5560")


class PredictionPublisher:
    """Sink publishing prediction records on a PUB socket bound at ``address``.

    ``tcp://127.0.0.1:0`` picks a free port; the bound address is
    :attr:`address`. PUB never blocks the learner: a slow subscriber loses
    messages at the high-water mark instead. ``keys``: CURVE key folder
    (required for a non-loopback address).
    """

    def __init__(self, address: str, context: zmq.Context | None = None, hwm: int = 10_000, keys: str = ""):
        _check_address(address, "predictions address")
        self._context = context or zmq.Context.instance()
        if address.startswith("tcp://") and address.endswith(":0"):
            check_bind(address, keys)
            self._socket = self._context.socket(zmq.PUB)
            self._socket.setsockopt(zmq.SNDHWM, hwm)
            if keys:
                secure_server(self._socket, keys)
            port = self._socket.bind_to_random_port(address.rsplit(":", 1)[0])
            address = f"{address.rsplit(':', 1)[0]}:{port}"
        else:
            try:
                self._socket = transport.bind(self._context, zmq.PUB, address, keys, hwm)
            except zmq.ZMQError as exc:
                raise BioGradError(f"predictions address {address}: cannot bind ({exc})") from None
        self._socket.setsockopt(zmq.LINGER, 1000)
        self.address = address
        self._seq = 0
        self.published = 0

    def handle(self, record: dict) -> None:
        if record.get("type") != "prediction":
            return
        try:
            frames = record_message(check_record(record), seq=self._seq, index=self._seq)
            self._socket.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:  # never block the learner for a slow subscriber
            return
        self._seq += 1
        self.published += 1

    def close(self) -> None:
        if not self._socket.closed:
            self._socket.close()


class PredictionWriter:
    """Sink writing prediction records as JSON lines (flushed per line) to a file or stream."""

    def __init__(self, target: str | Path | IO[str]):
        if isinstance(target, (str, Path)):
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            self._stream, self._owned = open(target, "w", buffering=1, encoding="utf-8"), True
        else:
            self._stream, self._owned = target, False
        self.written = 0

    def handle(self, record: dict) -> None:
        if record.get("type") != "prediction":
            return
        self._stream.write(to_json(record) + "\n")
        self._stream.flush()
        self.written += 1

    def close(self) -> None:
        if self._owned:
            self._stream.close()
        else:
            self._stream.flush()


class RecordSubscriber:
    """SUB socket connected to ``address``, yielding sink records of the given ``types``.

    Built on :class:`pipeline.transport.RecordSubscriber` (protocol checks, CURVE keys);
    a record that decodes but lacks its documented keys is dropped as well. Dropped
    messages are counted in :attr:`invalid` and logged, never fatal: one bad sender must
    not stop a sink. Iteration ends at an ``end`` record when ``types`` include it, after
    ``count`` records, or when nothing arrives for ``idle_timeout`` seconds (None = wait
    forever).
    """

    def __init__(
        self,
        address: str,
        types: Iterable[str] = tuple(RECORD_TYPES),
        context: zmq.Context | None = None,
        keys: str = "",
    ):
        _check_address(address, "--connect")
        self.types = tuple(types)
        unknown = [t for t in self.types if t not in RECORD_TYPES]
        if unknown:
            raise BioGradError(f"unknown record type(s) {', '.join(unknown)}; known: {', '.join(RECORD_TYPES)}")
        try:
            self._sub = transport.RecordSubscriber(address, self.types, context or zmq.Context.instance(), keys=keys)
        except zmq.ZMQError as exc:
            raise BioGradError(f"--connect {address}: {exc}") from None
        self.address = address
        self.received = 0
        self._bad_records = 0

    @property
    def invalid(self) -> int:
        return self._sub.invalid + self._bad_records

    @property
    def lost(self) -> int:
        """Records the publisher sent that never arrived here (numbered per type)."""
        return self._sub.lost

    def records(self, count: int = 0, idle_timeout: float | None = None) -> Iterator[dict]:
        timeout_ms = None if idle_timeout is None else int(idle_timeout * 1000)
        while True:
            payload = self._sub.recv(timeout_ms)
            if payload is None:
                return
            try:
                record = check_record(payload, f"message from {self.address}")
            except RecordError as exc:
                self._bad_records += 1
                if self._bad_records <= 5:
                    log.warning("dropped an invalid record from %s: %s", self.address, exc)
                continue
            self.received += 1
            yield record
            if record["type"] == "end" or (count and self.received >= count):
                return

    def close(self) -> None:
        self._sub.close()


def print_predictions(
    address: str, count: int = 0, idle_timeout: float | None = None, stream: IO[str] = sys.stdout, keys: str = ""
) -> int:
    """``biograd sink predictions``: print prediction records from ``address`` as JSON lines."""
    subscriber = RecordSubscriber(address, ("prediction", "end"), keys=keys)
    writer = PredictionWriter(stream)
    started = time.monotonic()
    try:
        for record in subscriber.records(count=0, idle_timeout=idle_timeout):
            writer.handle(record)
            if count and writer.written >= count:
                break
    finally:
        subscriber.close()
        writer.close()
    log.debug(
        "printed %d predictions in %.1f s (%d invalid messages dropped)",
        writer.written,
        time.monotonic() - started,
        subscriber.invalid,
    )
    if subscriber.lost:
        print(
            f"biograd: {subscriber.lost} records lost on the way (this subscriber was too slow); "
            f"{writer.written} printed",
            file=sys.stderr,
        )
    return 0
