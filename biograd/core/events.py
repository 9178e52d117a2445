"""The event record: the one in-memory event format every stage uses.

An event packet is a 1-D NumPy structured array of :data:`EVENT_DTYPE`::

    t  int64   timestamp in microseconds
    x  uint16  column, 0 <= x < width
    y  uint16  row,    0 <= y < height
    p  uint8   polarity, 1 = ON (brightness increase), 0 = OFF

packed (13 bytes per event, no padding) so a packet's buffer is also its wire
format. The sensor geometry travels beside the array as :class:`Geometry`.

Conversions to and from the layouts of ``aedat``, ``faery``, ``dv-processing`` and
Tonic live in this module and nowhere else. How the layouts line up:

===============  =======================================  ==========  =====================
library          fields (bytes)                           item size   conversion
===============  =======================================  ==========  =====================
this project     t i8, x u2, y u2, p u1                   13          -
faery, aedat     t u8, x u2, y u2, on bool                13          view (no copy)
UDP t64_x16_…    the same 13 bytes on the wire            13          view (no copy)
dv-processing    timestamp i8, x i2, y i2, polarity i1    16 (pad)    one copy (padding)
Tonic            x, y, t, p (int64 in most datasets)      32          one copy (order, width)
===============  =======================================  ==========  =====================

faery's and aedat's records differ only in signedness of ``t`` (timestamps are
far below 2**63) and ``bool`` vs ``uint8`` for polarity (both one byte, 0 or 1),
so a packet is reinterpreted in place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from biograd.core.errors import EventFormatError

EVENT_DTYPE = np.dtype([("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")])
assert EVENT_DTYPE.itemsize == 13

#: Layout of ``aedat.Decoder`` event packets (aedat 2.x); faery's ``EVENTS_DTYPE`` is the same.
AEDAT_EVENT_DTYPE = np.dtype([("t", "<u8"), ("x", "<u2"), ("y", "<u2"), (("p", "on"), "?")])
FAERY_EVENT_DTYPE = AEDAT_EVENT_DTYPE
#: Layout Tonic uses for 2-D polarity events.
TONIC_EVENT_DTYPE = np.dtype([("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])


@dataclass(frozen=True)
class Geometry:
    """Sensor size in pixels."""

    width: int
    height: int

    def __post_init__(self):
        for name in ("width", "height"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or not 0 < int(value) <= 65535:
                raise EventFormatError(f"sensor {name} must be an integer in 1..65535, got {value!r}")

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width), NumPy image order."""
        return (self.height, self.width)


NMNIST_GEOMETRY = Geometry(34, 34)
DAVIS346_GEOMETRY = Geometry(346, 260)


def empty_events(n: int = 0) -> np.ndarray:
    """A zeroed event packet of ``n`` events."""
    return np.zeros(n, dtype=EVENT_DTYPE)


def make_events(t, x, y, p) -> np.ndarray:
    """Build an event packet from four equal-length columns."""
    t = np.asarray(t)
    out = empty_events(t.shape[0])
    out["t"], out["x"], out["y"], out["p"] = t, x, y, p
    return out


def validate_events(events: np.ndarray, geometry: Geometry, source: str = "event packet") -> None:
    """Check dtype, coordinates inside the sensor, polarity and non-decreasing time.

    Raises :class:`EventFormatError` naming ``source``, the first bad index and value.
    """
    if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE or events.ndim != 1:
        got = getattr(events, "dtype", type(events).__name__)
        raise EventFormatError(f"{source}: expected a 1-D array of {EVENT_DTYPE}, got {got}")
    if events.size == 0:
        return
    for field, limit in (("x", geometry.width), ("y", geometry.height)):
        bad = np.flatnonzero(events[field] >= limit)
        if bad.size:
            i = int(bad[0])
            raise EventFormatError(
                f"{source}: event {i} has {field}={int(events[field][i])} outside the "
                f"{geometry.width}x{geometry.height} sensor ({bad.size} such events)"
            )
    bad = np.flatnonzero(events["p"] > 1)
    if bad.size:
        i = int(bad[0])
        raise EventFormatError(f"{source}: event {i} has polarity {int(events['p'][i])}, expected 0 or 1")
    backwards = np.flatnonzero(np.diff(events["t"]) < 0)
    if backwards.size:
        i = int(backwards[0]) + 1
        raise EventFormatError(
            f"{source}: timestamps go backwards at event {i} ({int(events['t'][i - 1])} us -> {int(events['t'][i])} us)"
        )
    if events["t"][0] < 0:
        raise EventFormatError(f"{source}: negative timestamp {int(events['t'][0])} us at event 0")


