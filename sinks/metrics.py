"""The metrics log: one line per metrics/sleep/eval/checkpoint record, flushed per line.

JSON lines (``metrics.jsonl``) keep each record as it came, with the latest
feedback angle and norm ratio per hidden layer added to ``metrics`` rows. CSV
(``metrics.csv``) has fixed columns, so the number of hidden layers is given up
front; lists become numbered columns (``angle_deg_1`` …) and a confusion matrix
one space-separated column (row-major). ``tail -f`` either file to watch a run.

Prediction records are not logged one by one (the predictions sink does that);
they are tallied into a confusion matrix per phase, written as ``confusion``
rows when the run ends, so a run without evaluation still has one.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np

from biograd.core.errors import DataFormatError
from biograd.core.records import RecordError, check_record, to_json

N_CLASSES = 10

BASE_COLUMNS = (
    "type",
    "time",
    "phase",
    "split",
    "epoch",
    "samples",
    "processed",
    "accuracy_running",
    "accuracy",
    "loss",
    "events_per_s",
    "samples_per_s",
    "dropped",
    "invalid",
    "gaps",
    "sleeps",
    "path",
)
LOGGED_TYPES = ("metrics", "sleep", "eval", "checkpoint", "end")


def metrics_path(run_dir, fmt: str = "jsonl") -> Path:
    """Where a run keeps its metrics log."""
    return Path(run_dir) / f"metrics.{fmt}"


def csv_columns(n_hidden: int) -> list[str]:
    layers = range(1, n_hidden + 1)
    return [*BASE_COLUMNS, *(f"angle_deg_{i}" for i in layers), *(f"norm_ratio_{i}" for i in layers), "confusion"]


class MetricsLog:
    """Sink writing the metrics log of a run.

    ``n_hidden`` (hidden layers of the learner) fixes the CSV columns; JSON lines
    do not need it. ``append=True`` continues an existing log (a resumed run).
    """

    def __init__(self, path, fmt: str = "jsonl", n_hidden: int | None = None, append: bool = False):
        if fmt not in ("jsonl", "csv"):
            raise RecordError(f"metrics log {path}: format must be 'jsonl' or 'csv', got {fmt!r}")
        if fmt == "csv" and (n_hidden is None or n_hidden < 1):
            raise RecordError(f"metrics log {path}: CSV needs the number of hidden layers (n_hidden), got {n_hidden!r}")
        self.path = Path(path)
        self.fmt = fmt
        self.n_hidden = n_hidden
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existing = append and self.path.exists() and self.path.stat().st_size > 0
        # Line buffering plus an explicit flush: every row is on disk when handle() returns.
        self._file = open(self.path, "a" if append else "w", buffering=1, encoding="utf-8", newline="")
        self._angles: list | None = None
        self._ratios: list | None = None
        self._confusion: dict[str, np.ndarray] = {}
        self.rows = 0
        if fmt == "csv":
            self._columns = csv_columns(n_hidden)
            self._writer = csv.DictWriter(self._file, fieldnames=self._columns, extrasaction="ignore")
            if existing:
                with open(self.path, encoding="utf-8", newline="") as f:
                    header = next(csv.reader(f), [])
                if header != self._columns:
                    raise DataFormatError(
                        self.path, f"cannot append: its CSV header {header} differs from {self._columns}"
                    )
            else:
                self._writer.writeheader()
                self._file.flush()

    def handle(self, record: dict) -> None:
        kind = check_record(record)["type"]
        if kind == "prediction":
            self._tally(record)
            return
        if kind == "sleep":
            self._angles, self._ratios = list(record["angle_deg"]), list(record["norm_ratio"])
            if self.n_hidden is not None and len(self._angles) != self.n_hidden:
                raise RecordError(
                    f"metrics log {self.path}: sleep record has {len(self._angles)} "
                    f"hidden-layer angles, the log was opened for {self.n_hidden}"
                )
        row = dict(record)
        if kind == "metrics" and self._angles is not None:
            row.setdefault("angle_deg", self._angles)
            row.setdefault("norm_ratio", self._ratios)
        if kind == "end":
            for phase, matrix in self._confusion.items():
                self._write(
                    {
                        "type": "confusion",
                        "phase": phase,
                        "samples": int(matrix.sum()),
                        "confusion": matrix.tolist(),
                        "time": record.get("time"),
                    }
                )
        self._write(row)

    def _tally(self, record: dict) -> None:
        label, predicted = record["label"], record["predicted"]
        if label is None or predicted is None:
            return
        matrix = self._confusion.setdefault(record["phase"], np.zeros((N_CLASSES, N_CLASSES), dtype=np.int64))
        if not (0 <= label < N_CLASSES and 0 <= predicted < N_CLASSES):
            raise RecordError(
                f"prediction record {record.get('sample_id')!r}: label {label} / "
                f"predicted {predicted} outside 0..{N_CLASSES - 1}"
            )
        matrix[label, predicted] += 1

    def _write(self, row: dict) -> None:
        if self.fmt == "jsonl":
            self._file.write(to_json(row) + "\n")
        else:
            self._writer.writerow(_csv_row(row, self.n_hidden))
        self._file.flush()
        self.rows += 1

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


def _csv_row(row: dict, n_hidden: int) -> dict:
    out = {k: _cell(row.get(k)) for k in BASE_COLUMNS}
    for name in ("angle_deg", "norm_ratio"):
        values = row.get(name) or []
        for i in range(n_hidden):
            out[f"{name}_{i + 1}"] = _cell(values[i]) if i < len(values) else ""
    confusion = row.get("confusion")
    out["confusion"] = " ".join(str(int(v)) for v in np.asarray(confusion).ravel()) if confusion is not None else ""
    return out


def _cell(value):
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, np.generic):
        return value.item()
    return value


def find_metrics_log(run_dir) -> Path:
    """The run's metrics log (JSON lines preferred); a clear error when there is none."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        from biograd.core.errors import DataNotFoundError

        raise DataNotFoundError(f"run directory {run_dir} does not exist")
    for fmt in ("jsonl", "csv"):
        path = metrics_path(run_dir, fmt)
        if path.exists():
            return path
    from biograd.core.errors import DataNotFoundError

    raise DataNotFoundError(f"run directory {run_dir} has no metrics.jsonl or metrics.csv")


