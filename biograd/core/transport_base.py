"""Sockets shared by every transport module: addresses, bind/connect with safe options, limits.

Topology (docs/protocol.md)::

    source PUSH --connect--> input   PULL --bind-- learner --bind-- XPUB output --> SUB sinks
    biograd control PUSH --connect--> control PULL --bind-- learner

The learner binds; sources and sinks connect, so they can come and go (a restarted
source reconnects by itself).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import zmq

from biograd.core import protocol
from biograd.core.errors import BioGradError
from biograd.core.events import EVENT_DTYPE, Geometry
from biograd.core.protocol import Phase
from biograd.core.security import check_bind, secure_client, secure_server

#: pyzmq copies frames below this size anyway; zero-copy only pays above it.
ZERO_COPY_THRESHOLD = 65536


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


def max_frame_bytes(max_events: int, max_json_bytes: int = protocol.DEFAULT_MAX_JSON_BYTES) -> int:
    """The largest frame a receiver of ``max_events`` accepts: libzmq disconnects a peer above it
    (ZMQ_MAXMSGSIZE, checked per frame before the frame is allocated)."""
    return max(protocol.HEADER.size, max_events * EVENT_DTYPE.itemsize, max_json_bytes)


def bind(ctx: zmq.Context, kind: int, address: str, keys: str = "", hwm: int = 1000, max_frame: int = -1) -> zmq.Socket:
    check_bind(address, keys)
    sock = ctx.socket(kind)
    try:
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, hwm)
        sock.setsockopt(zmq.SNDHWM, hwm)
        if max_frame > 0:
            sock.setsockopt(zmq.MAXMSGSIZE, max_frame)
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
    ctx: zmq.Context,
    kind: int,
    address: str,
    keys: str = "",
    hwm: int = 1000,
    linger_ms: int = 2000,
    max_frame: int = -1,
) -> zmq.Socket:
    sock = ctx.socket(kind)
    try:
        sock.setsockopt(zmq.LINGER, linger_ms)
        sock.setsockopt(zmq.SNDHWM, hwm)
        sock.setsockopt(zmq.RCVHWM, hwm)
        if max_frame > 0:
            sock.setsockopt(zmq.MAXMSGSIZE, max_frame)
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
    except BaseException:
        sock.close(0)  # an open socket would make its context's term() wait for ever
        raise
    return sock


def close_bound(sock: zmq.Socket, address: str) -> None:
    """Close a bound socket and remove its ipc:// file (libzmq leaves it behind)."""
    sock.close()
    if address.startswith("ipc://"):
        try:
            os.unlink(address[len("ipc://") :])
        except OSError:
            pass


def peek_header(frames) -> tuple[int, int] | None:
    """(stream id, seq) of a message that failed validation, if its header is readable.

    Lets the receiver account a bad message to its stream once (the sample it broke is
    dropped) instead of seeing it again later as a sequence gap.
    """
    if not frames:
        return None
    head = frames[0]
    raw = head if isinstance(head, (bytes, bytearray, memoryview)) else getattr(head, "bytes", b"")
    if len(raw) != protocol.HEADER.size or bytes(raw[:3]) != protocol.MAGIC + bytes([protocol.PROTOCOL_VERSION]):
        return None
    fields = protocol.HEADER.unpack(raw)
    return int(fields[3]), int(fields[4])


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
    orphan: int = 0  # messages of streams that never started here (no effect)
    lost_streams: int = 0  # streams given up: evicted from the table or silent too long
    skipped: int = 0  # samples a source could not read (damaged files), from its STREAM_END


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


class Orphan(NamedTuple):
    """A stream sent messages without a STREAM_START seen here: ask its source to resync."""

    stream_id: int
    type: None = None  # not a message type: code dispatching on ``item.type`` ignores it
