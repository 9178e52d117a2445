"""Per-phase statistics of the learner stage and the record builders it uses."""

from __future__ import annotations

import numpy as np

from biograd.core import records
from biograd.core.protocol import RECORD_TYPES as WIRE_TYPES
from biograd.pipeline.stats import PhaseStats, RunStats


def test_phase_stats_count_labelled_samples_and_finite_losses():
    s = PhaseStats()
    assert s.accuracy is None and s.loss is None
    s.add(True, 1.0)
    s.add(False, float("nan"))  # a non-finite loss is not averaged in
    s.add(None, 3.0)  # unlabelled: no accuracy, but its loss counts
    assert (s.correct, s.labelled, s.losses) == (1, 2, 2)
    assert s.accuracy == 0.5 and s.loss == 2.0


def test_run_stats_keep_phases_and_epochs_apart_and_hand_out_each_confusion_once():
    r = RunStats(3)
    r.add("train", 0, True, None)
    r.add("test", 0, False, None)
    r.add_test(0, 2, 1)
    r.add_test(0, 2, 2)
    assert r.phase("train", 0).accuracy == 1.0 and r.phase("test", 0).accuracy == 0.0
    assert r.phase("train", 1).labelled == 0
    conf = r.pop_confusion(0)
    assert conf.tolist() == [[0, 0, 0], [0, 0, 0], [0, 1, 1]]
    assert r.pop_confusion(0).sum() == 0 and r.pop_confusion(0).shape == (3, 3)


def test_every_built_record_passes_the_check_and_has_a_wire_type():
    built = [
        records.prediction_record("s", 0, "live", 0, 3, None, [0] * 10, 5),
        records.metrics_record(1, 1, "train", 0, None, None, 0.0, 0.0, {"dropped": 0}, 0),
        records.sleep_record(4, [(80.0, 1.1)]),
        records.eval_record(np.eye(2, dtype=np.int64), 0),
        records.checkpoint_record("x", 4),
        records.end_record("end", 4, 4, 10, {}, None),
    ]
    assert [r["type"] for r in built] == list(records.RECORD_TYPES) == list(WIRE_TYPES)
    for record in built:
        records.check_record(record)
    assert built[0]["correct"] is None and built[3]["accuracy"] == 1.0
