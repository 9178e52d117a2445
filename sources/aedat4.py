"""AEDAT4 recordings: decoded by ``aedat`` (fast path) or ``dv-processing`` (the reference).

Before either library sees a file, :func:`scan_aedat4` checks the container
itself, because both react badly to damage: ``aedat`` panics (a
``PanicException`` that is not an ``Exception``) on a damaged header, and
dv-processing 2.0.4 refuses truncated files and can hang on a corrupt LZ4
packet. The container is::

    "#!AER-DAT4.0\\r\\n"          14 bytes
    IOHeader length             uint32 LE
    IOHeader                    flatbuffer: compression, dataTablePosition, infoNode (XML)
    packets                     int32 stream id, uint32 size, payload … up to dataTablePosition
    data table                  (index of packets; not needed to read them in order)

The scan walks the packet headers (no decompression) so every packet has a byte
offset for error messages. Event packets are then decoded by the library;
frames, IMU and trigger packets are skipped and counted.

A recording replays as fast as possible (``speed=0``) or in real time scaled by
``speed`` (2.0 = twice as fast), pacing packet by packet on the first
timestamp of each packet.
"""

from __future__ import annotations

import logging
import mmap
import os
import struct
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from biograd.core.errors import DataFormatError
from biograd.core.events import Geometry, empty_events, from_aedat, from_dv
from biograd.sources.base import StreamStats, sanitize_packet

log = logging.getLogger(__name__)
#: Problems of one file logged one by one; after that only the summary at the end.
LOGGED_PROBLEMS = 10

MAGIC = b"#!AER-DAT4.0\r\n"
TYPE_KINDS = {"EVTS": "events", "FRME": "frame", "IMUS": "imus", "TRIG": "triggers"}


@dataclass(frozen=True)
class Aedat4Layout:
    """What the container scan found."""

    path: Path
    compression: int
    data_table_position: int
    streams: dict  # stream id -> {"kind", "type", "width", "height"}
    packets: list = field(repr=False)  # (offset, stream id, payload size)
    problems: list  # (offset, message) of damage after the header

    @property
    def geometry(self) -> Geometry | None:
        for info in self.streams.values():
            if info["kind"] == "events" and info.get("width"):
                return Geometry(info["width"], info["height"])
        return None


def _flatbuffer_ioheader(buf: bytes, path: Path, base: int):
    """(compression, dataTablePosition, infoNode) from the IOHeader flatbuffer.

    Flatbuffer layout: uint32 root-table offset; the table starts with an int32
    back-offset to its vtable; the vtable holds uint16 (vtable size, table size,
    field offsets…). Fields: 0 compression int32, 1 dataTablePosition int64, 2 infoNode string.
    """

    def fail(msg, off):
        raise DataFormatError(path, f"damaged IOHeader: {msg}", base + off)

    n = len(buf)
    if n < 8:
        fail(f"only {n} bytes", 0)
    table = struct.unpack_from("<I", buf, 0)[0]
    if table + 4 > n:
        fail(f"root table offset {table} beyond the {n}-byte header", 0)
    vtable = table - struct.unpack_from("<i", buf, table)[0]
    if not 0 <= vtable <= n - 4:
        fail(f"vtable offset {vtable} outside the header", table)
    vsize, tsize = struct.unpack_from("<HH", buf, vtable)
    if vsize < 4 or vtable + vsize > n or table + tsize > n:
        fail(f"vtable/table sizes {vsize}/{tsize} exceed the header", vtable)
    nfields = (vsize - 4) // 2
    slots = [struct.unpack_from("<H", buf, vtable + 4 + 2 * i)[0] if i < nfields else 0 for i in range(3)]
    if any(s and s + 4 > tsize for s in slots):
        fail(f"field offsets {slots} exceed the {tsize}-byte table", vtable)
    compression = struct.unpack_from("<i", buf, table + slots[0])[0] if slots[0] else 0
    if slots[1] and table + slots[1] + 8 > n:
        fail("dataTablePosition beyond the header", table + slots[1])
    position = struct.unpack_from("<q", buf, table + slots[1])[0] if slots[1] else -1
    info = ""
    if slots[2]:
        at = table + slots[2]
        start = at + struct.unpack_from("<I", buf, at)[0]
        if start + 4 > n:
            fail("infoNode string offset beyond the header", at)
        length = struct.unpack_from("<I", buf, start)[0]
        if start + 4 + length > n:
            fail(f"infoNode string of {length} bytes runs past the header", start)
        try:
            info = buf[start + 4 : start + 4 + length].decode("utf-8")
        except UnicodeDecodeError as exc:
            fail(f"infoNode is not UTF-8 ({exc.reason})", start + 4 + exc.start)
    if compression not in (0, 1, 2, 3, 4):
        fail(f"unknown compression code {compression}", table + slots[0])
    return compression, position, info


