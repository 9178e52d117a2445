"""Sink records: the JSON-able dicts the learner stage hands to sinks (docs/architecture.md).

The one place that knows the record types: :data:`RECORD_TYPES` lists them (the wire
protocol maps each to a message type), and each type is built by exactly one function
(:func:`prediction_record`, :func:`metrics_record`, :func:`sleep_record`,
:func:`eval_record`, :func:`checkpoint_record`, :func:`end_record`). Records arriving
from another process are checked here (a malformed one is a clear :class:`RecordError`,
never a crash deep in a sink). Fanning records out to sinks is ``biograd.sinks.fanout``.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np

from biograd.core.errors import BioGradError

#: Every sink record type, in the order the protocol numbers them (the one list).
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


# --- the one builder of each record type --------------------------------------------


def prediction_record(
    sample_id: str,
    index: int,
    phase: str,
    epoch: int,
    predicted: int,
    label: int | None,
    counts,
    events: int,
    frame: dict | None = None,
) -> dict:
    """One processed sample: what the learner predicted, and whether it was right."""
    record = {
        "type": "prediction",
        "sample_id": sample_id,
        "index": int(index),
        "phase": phase,
        "epoch": int(epoch),
        "predicted": int(predicted),
        "label": label,
        "correct": None if label is None else int(predicted) == label,
        "counts": [int(c) for c in counts],
        "events": int(events),
        "time": time.time(),
    }
    if frame is not None:
        record["frame"] = frame
    return record


def metrics_record(
    samples: int,
    processed: int,
    phase: str,
    epoch: int,
    accuracy_running: float | None,
    loss: float | None,
    events_per_s: float,
    samples_per_s: float,
    counters: dict,
    sleeps: int,
) -> dict:
    """Running figures of one phase since its start; ``counters`` = dropped, invalid, gaps."""
    return {
        "type": "metrics",
        "samples": int(samples),
        "processed": int(processed),
        "phase": phase,
        "epoch": int(epoch),
        "accuracy_running": accuracy_running,
        "loss": loss,
        "events_per_s": events_per_s,
        "samples_per_s": samples_per_s,
        **counters,
        "sleeps": int(sleeps),
        "time": time.time(),
    }


def sleep_record(samples: int, alignment) -> dict:
    """A sleep phase ran; ``alignment`` is (angle_deg, norm_ratio) per hidden layer."""
    return {
        "type": "sleep",
        "samples": int(samples),
        "angle_deg": [float(a) for a, _ in alignment],
        "norm_ratio": [float(r) for _, r in alignment],
        "time": time.time(),
    }


def eval_record(confusion: np.ndarray, epoch: int | None, checkpoint: str | None = None) -> dict:
    """Test-split accuracy from a confusion matrix (rows: label, columns: prediction)."""
    total = int(confusion.sum())
    record = {
        "type": "eval",
        "split": "test",
        "epoch": epoch,
        "samples": total,
        "accuracy": float(np.trace(confusion) / total) if total else None,
        "confusion": confusion.tolist(),
    }
    if checkpoint is not None:
        record["checkpoint"] = checkpoint
    record["time"] = time.time()
    return record


def checkpoint_record(path, samples: int) -> dict:
    return {"type": "checkpoint", "path": str(path), "samples": int(samples), "time": time.time()}


def end_record(reason: str, samples: int, processed: int, events: int, counters: dict, checkpoint) -> dict:
    """The last record of a run: why it stopped and its totals."""
    return {
        "type": "end",
        "reason": reason,
        "samples": int(samples),
        "processed": int(processed),
        "events": int(events),
        **counters,
        "checkpoint": str(checkpoint) if checkpoint else None,
        "time": time.time(),
    }