def read_metrics(path) -> list[dict]:
    """Rows of a metrics log, JSON lines or CSV, as dicts shaped like the records.

    CSV rows get numbers back, ``angle_deg``/``norm_ratio`` as lists and
    ``confusion`` as a 10×10 list. A line that does not parse raises
    :class:`DataFormatError` naming the file and line; a torn last line (the run
    is still writing) is skipped.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".csv":
        return _read_csv(path, text)
    rows = []
    lines = text.split("\n")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if number == len(lines) and not text.endswith("\n"):
                break  # still being written
            raise DataFormatError(path, f"line {number} is not valid JSON ({exc.msg})") from None
    return rows


def _read_csv(path: Path, text: str) -> list[dict]:
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or "type" not in reader.fieldnames:
        raise DataFormatError(path, "not a metrics CSV (no 'type' column in the header)")
    complete = text.endswith("\n")
    rows = []
    raw_rows = list(reader)
    for number, raw in enumerate(raw_rows, 2):
        if number == len(raw_rows) + 1 and not complete:
            break
        row: dict = {}
        lists: dict[str, dict[int, float]] = {"angle_deg": {}, "norm_ratio": {}}
        for key, cell in raw.items():
            if key is None:
                raise DataFormatError(path, f"line {number} has more cells than the header")
            if cell in ("", None):
                continue
            if key == "confusion":
                try:
                    values = [int(v) for v in cell.split()]
                except ValueError:
                    raise DataFormatError(path, f"line {number}: confusion is not integers") from None
                if len(values) != N_CLASSES * N_CLASSES:
                    raise DataFormatError(path, f"line {number}: confusion has {len(values)} cells, expected 100")
                row[key] = np.asarray(values).reshape(N_CLASSES, N_CLASSES).tolist()
                continue
            prefix, _, index = key.rpartition("_")
            if prefix in lists and index.isdigit():
                lists[prefix][int(index)] = float(cell)
                continue
            row[key] = _number(cell)
        for name, values in lists.items():
            if values:
                row[name] = [values[i] for i in sorted(values)]
        rows.append(row)
    return rows


def _number(cell: str):
    for kind in (int, float):
        try:
            return kind(cell)
        except ValueError:
            pass
    if cell in ("True", "False"):
        return cell == "True"
    return cell