def _streams_from_info(info: str, path: Path, offset: int) -> dict:
    try:
        root = ET.fromstring(info)
    except ET.ParseError as exc:
        raise DataFormatError(path, f"damaged IOHeader: stream description is not valid XML ({exc})", offset) from None
    streams = {}
    for node in root.iter("node"):
        if not (node.get("path") or "").rstrip("/").startswith("/mainloop/Recorder/outInfo/"):
            continue
        name = node.get("name") or ""
        if not name.isdigit():
            continue
        attrs = {a.get("key"): a.text for a in node.iter("attr")}
        kind = TYPE_KINDS.get(attrs.get("typeIdentifier") or "", attrs.get("typeIdentifier") or "unknown")
        entry = {"kind": kind, "type": attrs.get("typeIdentifier")}
        if attrs.get("sizeX") and attrs.get("sizeY"):
            entry["width"], entry["height"] = int(attrs["sizeX"]), int(attrs["sizeY"])
        streams[int(name)] = entry
    if not streams:
        raise DataFormatError(path, "damaged IOHeader: no streams described", offset)
    return streams


def scan_aedat4(path: str | os.PathLike, strict: bool = True) -> Aedat4Layout:
    """Check the container and list its packets (offset, stream id, size) without decompressing.

    A bad magic line or IOHeader always raises DataFormatError. Damage after the
    header (a packet header that does not fit, a truncated tail) raises when
    ``strict``; otherwise it is listed in ``problems`` and the packets before it are kept.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(len(MAGIC) + 4)
        if head[: len(MAGIC)] != MAGIC:
            raise DataFormatError(path, f"not an AEDAT 4.0 file (first bytes {head[:14]!r})", 0)
        if len(head) < len(MAGIC) + 4:
            raise DataFormatError(path, "file ends inside the header", len(head))
        hlen = struct.unpack_from("<I", head, len(MAGIC))[0]
        start = len(MAGIC) + 4
        if start + hlen > size:
            raise DataFormatError(path, f"IOHeader length {hlen} runs past the end of the {size}-byte file", len(MAGIC))
        header = f.read(hlen)
        compression, position, info = _flatbuffer_ioheader(header, path, start)
        streams = _streams_from_info(info, path, start)
        end = position if 0 <= position <= size else size
        problems = []
        if position > size:
            problems.append(
                (size, f"truncated: the data table should start at byte {position} but the file has {size} bytes")
            )
        packets, off = [], start + hlen
        # the packet headers through a memory map: no read/seek call per packet
        view = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        while off < end:
            pheader = view[off : off + 8]
            if len(pheader) < 8:
                problems.append((off, f"truncated packet header ({len(pheader)} of 8 bytes)"))
                break
            sid, psize = struct.unpack("<iI", pheader)
            if sid not in streams:
                problems.append(
                    (
                        off,
                        f"packet header names unknown stream {sid} "
                        f"(streams {sorted(streams)}); cannot find the next packet",
                    )
                )
                break
            if off + 8 + psize > end:
                problems.append(
                    (
                        off,
                        f"packet of stream {sid} claims {psize} bytes, only "
                        f"{end - off - 8} remain (truncated or damaged)",
                    )
                )
                break
            packets.append((off, sid, psize))
            off += 8 + psize
        if isinstance(view, mmap.mmap):
            view.close()
    if strict and problems:
        raise DataFormatError(path, problems[0][1], problems[0][0])
    return Aedat4Layout(path, compression, position, streams, packets, problems)


class AedatRecording:
    """Replay the polarity events of an AEDAT4 file as a stream of EVENT_DTYPE packets.

    ``backend="aedat"`` decodes with the ``aedat`` package (the default: it goes on
    after a damaged packet, see docs/sources.md), ``"faery"`` with faery's AEDAT4
    decoder, ``"dv"`` with dv-processing's ``MonoCameraRecording`` (the reference). With ``strict``
    any damage raises :class:`DataFormatError` naming the file and byte offset;
    otherwise (a stream) bad packets are skipped and counted in ``stats.invalid``.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        backend: Literal["aedat", "dv"] = "aedat",
        speed: float = 0.0,
        strict: bool = False,
        validate: bool = True,
    ):
        if backend not in ("aedat", "dv", "faery"):
            raise ValueError(f"backend must be 'aedat', 'dv' or 'faery', got {backend!r}")
        self.path = Path(path)
        self.backend, self.speed, self.strict, self.validate = backend, speed, strict, validate
        self.layout = scan_aedat4(self.path, strict=strict)
        geometry = self.layout.geometry
        if geometry is None:
            raise DataFormatError(self.path, "the recording has no event stream with a resolution")
        self.geometry = geometry
        self.stats = StreamStats()
        self.problems: list[tuple[int | None, str]] = []
        size = self.path.stat().st_size
        position = self.layout.data_table_position
        for offset, message in self.layout.problems:  # damage found by the scan: the rest of the file is lost
            if position > size and offset == size:  # bytes the header promises but the file lacks
                self._bad(offset, message, position - size)
            else:
                self._bad(offset, message, max(min(position if position >= 0 else size, size) - offset, 0))
        self._sleep = time.sleep
        self._clock = time.monotonic

    def _bad(self, offset: int | None, message: str, nbytes: int = 0) -> None:
        """Count (and warn about) damage; ``nbytes`` of the file could not be decoded because of it."""
        if self.strict:
            raise DataFormatError(self.path, message, offset)
        self.problems.append((offset, message))
        self.stats.invalid += 1
        self.stats.skipped_bytes += nbytes
        self.stats.last_error = message
        if len(self.problems) <= LOGGED_PROBLEMS:
            where = f" at byte {offset}" if offset is not None else ""
            log.warning("%s%s: %s", self.path.name, where, message)

    def _raw_packets(self) -> Iterator[tuple[int | None, np.ndarray]]:
        if self.backend == "aedat":
            yield from self._aedat_packets()
        elif self.backend == "faery":
            yield from self._faery_packets()
        else:
            yield from self._dv_packets()

    def _aedat_packets(self):
        import aedat

        decoder = aedat.Decoder(str(self.path))
        for k, (offset, sid, psize) in enumerate(self.layout.packets):
            try:
                packet = next(decoder)
            except StopIteration:
                rest = sum(8 + size for _, _, size in self.layout.packets[k:])
                self._bad(
                    offset, f"aedat stopped before this packet; {len(self.layout.packets) - k} packets skipped", rest
                )
                return
            except BaseException as exc:  # aedat raises PanicException (a BaseException) on damage
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    raise
                self._bad(
                    offset,
                    f"packet of stream {sid} could not be decoded ({type(exc).__name__}: {exc}); skipped",
                    8 + psize,
                )
                continue
            if "events" in packet:
                yield offset, from_aedat(packet["events"])
            else:
                kind = next((k for k in packet if k != "stream_id"), "unknown")
                self.stats.skip(kind)

    def _faery_packets(self):
        from faery.file_decoder import aedat as faery_aedat

        from biograd.core.events import from_faery

        with faery_aedat.Decoder(path=self.path) as decoder:
            for k, (offset, sid, _) in enumerate(self.layout.packets):
                try:
                    track, packet = next(decoder)
                except StopIteration:
                    rest = sum(8 + size for _, _, size in self.layout.packets[k:])
                    self._bad(offset, f"faery stopped before this packet; {len(self.layout.packets) - k} skipped", rest)
                    return
                except BaseException as exc:  # faery's Rust side may panic (a BaseException)
                    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                        raise
                    rest = sum(8 + size for _, _, size in self.layout.packets[k:])
                    self._bad(offset, f"faery cannot decode packet of stream {sid} ({exc}); rest of file skipped", rest)
                    return
                if track.data_type == "events":
                    yield offset, from_faery(packet)
                else:
                    self.stats.skip(track.data_type)

    def _dv_packets(self):
        import dv_processing as dv

        try:
            reader = dv.io.MonoCameraRecording(str(self.path))
        except RuntimeError as exc:
            raise DataFormatError(self.path, f"dv-processing cannot open it: {str(exc).splitlines()[0]}") from None
        # dv reads each stream separately; the other kinds are counted from the container scan.
        for _, sid, _ in self.layout.packets:
            kind = self.layout.streams[sid]["kind"]
            if kind != "events":
                self.stats.skip(kind)
        while True:
            try:
                batch = reader.getNextEventBatch()
            except RuntimeError as exc:
                self._bad(None, f"dv-processing could not decode an event packet: {str(exc).splitlines()[0]}")
                return  # dv cannot resume after a failed packet
            if batch is None:
                return
            yield None, from_dv(batch)

    def packets(self) -> Iterator[np.ndarray]:
        """Event packets in file order; paced by timestamps when ``speed > 0``."""
        last_t = None
        t0 = wall0 = None
        for offset, events in self._raw_packets():
            if events.size == 0:
                continue
            if self.validate:
                events, bad, reason = sanitize_packet(events, self.geometry, last_t)
                if bad:
                    self.stats.bad_events += bad
                    self._bad(offset, f"dropped {bad} bad events of the packet ({reason})")
                if events.size == 0:
                    continue
            if self.speed > 0:
                if t0 is None:
                    t0, wall0 = int(events["t"][0]), self._clock()
                wait = wall0 + (int(events["t"][0]) - t0) / 1e6 / self.speed - self._clock()
                if wait > 0:
                    self._sleep(wait)
            last_t = int(events["t"][-1])
            self.stats.packets += 1
            self.stats.events += events.size
            yield events
        if self.problems:
            log.warning(
                "%s is damaged: %d problems, %d bytes and %d bad events skipped, %d events read",
                self.path.name,
                len(self.problems),
                self.stats.skipped_bytes,
                self.stats.bad_events,
                self.stats.events,
            )

    __iter__ = packets

    def read_all(self) -> np.ndarray:
        """Every valid event of the file in one array (a recording, not a dataset)."""
        chunks = list(self.packets())
        return np.concatenate(chunks) if chunks else empty_events(0)

    def close(self) -> None:
        pass
