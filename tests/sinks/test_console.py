"""The live terminal line: one per window, time with rounding carried, prediction, confidence, label."""

from __future__ import annotations

import io
import time

from biograd.core.records import prediction_record
from biograd.sinks.console import LiveConsole, confidence, window_line


def test_one_line_per_live_window_with_prediction_confidence_and_label():
    out = io.StringIO()
    console = LiveConsole(out)
    unlabelled = prediction_record("cam/17", 17, "live", 0, 3, None, [0, 0, 0, 6, 2, 0, 0, 0, 2, 0], 500)
    labelled = prediction_record("cam/18", 18, "live", 0, 5, 3, [0, 0, 0, 1, 0, 4, 0, 0, 0, 0], 400)
    console.handle(unlabelled)
    console.handle(labelled)
    console.handle(prediction_record("Train/1", 0, "train", 0, 1, 1, [1] * 10, 10))  # not live: no line
    console.handle({"type": "metrics"})
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("window 17    predicted 3  confidence 0.60")
    assert lines[1].endswith("window 18    predicted 5  confidence 0.80  label 3  (trained, wrong)")
    assert confidence([0] * 10) == 0.0


def test_the_time_rounds_up_into_the_next_second():
    record = prediction_record("cam/1", 1, "live", 0, 0, None, [1] + [0] * 9, 1)
    whole = int(time.time())
    record["time"] = whole + 0.999
    expected = time.strftime("%H:%M:%S", time.localtime(whole + 1)) + ".00"
    assert window_line(record).startswith(expected)
