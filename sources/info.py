"""`biograd data info PATH`: what a supported file or dataset folder holds."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from biograd.core.errors import DataFormatError, DataNotFoundError

#: Files read to estimate duration and polarity balance of an N-MNIST split.
NMNIST_INFO_FILES = 200


def _event_summary(events: np.ndarray) -> dict:
    if events.size == 0:
        return {"events": 0}
    return {
        "events": int(events.size),
        "duration_us": int(events["t"][-1] - events["t"][0]),
        "on_fraction": float(events["p"].mean()),
    }


def describe(path: str | os.PathLike) -> dict:
    """A flat-ish dict describing ``path`` (N-MNIST .bin / folder, MNIST IDX / folder, AEDAT4)."""
    path = Path(path)
    if not path.exists():
        raise DataNotFoundError(f"{path}: no such file or folder")
    if path.is_dir():
        if (path / "Train").is_dir() or (path / "Test").is_dir():
            return _describe_nmnist_folder(path)
        if any(path.glob("*-idx[13]-ubyte*")):
            return _describe_mnist_folder(path)
        raise DataFormatError(path, "not a dataset folder: expected N-MNIST (Train/ Test/) or MNIST IDX files")
    name = path.name
    if name.endswith(".bin"):
        from biograd.core.events import NMNIST_GEOMETRY
        from biograd.sources.nmnist import read_nmnist

        return {
            "path": str(path),
            "format": "N-MNIST sample (.bin, 5-byte events)",
            "geometry": f"{NMNIST_GEOMETRY.width}x{NMNIST_GEOMETRY.height}",
            **_event_summary(read_nmnist(path)),
        }
    if "idx" in name and "ubyte" in name:
        from biograd.sources.mnist import read_idx

        arr = read_idx(path)
        out = {
            "path": str(path),
            "format": "IDX" + (" (gzip)" if name.endswith(".gz") else ""),
            "shape": "x".join(map(str, arr.shape)),
            "dtype": str(arr.dtype),
        }
        if arr.ndim == 1:
            counts = np.bincount(np.asarray(arr), minlength=10)
            out.update(
                samples=int(arr.shape[0]),
                classes=int(np.count_nonzero(counts)),
                class_counts="/".join(map(str, counts)),
            )
        else:
            out.update(samples=int(arr.shape[0]), geometry=f"{arr.shape[2]}x{arr.shape[1]}" if arr.ndim == 3 else "")
        return out
    return _describe_event_file(path)  # any format faery reads, recognised from its content


FORMAT_NAMES = {
    "aedat4": "AEDAT 4.0",
    "evt2": "Prophesee EVT 2.0 (.raw)",
    "evt2.1": "Prophesee EVT 2.1 (.raw)",
    "evt3": "Prophesee EVT 3.0 (.raw)",
    "dat": "Prophesee DAT",
    "es": "Event Stream (.es)",
    "csv": "CSV (t, x, y, on)",
}


def _describe_event_file(path: Path) -> dict:
    from biograd.sources.formats import EventFile

    rec = EventFile(path)
    n = on = 0
    first = last = None
    for packet in rec.packets():  # streamed: a long recording is never held whole
        n += packet.size
        on += int(packet["p"].sum())
        first = int(packet["t"][0]) if first is None else first
        last = int(packet["t"][-1])
    out = {
        "path": str(path),
        "format": FORMAT_NAMES[rec.format],
        "geometry": f"{rec.geometry.width}x{rec.geometry.height}",
        "geometry_from": rec.geometry_source,
        "events": n,
    }
    if n:
        duration = last - first
        out.update(
            duration_us=duration,
            on_fraction=on / n,
            mean_rate_ev_per_s=n / (duration / 1e6) if duration > 0 else 0.0,
        )
    layout = getattr(rec._aedat, "layout", None)
    if layout is not None:
        kinds: dict = {}
        for _, sid, _ in layout.packets:
            kind = layout.streams[sid]["kind"]
            kinds[kind] = kinds.get(kind, 0) + 1
        out["packets"] = ", ".join(f"{k} {c}" for k, c in sorted(kinds.items()))
        out["skipped_non_event_packets"] = sum(rec.stats.skipped.values())
    if rec.problems:
        out["damage"] = (
            f"{len(rec.problems)} problems, {rec.stats.skipped_bytes} bytes and "
            f"{rec.stats.bad_events} events skipped (first: {rec.problems[0][1]})"
        )
    return out


def _describe_nmnist_folder(path: Path) -> dict:
    from biograd.sources.nmnist import list_split, read_nmnist

    out = {"path": str(path), "format": "N-MNIST folder (Train/<digit>/*.bin, Test/<digit>/*.bin)", "geometry": "34x34"}
    for split, folder in (("train", "Train"), ("test", "Test")):
        if not (path / folder).is_dir():
            continue
        items = list_split(path, split)
        counts = np.bincount([label for _, label in items], minlength=10)
        sizes = np.array([f.stat().st_size for f, _ in items])
        out[f"{split}_samples"] = len(items)
        out[f"{split}_classes"] = int(np.count_nonzero(counts))
        out[f"{split}_class_counts"] = "/".join(map(str, counts))
        out[f"{split}_events"] = int(sizes.sum() // 5)
        pick = np.linspace(0, len(items) - 1, min(NMNIST_INFO_FILES, len(items))).astype(int)
        durations, on, total = [], 0, 0
        for i in pick:
            ev = read_nmnist(items[i][0])
            if ev.size:
                durations.append(int(ev["t"][-1] - ev["t"][0]))
                on += int(ev["p"].sum())
                total += ev.size
        note = "" if pick.size == len(items) else f" (from {pick.size} of {len(items)} files)"
        out[f"{split}_mean_duration_us{note}"] = int(np.mean(durations)) if durations else 0
        out[f"{split}_on_fraction{note}"] = on / total if total else 0.0
    return out


def _describe_mnist_folder(path: Path) -> dict:
    from biograd.sources.config import SourceConfig
    from biograd.sources.mnist import FILES, VAL_SIZE, find_idx, read_idx

    out = {
        "path": str(path),
        "format": "MNIST IDX folder (rate-coded to ON events, 1 ms per step)",
        "geometry": "28x28",
    }
    for name, (_, label_stem) in FILES.items():
        try:
            labels = np.asarray(read_idx(find_idx(path, label_stem)))  # labels only: images are not needed
        except DataNotFoundError:
            continue
        parts = {"test": labels} if name == "test" else {"train": labels[:-VAL_SIZE], "val": labels[-VAL_SIZE:]}
        for split, part in parts.items():
            counts = np.bincount(part, minlength=10)
            out[f"{split}_samples"] = int(part.size)
            out[f"{split}_classes"] = int(np.count_nonzero(counts))
            out[f"{split}_class_counts"] = "/".join(map(str, counts))
    try:
        images = read_idx(find_idx(path, FILES["test"][0]))
    except DataNotFoundError:
        return out
    # Rate code: pixel v spikes with probability v/255 per 1 ms step, ON events only.
    steps = SourceConfig().mnist_timesteps
    out[f"duration_us (T={steps})"] = steps * 1000
    out[f"test_mean_events_per_sample (T={steps})"] = float(np.asarray(images, np.float64).mean() / 255 * 784 * steps)
    out["on_fraction"] = 1.0
    return out


def format_info(info: dict) -> str:
    width = max(len(k) for k in info)
    lines = []
    for key, value in info.items():
        if isinstance(value, float):
            value = f"{value:.4f}"
        elif isinstance(value, int):
            value = f"{value:,}"
        lines.append(f"{key:<{width}}  {value}")
    return "\n".join(lines)
