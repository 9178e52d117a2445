"""The progress bar sink: sized by the sources' announced totals, fed by prediction records."""

from __future__ import annotations

import io

from biograd.core.records import prediction_record
from biograd.sinks.fanout import SinkSet
from biograd.sinks.progress import ProgressBar


def test_progress_bar_counts_predictions_of_the_announced_total_with_running_accuracy():
    out = io.StringIO()
    bar = ProgressBar(always=True, file=out)
    sinks = SinkSet([bar])
    sinks.stream_started({"name": "replay", "kind": "nmnist", "total": 20})
    for i in range(10):
        sinks.handle(prediction_record(f"s{i}", i, "train", 0, 1, 1 if i < 7 else 2, [0] * 10, 100))
    sinks.handle({"type": "metrics"})  # other records do not move the bar
    sinks.close()
    text = out.getvalue()
    assert "10/20" in text and "acc=0.700" in text and "train e0" in text