# --- aedat ---------------------------------------------------------------


def _view_or_copy(packet: np.ndarray, source_dtype: np.dtype) -> np.ndarray | None:
    """``packet`` reinterpreted as EVENT_DTYPE without a copy, when its memory allows it."""
    if packet.dtype == source_dtype and packet.ndim == 1 and packet.flags["C_CONTIGUOUS"]:
        if packet.size == 0:
            return empty_events(0)
        # frombuffer shares the memory like .view() but skips numpy's structured-view safety check
        return np.frombuffer(packet, dtype=EVENT_DTYPE)
    return None


def from_aedat(packet_events: np.ndarray) -> np.ndarray:
    """Convert the ``events`` array of an ``aedat.Decoder`` packet (a view when contiguous)."""
    view = _view_or_copy(packet_events, AEDAT_EVENT_DTYPE)
    if view is not None:
        return view
    out = empty_events(packet_events.shape[0])
    out["t"] = packet_events["t"]
    out["x"] = packet_events["x"]
    out["y"] = packet_events["y"]
    out["p"] = packet_events["on"]
    return out


def to_aedat(events: np.ndarray) -> np.ndarray:
    """The same events in ``aedat``'s layout."""
    out = np.zeros(events.shape[0], dtype=AEDAT_EVENT_DTYPE)
    out["t"], out["x"], out["y"], out["on"] = events["t"], events["x"], events["y"], events["p"]
    return out


# --- faery ---------------------------------------------------------------


def from_faery(packet: np.ndarray) -> np.ndarray:
    """A faery ``EVENTS_DTYPE`` packet as EVENT_DTYPE: a view of the same memory when contiguous."""
    view = _view_or_copy(packet, FAERY_EVENT_DTYPE)
    if view is not None:
        return view
    return from_aedat(np.ascontiguousarray(packet).astype(FAERY_EVENT_DTYPE))


def to_faery(events: np.ndarray) -> np.ndarray:
    """The same events in faery's layout (a view of ``events`` when contiguous)."""
    events = np.ascontiguousarray(events)  # a no-op (no copy) when already contiguous
    return np.frombuffer(events, dtype=FAERY_EVENT_DTYPE) if events.size else np.zeros(0, FAERY_EVENT_DTYPE)


# --- dv-processing -------------------------------------------------------


def from_dv(store) -> np.ndarray:
    """Convert a ``dv_processing.EventStore`` (or anything with ``.numpy()`` in its layout)."""
    raw = store.numpy()
    out = empty_events(raw.shape[0])
    out["t"] = raw["timestamp"]
    out["x"] = raw["x"]
    out["y"] = raw["y"]
    out["p"] = raw["polarity"]
    return out


def to_dv(events: np.ndarray):
    """A ``dv_processing.EventStore`` holding ``events``.

    dv-processing 2.0.4 has no bulk constructor from NumPy, so this pushes event
    by event (about 1 M events/s); use it at the dv boundary only.
    """
    import dv_processing as dv

    store = dv.EventStore()
    push = store.push_back
    for t, x, y, p in zip(events["t"].tolist(), events["x"].tolist(), events["y"].tolist(), events["p"].tolist()):
        push(t, x, y, bool(p))
    return store


# --- Tonic ---------------------------------------------------------------


def from_tonic(array: np.ndarray) -> np.ndarray:
    """Convert a Tonic-style structured array with fields x, y, t, p (any integer/bool types)."""
    missing = {"x", "y", "t", "p"} - set(array.dtype.names or ())
    if missing:
        raise EventFormatError(f"Tonic event array lacks fields {sorted(missing)}")
    return make_events(array["t"], array["x"], array["y"], array["p"])


def to_tonic(events: np.ndarray) -> np.ndarray:
    """The same events in Tonic's (x, y, t, p) int64 layout."""
    out = np.zeros(events.shape[0], dtype=TONIC_EVENT_DTYPE)
    out["x"], out["y"], out["t"], out["p"] = events["x"], events["y"], events["t"], events["p"]
    return out
