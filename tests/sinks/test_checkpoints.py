"""CheckpointManager: when it saves, atomicity, pruning, loading, and exact resume (learner API)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sink_helpers import random_samples, small_learner

from biograd.core.errors import ConfigError, DataFormatError, DataNotFoundError
from biograd.learner.network import BioGradLearner
from biograd.sinks.checkpoints import CheckpointManager, list_checkpoints, load_checkpoint, resolve_checkpoint


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def _names(run_dir):
    return [c.path.name for c in list_checkpoints(run_dir)]


def test_saves_at_each_multiple_of_every_samples_keeps_the_last_k_and_a_final_one(tmp_path):
    learner = small_learner(sizes=(40, 8, 10), batch_size=3)
    manager = CheckpointManager(tmp_path, every_samples=4, keep=2)
    saved = []
    for raster, label in random_samples(10, 40, 12):
        learner.train_sample(raster, label)
        path = manager.maybe_save(learner, {"next_index": learner.samples_seen})
        if path is not None:
            saved.append(learner.samples_seen)
    assert saved == [4, 8]
    assert _names(tmp_path) == ["ckpt-000000004", "ckpt-000000008"]
    final = manager.save_final(learner, {"next_index": 10})
    assert final.name == "ckpt-000000010-final"
    assert _names(tmp_path) == ["ckpt-000000008", "ckpt-000000010-final"]
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))
    state = json.loads((final / "state.json").read_text())
    assert state["samples"] == 10 and state["final"] and state["extra"] == {"next_index": 10}


def test_time_based_checkpoints_follow_the_clock(tmp_path):
    clock = FakeClock()
    learner = small_learner(sizes=(40, 8, 10))
    manager = CheckpointManager(tmp_path, every_minutes=2.0, keep=5, clock=clock)
    samples = random_samples(4, 40, 12)
    learner.train_sample(*samples[0])
    clock.now += 119.0
    assert manager.maybe_save(learner) is None
    clock.now += 1.0
    assert manager.maybe_save(learner).name == "ckpt-000000001"
    learner.train_sample(*samples[1])
    clock.now += 60.0
    assert manager.maybe_save(learner) is None  # the timer restarted at the save
    clock.now += 60.0
    assert manager.maybe_save(learner).name == "ckpt-000000002"
    clock.now += 600.0
    assert manager.maybe_save(learner) is None  # nothing learned since: no copy


def test_a_resumed_manager_saves_at_the_same_multiples(tmp_path):
    learner = small_learner(sizes=(40, 8, 10))
    manager = CheckpointManager(tmp_path, every_samples=4, keep=3, start_samples=8)
    saved = []
    for raster, label in random_samples(13, 40, 12):
        learner.train_sample(raster, label)
        if learner.samples_seen > 8 and manager.maybe_save(learner):
            saved.append(learner.samples_seen)
    assert saved == [12]


def test_a_save_that_fails_midway_leaves_the_previous_checkpoints_intact(tmp_path):
    learner = small_learner(sizes=(40, 8, 10))
    manager = CheckpointManager(tmp_path, every_samples=1, keep=3)
    samples = random_samples(2, 40, 12)
    learner.train_sample(*samples[0])
    good = manager.maybe_save(learner)
    before = (good / "learner.npz").read_bytes()
    learner.train_sample(*samples[1])

    def broken_save(path):
        path.write_bytes(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    learner.save = broken_save
    with pytest.raises(OSError, match="disk full"):
        manager.maybe_save(learner)
    assert _names(tmp_path) == ["ckpt-000000001"]
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))
    assert (good / "learner.npz").read_bytes() == before
    assert load_checkpoint(tmp_path, BioGradLearner.load).samples == 1


def test_resume_mid_batch_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    """Batch 3, sleep after each update, checkpoint at 7 (mid-batch): resume == straight run."""
    samples = random_samples(14, 2312, 12, seed=5)
    straight = small_learner(batch_size=3, sleep=True, seed=3)
    manager = CheckpointManager(tmp_path / "a", every_samples=7, keep=3)
    for i, (raster, label) in enumerate(samples):
        straight.train_sample(raster, label)
        manager.maybe_save(straight, {"next_index": i + 1})
    assert _names(tmp_path / "a") == ["ckpt-000000007", "ckpt-000000014"]
    assert straight.sleeps == 4

    ckpt = load_checkpoint(tmp_path / "a" / "checkpoints" / "ckpt-000000007", BioGradLearner.load)
    assert ckpt.samples == 7 and ckpt.extra_state == {"next_index": 7}
    resumed = ckpt.learner
    for raster, label in samples[ckpt.extra_state["next_index"] :]:
        resumed.train_sample(raster, label)
    for name in ("weights", "biases", "feedback"):
        for a, b in zip(getattr(straight, name), getattr(resumed, name)):
            assert np.array_equal(a, b), name
    # A run that loads the checkpoint but trains on other samples must differ: the check can fail.
    other = load_checkpoint(tmp_path / "a", BioGradLearner.load).learner  # latest = 14
    other.train_sample(*samples[0])
    other.flush()
    assert not np.array_equal(other.weights[0], straight.weights[0])


def test_resolve_and_load_report_what_is_wrong(tmp_path):
    learner = small_learner(sizes=(40, 8, 10))
    manager = CheckpointManager(tmp_path, keep=1)
    path = manager.save_final(learner)
    assert resolve_checkpoint(tmp_path) == path
    assert resolve_checkpoint(path / "learner.npz") == path
    assert resolve_checkpoint(tmp_path / "checkpoints") == path
    with pytest.raises(DataNotFoundError, match="does not exist"):
        resolve_checkpoint(tmp_path / "missing")
    with pytest.raises(DataNotFoundError, match="neither a checkpoint"):
        (tmp_path / "empty").mkdir()
        resolve_checkpoint(tmp_path / "empty")
    (path / "state.json").write_text("{not json")
    with pytest.raises(DataFormatError, match="state.json: not valid JSON"):
        load_checkpoint(path, BioGradLearner.load)
    (path / "state.json").write_text(json.dumps({"format": 1, "samples": 5, "extra": {}}))
    with pytest.raises(DataFormatError, match="has seen 0 samples but state.json says 5"):
        load_checkpoint(path, BioGradLearner.load)
    with pytest.raises(DataFormatError, match="not JSON-serialisable"):
        manager.save_final(learner, {"bad": object()})
    with pytest.raises(ConfigError, match="sinks.keep_checkpoints"):
        CheckpointManager(tmp_path, keep=0)
