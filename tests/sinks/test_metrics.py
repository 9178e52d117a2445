"""The metrics log: JSON lines / CSV, flushed per line, readable back, resumable."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sink_helpers import synthetic_records

from biograd.core.errors import DataFormatError, DataNotFoundError
from biograd.core.records import RecordError
from biograd.sinks.metrics import MetricsLog, csv_columns, find_metrics_log, read_metrics


def _lines(path):
    return path.read_text().splitlines()


def test_jsonl_rows_are_on_disk_after_each_record_and_carry_the_latest_feedback_angle(tmp_path):
    path = tmp_path / "metrics.jsonl"
    log = MetricsLog(path, "jsonl")
    records = list(synthetic_records(12, n_hidden=2, sleep_every=5))
    logged = 0
    for record in records:
        log.handle(record)
        if record["type"] != "prediction" and record["type"] != "end":
            logged += 1
            # A `tail -f` reader sees the row as soon as handle() returns (file still open).
            assert len(_lines(path)) == logged
    log.close()
    rows = [json.loads(line) for line in _lines(path)]
    metrics = [r for r in rows if r["type"] == "metrics"]
    assert [r["samples"] for r in metrics] == list(range(1, 13))
    assert "angle_deg" not in metrics[3]  # before the first sleep
    assert metrics[5]["angle_deg"] == [14.0, 15.0]  # sleep at sample 5 (i = 4)
    assert metrics[11]["angle_deg"] == [19.0, 20.0]  # sleep at sample 10
    evals = [r for r in rows if r["type"] == "eval"]
    assert evals[0]["accuracy"] == 0.7 and np.asarray(evals[0]["confusion"]).sum() == 100


def test_confusion_of_the_run_is_tallied_from_labelled_predictions(tmp_path):
    path = tmp_path / "metrics.jsonl"
    log = MetricsLog(path)
    records = list(synthetic_records(40))
    expected = np.zeros((10, 10), dtype=int)
    for r in records:
        if r["type"] == "prediction":
            expected[r["label"], r["predicted"]] += 1
        log.handle(r)
    log.handle(
        {
            "type": "prediction",
            "sample_id": "live/0",
            "index": 0,
            "phase": "live",
            "predicted": 3,
            "label": None,
            "correct": None,
            "counts": [0] * 10,
            "time": 0.0,
        }
    )
    log.close()
    rows = read_metrics(path)
    confusion = [r for r in rows if r["type"] == "confusion"]
    assert [c["phase"] for c in confusion] == ["train"]  # unlabelled live predictions are not tallied
    assert np.array_equal(confusion[0]["confusion"], expected)
    assert confusion[0]["samples"] == 40
    assert rows[-1]["type"] == "end"


def test_csv_has_fixed_columns_and_reads_back_like_the_jsonl(tmp_path):
    records = list(synthetic_records(15, n_hidden=2))
    logs = {fmt: MetricsLog(tmp_path / f"metrics.{fmt}", fmt, n_hidden=2) for fmt in ("jsonl", "csv")}
    for record in records:
        for log in logs.values():
            log.handle(record)
    for log in logs.values():
        log.close()
    header = _lines(tmp_path / "metrics.csv")[0].split(",")
    assert header == csv_columns(2)
    assert "angle_deg_2" in header and "norm_ratio_1" in header
    from_csv = read_metrics(tmp_path / "metrics.csv")
    from_jsonl = read_metrics(tmp_path / "metrics.jsonl")
    assert len(from_csv) == len(from_jsonl)
    for a, b in zip(from_csv, from_jsonl):
        assert a["type"] == b["type"]
        for key in (
            "samples",
            "accuracy_running",
            "accuracy",
            "loss",
            "events_per_s",
            "angle_deg",
            "norm_ratio",
            "confusion",
            "split",
            "phase",
        ):
            if key == "confusion" and key in b:
                assert np.array_equal(a[key], b[key])
            elif key in b:
                assert a[key] == pytest.approx(b[key]), key


def test_csv_needs_the_hidden_layer_count_and_rejects_a_mismatching_sleep_record(tmp_path):
    with pytest.raises(RecordError, match="n_hidden"):
        MetricsLog(tmp_path / "m.csv", "csv")
    log = MetricsLog(tmp_path / "m.csv", "csv", n_hidden=1)
    with pytest.raises(RecordError, match="2 hidden-layer angles"):
        log.handle({"type": "sleep", "samples": 1, "angle_deg": [1.0, 2.0], "norm_ratio": [1, 1], "time": 0})
    log.close()


def test_append_continues_a_log_and_refuses_a_different_csv_layout(tmp_path):
    records = list(synthetic_records(6, n_hidden=1))
    first, second = records[:8], records[8:]
    log = MetricsLog(tmp_path / "m.csv", "csv", n_hidden=1)
    for r in first:
        log.handle(r)
    log.close()
    log = MetricsLog(tmp_path / "m.csv", "csv", n_hidden=1, append=True)
    for r in second:
        log.handle(r)
    log.close()
    lines = _lines(tmp_path / "m.csv")
    assert lines.count(lines[0]) == 1  # one header
    rows = read_metrics(tmp_path / "m.csv")
    assert [r["samples"] for r in rows if r["type"] == "metrics"] == list(range(1, 7))
    with pytest.raises(DataFormatError, match="header"):
        MetricsLog(tmp_path / "m.csv", "csv", n_hidden=3, append=True)


def test_bad_records_are_refused_with_a_reason_and_nan_becomes_null(tmp_path):
    log = MetricsLog(tmp_path / "m.jsonl")
    with pytest.raises(RecordError, match="unknown record type 'metric'"):
        log.handle({"type": "metric", "samples": 1})
    with pytest.raises(RecordError, match="lacks accuracy_running"):
        log.handle({"type": "metrics", "samples": 1, "phase": "train", "time": 0})
    with pytest.raises(RecordError, match="outside 0..9"):
        log.handle(
            {
                "type": "prediction",
                "sample_id": "x",
                "index": 0,
                "phase": "train",
                "predicted": 12,
                "label": 1,
                "counts": [],
                "time": 0,
            }
        )
    log.handle(
        {"type": "metrics", "samples": 1, "phase": "train", "accuracy_running": 0.0, "loss": float("nan"), "time": 0}
    )
    log.close()
    assert json.loads(_lines(tmp_path / "m.jsonl")[0])["loss"] is None


def test_reader_skips_a_torn_last_line_but_names_a_corrupt_one(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"type": "metrics", "samples": 1}\n{"type": "metr')
    assert read_metrics(path) == [{"type": "metrics", "samples": 1}]
    path.write_text('{"type": "metrics", "samples": 1}\nnot json\n{"type": "end"}\n')
    with pytest.raises(DataFormatError, match="metrics.jsonl: line 2 is not valid JSON"):
        read_metrics(path)


def test_find_metrics_log_says_what_is_missing(tmp_path):
    with pytest.raises(DataNotFoundError, match="does not exist"):
        find_metrics_log(tmp_path / "nope")
    with pytest.raises(DataNotFoundError, match="no metrics.jsonl or metrics.csv"):
        find_metrics_log(tmp_path)


def test_a_failing_sink_does_not_stop_the_others_and_fails_the_run_at_close(tmp_path):
    from biograd.core.errors import BioGradError
    from biograd.sinks.fanout import SinkSet

    class Broken:
        closed = False

        def handle(self, record):
            raise ValueError("disk on fire")

        def close(self):
            Broken.closed = True

    log = MetricsLog(tmp_path / "m.jsonl")
    sinks = SinkSet([Broken(), log])
    for record in synthetic_records(3):
        sinks.handle(record)
    with pytest.raises(BioGradError, match="Broken: ValueError: disk on fire"):
        sinks.close()
    assert Broken.closed and log._file.closed
    assert [r["type"] for r in read_metrics(tmp_path / "m.jsonl")].count("metrics") == 3
