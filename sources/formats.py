"""Every event file format ``faery`` reads, behind one reader: format from content, geometry from header.

Formats (detected from the first bytes, never from the extension alone):

=========  ==========================================  ===========================================
format     recognised by                               geometry from
=========  ==========================================  ===========================================
aedat4     ``#!AER-DAT4.0\\r\\n``                       the IOHeader's stream description
es         ``Event Stream`` + version + type           the ES header
evt2/2.1/3 ``% evt 3.0`` / ``% format EVT3`` lines     ``% geometry WxH`` or ``% format …;width=``
dat        ``% Version`` / ``% Width`` / ``% Data…``   ``% Width`` / ``% Height``
csv        a text first line ``t,x,y,on`` (or p)       ``x@W,y@H`` column names (faery writes them)
=========  ==========================================  ===========================================

EVT2 files from Gen3 cameras carry no geometry: it is taken from the plugin or
sensor name in the header where that names the sensor (:data:`SENSOR_NAMES`),
otherwise from the largest coordinate in the file, with a warning.

Decoding is faery's (Rust); AEDAT4 goes through :class:`sources.aedat4.AedatRecording`
(``aedat`` by default, see docs/sources.md for the measured choice). faery's
packets have the project's byte layout (``t`` u64, ``x``, ``y`` u16, ``on`` bool,
13 bytes packed), so :func:`biograd.core.events.from_faery` is a view, not a copy.

Damage: events outside the sensor or going back in time are dropped and counted
(``stats.bad_events``); a decoder that stops on damage ends the stream with the
rest of the file counted in ``stats.skipped_bytes``; both are logged as warnings.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from biograd.core.errors import DataFormatError
from biograd.core.events import Geometry, empty_events, from_faery
from biograd.sources.base import StreamStats, sanitize_packet

log = logging.getLogger(__name__)

AEDAT4_MAGIC = b"#!AER-DAT4.0\r\n"
ES_MAGIC = b"Event Stream"
#: Formats this module reads (``nmnist`` .bin files have no magic: by extension, see sources.nmnist).
EVENT_FORMATS = ("aedat4", "es", "evt2", "evt2.1", "evt3", "dat", "csv")
#: Sensor geometries named by Prophesee plugin / sensor names (checked in order, first match wins).
SENSOR_NAMES = (
    ("imx636", Geometry(1280, 720)),
    ("gen41", Geometry(1280, 720)),
    ("gen4", Geometry(1280, 720)),
    ("genx320", Geometry(320, 320)),
    ("imx646", Geometry(320, 320)),
    ("gen31", Geometry(640, 480)),
    ("gen3", Geometry(480, 360)),  # Gen3 ATIS
)
#: Bytes per word after the header; a tail shorter than one word cannot be an event.
WORD_BYTES = {"evt2": 4, "evt2.1": 8, "evt3": 2, "dat": 8}
_FALLBACK = (65535, 65535)  # decoding size when the header names none (then: largest coordinate)


@dataclass(frozen=True)
class FileInfo:
    """What the header says."""

    path: Path
    format: str
    geometry: Geometry | None
    geometry_source: str  # "header", "sensor name …", "largest coordinate" (set by EventFile)
    header_bytes: int
    fields: dict = field(default_factory=dict)
    csv_columns: tuple = ()  # (t, x, y, on) column indices for csv


def _percent_header(head: bytes) -> tuple[dict, int]:
    """``% key value`` lines at the start of EVT / DAT files -> ({key: value}, header length)."""
    fields, off = {}, 0
    while off < len(head) and head[off : off + 1] == b"%":
        end = head.find(b"\n", off)
        if end < 0:
            break
        line = head[off + 1 : end].decode("latin-1").strip()
        key, _, value = line.partition(" ")
        if key and key.lower() != "end":
            fields.setdefault(key, value.strip())
        off = end + 1
    return fields, off


def _geometry_from_fields(fields: dict) -> tuple[Geometry | None, str]:
    lower = {k.lower(): v for k, v in fields.items()}
    if "geometry" in lower:
        m = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", lower["geometry"])
        if m:
            return Geometry(int(m[1]), int(m[2])), "header (geometry)"
    fmt = lower.get("format", "")
    w, h = re.search(r"width=(\d+)", fmt), re.search(r"height=(\d+)", fmt)
    if w and h:
        return Geometry(int(w[1]), int(h[1])), "header (format)"
    if "width" in lower and "height" in lower and lower["width"].isdigit() and lower["height"].isdigit():
        return Geometry(int(lower["width"]), int(lower["height"])), "header (Width/Height)"
    names = " ".join(lower.get(k, "") for k in ("plugin_name", "sensor_name", "system_name", "camera_integrator_name"))
    names = names.lower()
    generation = lower.get("sensor_generation", "").replace(".", "")
    if generation:
        names += f" gen{generation}"
    for key, geometry in SENSOR_NAMES:
        if key in names:
            return geometry, f"sensor name ({key})"
    return None, ""


def _evt_version(fields: dict) -> str:
    lower = {k.lower(): v for k, v in fields.items()}
    text = (lower.get("evt", "") + " " + lower.get("format", "")).lower()
    if "2.1" in text or "evt21" in text:
        return "evt2.1"
    if "evt2" in text or re.search(r"(^|\s)2(\.0)?(\s|$)", text):
        return "evt2"
    if "3" in text:
        return "evt3"
    return ""


def _csv_columns(line: str) -> tuple[tuple, Geometry | None, int]:
    """Column indices (t, x, y, on), geometry from ``x@W``/``y@H`` names, and 1 if it is a header line."""
    cells = [c.strip().lower() for c in line.strip().split(",")]
    if len(cells) < 4:
        return (), None, 0
    if all(re.fullmatch(r"-?\d+(\.\d+)?", c) for c in cells):
        return (0, 1, 2, 3), None, 0
    names = [c.split("@")[0] for c in cells]
    aliases = {"t": ("t", "ts", "timestamp"), "x": ("x",), "y": ("y",), "on": ("on", "p", "pol", "polarity")}
    idx = []
    for key in ("t", "x", "y", "on"):
        found = [i for i, n in enumerate(names) if n in aliases[key]]
        if not found:
            return (), None, 0
        idx.append(found[0])
    size = [re.fullmatch(r"\d+", cells[i].partition("@")[2] or "") for i in (idx[1], idx[2])]
    geometry = Geometry(int(size[0][0]), int(size[1][0])) if all(size) else None
    return tuple(idx), geometry, 1


def detect(path: str | os.PathLike) -> FileInfo:
    """Format and header of an event file, from its first bytes. DataFormatError if unknown."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(1 << 12)
        if head.startswith(b"%") and b"\n%" in head[-256:]:  # a long Prophesee header: read on
            head += f.read(1 << 16)
    if head.startswith(AEDAT4_MAGIC):  # geometry: AedatRecording's container scan reads it
        return FileInfo(path, "aedat4", None, "header", len(AEDAT4_MAGIC))
    if head.startswith(ES_MAGIC):
        return FileInfo(path, "es", None, "header", len(ES_MAGIC))
    if head.startswith(b"%"):
        fields, length = _percent_header(head)
        keys = {k.lower() for k in fields}
        geometry, where = _geometry_from_fields(fields)
        version = _evt_version(fields)
        is_dat = bool(keys & {"version", "data"}) and "evt" not in keys and not version
        if is_dat or (not version and path.suffix.lower() == ".dat"):
            return FileInfo(path, "dat", geometry, where, length + 2, fields)  # + event type and size bytes
        return FileInfo(path, version or "evt3", geometry, where, length, fields)
    first = head.split(b"\n", 1)[0]
    try:
        columns, geometry, header = _csv_columns(first.decode("ascii"))
    except UnicodeDecodeError:
        columns = ()
    if columns:
        return FileInfo(path, "csv", geometry, "header (x@W,y@H)" if geometry else "", 0, {"header": header}, columns)
    raise DataFormatError(
        path,
        f"unrecognised event file (first bytes {head[:16]!r}); supported: AEDAT4, ES, EVT2/EVT2.1/EVT3 .raw, "
        "DAT, CSV (t,x,y,on), N-MNIST .bin",
        0,
    )


