"""Live events over UDP in the AEStream / SPIF formats, received through faery.

``source.kind = "udp"`` binds ``source.address`` (127.0.0.1 by default) and
reads datagrams with faery's UDP receiver (``faery.udp_decoder.Receiver``: a
thread that queues each datagram's bytes). Two encodings, as faery names them:

* ``t64_x16_y16_on8`` (AEStream): 13-byte records, t u64 µs, x u16, y u16, on u8
  — byte for byte this project's event record, so a datagram becomes a packet
  without a copy (:func:`biograd.core.events.from_faery`);
* ``t32_x16_y15_on1`` (SPIF-style): 8-byte records, t u32 µs (wrapping every
  71 min), x u16, then y in 15 bits and polarity in the low bit.

UDP carries no sensor size, so ``source.geometry`` is required. The same
counters as the other live sources apply (``packets``, ``events``, ``invalid``,
``dropped``, ``gaps``), plus what only UDP has: ``stats.dropped`` also counts
datagrams the kernel dropped because the socket's receive buffer overflowed
(read from ``/proc/net/udp``), the one place a UDP loss is visible.
"""

from __future__ import annotations

import logging
import os
import socket
import time

import numpy as np

from biograd.core.errors import ConfigError
from biograd.core.events import FAERY_EVENT_DTYPE, Geometry, empty_events, from_faery
from biograd.sources.base import sanitize_packet
from biograd.sources.live import _PolledStream

log = logging.getLogger(__name__)

FORMATS = ("t64_x16_y16_on8", "t32_x16_y15_on1")
_SPIF_DTYPE = np.dtype([("t", "<u4"), ("x", "<u2"), ("y_on", "<u2")])
#: Receive buffer asked of the kernel: a few ms of a 12 M ev/s stream.
RECEIVE_BUFFER = 8 << 20


def kernel_drops(sock: socket.socket) -> int | None:
    """Datagrams the kernel dropped for ``sock`` (Linux ``/proc/net/udp`` "drops"), None if unknown."""
    try:
        inode = os.fstat(sock.fileno()).st_ino
    except OSError:
        return None
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    cells = line.split()
                    if len(cells) >= 13 and cells[9] == str(inode):
                        return int(cells[12])
        except (OSError, StopIteration, ValueError):
            continue
    return None


class UdpStream(_PolledStream):
    """Events arriving as UDP datagrams on ``host:port`` (bound here; 127.0.0.1 by default)."""

    def __init__(
        self,
        host: str,
        port: int,
        geometry: Geometry,
        *,
        format: str = "t64_x16_y16_on8",
        queue_size: int = 4096,
        gap_factor: float = 20.0,
        poll_interval: float = 0.0005,
    ):
        if format not in FORMATS:
            raise ConfigError(f"source.udp_format = {format!r}: must be one of {', '.join(FORMATS)}")
        super().__init__(f"udp://{host}:{port}", queue_size, gap_factor, poll_interval)
        self.host, self.port, self.format = host, int(port), format
        self.geometry = geometry
        self._t_offset = 0  # SPIF: added 2**32 per wrap of the 32-bit clock
        self._last_raw_t = 0
        self._kernel_drops = 0
        self.receiver = self._bind()  # bind now, so a sender may start as soon as this returns
        self.connected.set()

    def _bind(self):
        from faery.udp_decoder import Receiver

        try:
            receiver = Receiver((self.host, self.port))
        except OSError as exc:
            raise ConfigError(f"{self.name}: cannot bind ({exc.strerror or exc})") from None
        try:
            receiver.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        except OSError:
            pass
        self.port = receiver.socket.getsockname()[1]
        self.name = f"udp://{self.host}:{self.port}"
        return receiver

    def _connect(self):
        return self.receiver

    @staticmethod
    def _alive(receiver) -> bool:
        return receiver.running

    def _decode(self, data: bytes) -> np.ndarray:
        if self.format == "t64_x16_y16_on8":
            return from_faery(np.frombuffer(data, dtype=FAERY_EVENT_DTYPE))
        raw = np.frombuffer(data, dtype=_SPIF_DTYPE)
        out = empty_events(raw.size)
        t = raw["t"].astype(np.int64)
        if raw.size:
            # a 32-bit clock that jumps back by more than half its range has wrapped
            wraps = np.concatenate(([t[0] < self._last_raw_t - (1 << 31)], np.diff(t) < -(1 << 31)))
            t += self._t_offset + (np.cumsum(wraps) << 32)
            self._t_offset += int(wraps.sum()) << 32
            self._last_raw_t = int(raw["t"][-1])
        out["t"], out["x"] = t, raw["x"]
        out["y"], out["p"] = raw["y_on"] >> 1, raw["y_on"] & 1
        return out

    def _poll_loop(self, receiver) -> None:
        record = FAERY_EVENT_DTYPE.itemsize if self.format == "t64_x16_y16_on8" else _SPIF_DTYPE.itemsize
        last_check = time.monotonic()
        while not self._stop.is_set():
            chunks = []
            while receiver.queue:  # everything that arrived since the last pass, as one packet
                data = receiver.queue.popleft()
                whole = len(data) - len(data) % record
                if whole != len(data):
                    self.stats.invalid += 1
                    self.stats.last_error = (
                        f"{self.name}: a {len(data)}-byte datagram is not whole {record}-byte events"
                    )
                chunks.append(data[:whole] if whole != len(data) else data)
            if time.monotonic() - last_check > 0.5:
                self._count_kernel_drops()
                last_check = time.monotonic()
            if not chunks:
                time.sleep(self.poll_interval)
                continue
            events = self._decode(b"".join(chunks) if len(chunks) > 1 else chunks[0])
            events, bad, reason = sanitize_packet(events, self.geometry, self._last_t)
            if bad:
                self.stats.bad_events += bad
                self.stats.last_error = f"{self.name}: dropped {bad} bad events ({reason})"
            if events.size:
                self._accept(events)

    def _count_kernel_drops(self) -> None:
        drops = kernel_drops(self.receiver.socket)
        if drops is not None and drops > self._kernel_drops:
            log.warning(
                "%s: the kernel dropped %d datagrams (receiver too slow)", self.name, drops - self._kernel_drops
            )
            self.stats.dropped += drops - self._kernel_drops
            self._kernel_drops = drops

    def close(self) -> None:
        super().close()
        receiver = self.receiver
        if receiver.running:
            self._count_kernel_drops()
            receiver.running = False
            receiver.thread.join(timeout=2)
            receiver.socket.close()
