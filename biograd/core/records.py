"""Sink records: the JSON-able dicts the learner stage hands to sinks (docs/architecture.md).

This module checks records arriving from another process (a malformed one is a
clear :class:`RecordError`, never a crash deep in a sink), builds the optional
input frame of a prediction record, and fans one record out to many sinks.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable

import numpy as np

from biograd.core.errors import BioGradError

log = logging.getLogger(__name__)

RECORD_TYPES = ("prediction", "metrics", "sleep", "eval", "checkpoint", "end")

#: Keys each record type must carry (others may be present and are kept).
REQUIRED_KEYS = {
    "prediction": ("sample_id", "index", "phase", "predicted", "label", "counts", "time"),
    "metrics": ("samples", "phase", "accuracy_running", "time"),
    "sleep": ("samples", "angle_deg", "norm_ratio", "time"),
    "eval": ("split", "samples", "accuracy", "time"),
    "checkpoint": ("path", "samples", "time"),
    "end": (),
}


class RecordError(BioGradError, ValueError):
    """A sink record is not one of the documented shapes; the message says where and why."""


def check_record(record, where: str = "sink record") -> dict:
    """Return ``record`` if it is a dict of a known type with its required keys, else raise."""
    if not isinstance(record, dict):
        raise RecordError(f"{where}: expected a JSON object, got {type(record).__name__}")
    kind = record.get("type")
    if kind not in REQUIRED_KEYS:
        raise RecordError(f"{where}: unknown record type {kind!r}; expected one of {', '.join(RECORD_TYPES)}")
    missing = [k for k in REQUIRED_KEYS[kind] if k not in record]
    if missing:
        raise RecordError(f"{where}: {kind} record lacks {', '.join(missing)}")
    return record


def decode_record(data: bytes, where: str = "sink record") -> dict:
    """Parse one JSON-encoded record (UTF-8 bytes) and check it."""
    try:
        record = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordError(f"{where}: not valid JSON ({exc})") from None
    return check_record(record, where)


def to_json(record: dict) -> str:
    """One record as a single JSON line (no NaN: JSON has none, readers choke on it)."""
    return json.dumps(_plain(record), separators=(",", ":"), allow_nan=False)


def _plain(value):
    """NumPy scalars/arrays to Python; non-finite floats to None so the line stays valid JSON."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def event_frame(events: np.ndarray, width: int, height: int, max_side: int = 128) -> dict:
    """The ``frame`` of a prediction record: per-pixel ON and OFF event counts.

    Sensors larger than ``max_side`` are binned down by an integer factor
    ``f = ceil(max(width, height) / max_side)`` (counts are summed over f×f
    blocks) so a DAVIS346 frame stays a few kB of JSON.
    """
    factor = max(1, math.ceil(max(width, height) / max_side))
    w, h = math.ceil(width / factor), math.ceil(height / factor)
    x = events["x"].astype(np.int64) // factor
    y = events["y"].astype(np.int64) // factor
    on = events["p"] == 1
    frame = {"width": w, "height": h}
    for name, mask in (("on", on), ("off", ~on)):
        counts = np.zeros(h * w, dtype=np.int64)
        np.add.at(counts, y[mask] * w + x[mask], 1)
        frame[name] = counts.reshape(h, w).tolist()
    if factor > 1:
        frame["scale"] = factor
    return frame


class SinkSet:
    """Several sinks behind one ``handle``/``close``; a failing sink is logged, the others go on.

    A sink that raises is not dropped silently: the error is logged with the
    sink's name once, counted in ``errors``, and re-raised from :meth:`close`
    so the run ends with a non-zero status.
    """

    def __init__(self, sinks: Iterable = ()):
        self.sinks = list(sinks)
        self.errors: dict[str, str] = {}

    def add(self, sink) -> None:
        self.sinks.append(sink)

    def handle(self, record: dict) -> None:
        for sink in self.sinks:
            name = type(sink).__name__
            if name in self.errors:
                continue
            try:
                sink.handle(record)
            except Exception as exc:  # one broken sink must not stop learning or the others
                log.error("sink %s failed on a %s record: %s", name, record.get("type"), exc)
                self.errors[name] = f"{type(exc).__name__}: {exc}"

    def close(self) -> None:
        first = None
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:
                log.error("closing sink %s failed: %s", type(sink).__name__, exc)
                first = first or exc
        if self.errors:
            detail = "; ".join(f"{k}: {v}" for k, v in self.errors.items())
            raise BioGradError(f"sinks failed during the run: {detail}")
        if first is not None:
            raise first