class EventFile:
    """Replay any event file as EVENT_DTYPE packets (same API as :class:`AedatRecording`).

    ``stats``: ``packets``/``events`` handed on, ``bad_events`` dropped inside
    packets, ``skipped_bytes`` of the file not decoded (damage, truncation),
    ``invalid`` problems seen. With ``strict`` the first problem raises
    DataFormatError naming the file.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        speed: float = 0.0,
        strict: bool = False,
        backend: str = "aedat",
        geometry: Geometry | None = None,
    ):
        self.path = Path(path)
        self.info = detect(self.path)
        self.format = self.info.format
        self.speed, self.strict, self.backend = speed, strict, backend
        self.stats = StreamStats()
        self.problems: list[tuple[int | None, str]] = []
        self._sleep, self._clock = time.sleep, time.monotonic
        self._aedat = None
        if self.format == "aedat4":
            from biograd.sources.aedat4 import AedatRecording

            self._aedat = AedatRecording(self.path, backend=backend, speed=speed, strict=strict)
            self.geometry, self.geometry_source = self._aedat.geometry, "header"
            self.stats = self._aedat.stats
            self.problems = self._aedat.problems
            return
        self.geometry_source = self.info.geometry_source
        self.geometry = geometry or self.info.geometry
        if self.format == "es":
            self.geometry = self.geometry or Geometry(*self._decoder().dimensions())
            self.geometry_source = "header"
        if self.geometry is None:
            self.geometry = self._largest_coordinate()

    def _decoder(self, dimensions=None):
        import faery

        kwargs = {"file_type": "evt" if self.format.startswith("evt") else self.format}
        g = dimensions or (self.info.geometry and (self.info.geometry.width, self.info.geometry.height))
        if self.format in ("evt2", "evt2.1", "evt3", "dat", "csv"):
            kwargs["dimensions_fallback"] = g or _FALLBACK
        if self.format.startswith("evt"):
            kwargs["version_fallback"] = self.format
        if self.format == "csv":
            t, x, y, on = self.info.csv_columns
            kwargs["csv_properties"] = faery.CsvProperties(
                has_header=bool(self.info.fields.get("header")),
                separator=b",",
                t_index=t,
                x_index=x,
                y_index=y,
                on_index=on,
                t_scale=0.0,
                on_value=b"1",
                off_value=b"0",
                skip_errors=not self.strict,
            )
        try:
            return faery.events_stream_from_file(self.path, **kwargs)
        except BaseException as exc:  # faery's Rust side raises PanicException (a BaseException)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            raise DataFormatError(self.path, f"{self.format} header could not be read: {exc}", 0) from None

    def _largest_coordinate(self) -> Geometry:
        width = height = 0
        for events in self._faery_packets(validate=False):
            if events.size:
                width = max(width, int(events["x"].max()) + 1)
                height = max(height, int(events["y"].max()) + 1)
        if not width:
            raise DataFormatError(self.path, "no geometry in the header and no events to infer it from")
        log.warning(
            "%s: the %s header names no sensor size; using the largest coordinate: %dx%d "
            "(set source.geometry to override)",
            self.path.name,
            self.format,
            width,
            height,
        )
        self.geometry_source = "largest coordinate"
        return Geometry(width, height)

    def _bad(self, offset: int | None, message: str, nbytes: int = 0) -> None:
        if self.strict:
            raise DataFormatError(self.path, message, offset)
        self.problems.append((offset, message))
        self.stats.invalid += 1
        self.stats.skipped_bytes += nbytes
        self.stats.last_error = message
        if len(self.problems) <= 10:
            log.warning("%s: %s", self.path.name, message)

    def _faery_packets(self, validate: bool = True) -> Iterator[np.ndarray]:
        decoder = self._decoder(None if validate else _FALLBACK)
        self._decoded = 0
        it = iter(decoder)
        while True:
            try:
                packet = next(it)
            except StopIteration:
                break
            except BaseException as exc:
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    raise
                # faery cannot resume after a decoding error, nor say where it stopped: the rest is lost.
                first = str(exc).splitlines()[0] if str(exc) else ""
                self._bad(
                    None,
                    f"decoding stopped after {self._decoded} events ({type(exc).__name__}: {first}); "
                    "the rest of the file is skipped",
                )
                return
            self._decoded += len(packet)
            yield from_faery(packet)
        if validate:
            self._check_tail()

    def _csv_rows(self) -> int:
        """Data rows of a CSV file (lines, a last line without newline included, minus the header)."""
        rows, last = 0, b"\n"
        with open(self.path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                rows += block.count(b"\n")
                last = block[-1:]
        return rows + (last != b"\n") - int(bool(self.info.fields.get("header")))

    def _check_tail(self) -> None:
        if self.format == "csv":
            # faery skips rows it cannot parse without saying how many: count them from the line count
            lost = self._csv_rows() - self._decoded
            if lost > 0:
                self.stats.bad_events += lost
                self._bad(None, f"{lost} CSV rows could not be parsed and were skipped")
            return
        word = WORD_BYTES.get(self.format)
        if not word:
            return
        body = self.path.stat().st_size - self.info.header_bytes
        if body % word:
            self._bad(
                self.path.stat().st_size - body % word,
                f"{body % word} trailing bytes do not make a whole {word}-byte {self.format} word (truncated?)",
                body % word,
            )

    def packets(self) -> Iterator[np.ndarray]:
        """Event packets in file order; paced by timestamps when ``speed > 0``."""
        if self._aedat is not None:
            yield from self._aedat.packets()
            return
        last_t = None
        t0 = wall0 = None
        for events in self._faery_packets():
            if events.size == 0:
                continue
            events, bad, reason = sanitize_packet(events, self.geometry, last_t)
            if bad:
                self.stats.bad_events += bad
                self._bad(None, f"dropped {bad} bad events ({reason})")
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
                "%s: %d problems, %d bad events dropped, %d bytes skipped",
                self.path.name,
                len(self.problems),
                self.stats.bad_events,
                self.stats.skipped_bytes,
            )

    __iter__ = packets

    def read_all(self) -> np.ndarray:
        """Every valid event of the file in one array."""
        chunks = list(self.packets())
        return np.concatenate(chunks) if chunks else empty_events(0)

    def close(self) -> None:
        pass
