"""One terminal line per live window: time, prediction, confidence, and the label if any.

    12:03:04.51  window 17    predicted 3  confidence 0.62
    12:03:04.81  window 18    predicted 5  confidence 0.41  label 3  (trained, wrong)

Confidence is the predicted class's share of the output spikes (0 when the output was
silent): how clearly the network chose, not a probability.
"""

from __future__ import annotations

import sys
import time


def confidence(counts) -> float:
    total = sum(counts)
    return max(counts) / total if total else 0.0


def window_line(record: dict) -> str:
    centis = round(record["time"] * 100)  # rounded once, so 12.999 s reads 13.00, not 12.00
    stamp = time.strftime("%H:%M:%S", time.localtime(centis // 100)) + f".{centis % 100:02d}"
    line = (
        f"{stamp}  window {record['index']:<5d} predicted {record['predicted']}  "
        f"confidence {confidence(record['counts']):.2f}"
    )
    if record.get("label") is not None:
        line += f"  label {record['label']}  (trained, {'right' if record.get('correct') else 'wrong'})"
    return line


class LiveConsole:
    """Prints :func:`window_line` for every live prediction record."""

    def __init__(self, file=None):
        self.file = file or sys.stdout

    def handle(self, record: dict) -> None:
        if record.get("type") == "prediction" and record.get("phase") == "live":
            print(window_line(record), file=self.file, flush=True)

    def close(self) -> None:
        pass
