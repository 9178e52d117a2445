"""Learner behaviour: schedule, inference, sleep invariants, checkpoints and resume."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from biograd.core.errors import BioGradError, ConfigError, DataFormatError, DataNotFoundError
from biograd.learner.config import LearnerConfig
from biograd.learner.encoding import SpikeRaster
from biograd.learner.network import BioGradLearner

SMALL = LearnerConfig(
    layer_sizes=(30, 16, 12, 10),
    timesteps=12,
    error_start=3,
    batch_size=3,
    sleep_noise_samples=16,
    sleep_steps=10,
    lr=0.05,
    seed=7,
)


def _samples(n, cfg=SMALL, seed=0, p=0.3):
    rng = np.random.default_rng(seed)
    return [
        (SpikeRaster.from_dense(rng.random((cfg.timesteps, cfg.layer_sizes[0])) < p), int(rng.integers(10)))
        for _ in range(n)
    ]


def _state(learner):
    return {k: np.array(v) for k, v in learner.state_arrays().items()}


def _assert_same_state(a, b):
    sa, sb = _state(a), _state(b)
    assert sa.keys() == sb.keys()
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)


def test_predict_matches_training_forward_and_changes_nothing():
    learner = BioGradLearner(replace(SMALL, batch_size=100))
    raster, label = _samples(1)[0]
    before = _state(learner)
    pred, counts = learner.predict(raster)
    after = _state(learner)
    for k in before:
        np.testing.assert_array_equal(before[k], after[k], err_msg=k)
    assert counts.sum() > 0
    res = learner.train_sample(raster, label)
    np.testing.assert_array_equal(res.counts, counts)
    assert res.prediction == pred == int(np.argmax(counts))
    assert not res.updated


def test_batch_schedule_and_flush():
    learner = BioGradLearner(SMALL)
    w0 = learner.weights[0].copy()
    flags = [learner.train_sample(r, y) for r, y in _samples(7)]
    assert [f.updated for f in flags] == [False, False, True, False, False, True, False]
    assert [f.slept for f in flags] == [False, False, True, False, False, True, False]
    assert learner.updates == 2 and learner.sleeps == 2 and learner.batch_fill == 1
    assert not np.array_equal(w0, learner.weights[0])
    w1 = learner.weights[0].copy()
    res = learner.flush()
    assert res.updated and res.slept and learner.batch_fill == 0 and learner.updates == 3
    assert not np.array_equal(w1, learner.weights[0])
    assert learner.flush() is None


def test_streaming_mode_updates_every_sample_and_sleeps_every_n():
    learner = BioGradLearner(replace(SMALL, batch_size=1, sleep_every=4))
    flags = [learner.train_sample(r, y) for r, y in _samples(9)]
    assert all(f.updated for f in flags)
    assert [f.slept for f in flags] == [False, False, False, True, False, False, False, True, False]
    assert learner.samples_seen == 9 and learner.updates == 9 and learner.sleeps == 2


def test_sleep_changes_feedback_only():
    learner = BioGradLearner(replace(SMALL, feedback_init="random"))
    w = [x.copy() for x in learner.weights]
    b = [x.copy() for x in learner.biases]
    fb = [x.copy() for x in learner.feedback]
    for _ in range(3):
        learner.sleep()
    for x, y in zip(w, learner.weights):
        np.testing.assert_array_equal(x, y)
    for x, y in zip(b, learner.biases):
        np.testing.assert_array_equal(x, y)
    for x, y in zip(fb, learner.feedback):
        assert not np.array_equal(x, y)


def test_feedback_init_mirror_and_random():
    mirror = BioGradLearner(SMALL).feedback_alignment()
    assert all(angle < 1e-3 and abs(ratio - 1) < 1e-5 for angle, ratio in mirror)
    random = BioGradLearner(replace(SMALL, layer_sizes=(30, 200, 100, 10), feedback_init="random"))
    for angle, ratio in random.feedback_alignment():
        assert 70 < angle < 110 and abs(ratio - 1) < 1e-5


def test_bad_inputs_raise_clear_errors():
    learner = BioGradLearner(SMALL)
    raster, _ = _samples(1)[0]
    with pytest.raises(BioGradError, match="label"):
        learner.train_sample(raster, 10)
    with pytest.raises(BioGradError, match="31 inputs"):
        learner.predict(SpikeRaster(raster.indptr, raster.indices, 31))
    with pytest.raises(BioGradError, match="time steps"):
        learner.predict(SpikeRaster(raster.indptr[:-1], raster.indices[: raster.indptr[-2]], 30))
    bad = raster.indices.copy()
    bad[0] = 30
    with pytest.raises(BioGradError, match="outside"):
        learner.predict(SpikeRaster(raster.indptr, bad, 30))


@pytest.mark.parametrize("engine", ["event", "synapse"])
def test_resume_is_bit_identical(tmp_path, engine):
    cfg = replace(SMALL, engine=engine)
    data = _samples(11, seed=3)
    straight = BioGradLearner(cfg)
    first = BioGradLearner(cfg)
    for r, y in data[:5]:  # stops mid-batch: accumulated gradients must survive
        straight.train_sample(r, y)
        first.train_sample(r, y)
    path = first.save(tmp_path / "ck.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.npz"]  # no temp file left
    resumed = BioGradLearner.load(path)
    _assert_same_state(first, resumed)
    res_a = [straight.train_sample(r, y) for r, y in data[5:]]
    res_b = [resumed.train_sample(r, y) for r, y in data[5:]]
    for a, b in zip(res_a, res_b):
        assert a.updated == b.updated and a.slept == b.slept and a.loss == b.loss
        np.testing.assert_array_equal(a.counts, b.counts)
    straight.flush()
    resumed.flush()
    _assert_same_state(straight, resumed)


def test_load_checks_architecture_and_file(tmp_path):
    path = BioGradLearner(SMALL).save(tmp_path / "ck.npz")
    other = replace(SMALL, layer_sizes=(30, 20, 12, 10))
    with pytest.raises(ConfigError) as err:
        BioGradLearner.load(path, other)
    msg = str(err.value)
    assert str(path) in msg and "(30, 16, 12, 10)" in msg and "(30, 20, 12, 10)" in msg
    # Same architecture, new settings: accepted and used.
    loaded = BioGradLearner.load(path, replace(SMALL, lr=0.5))
    assert loaded.config.lr == 0.5
    with pytest.raises(DataNotFoundError, match="missing.npz"):
        BioGradLearner.load(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    with pytest.raises(DataFormatError, match="junk.npz"):
        BioGradLearner.load(junk)
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(DataFormatError, match="other.npz"):
        BioGradLearner.load(tmp_path / "other.npz")


def test_checkpoint_holds_no_objects(tmp_path):
    path = BioGradLearner(SMALL).save(tmp_path / "ck.npz")
    with np.load(path, allow_pickle=False) as z:
        for k in z.files:
            assert z[k].dtype != object


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_feedback_is_independent_of_the_weights(dtype):
    """Mirror init copies: a weight update must not move B (float64 once aliased W_out^T)."""
    learner = BioGradLearner(replace(SMALL, dtype=dtype, batch_size=1, sleep=False))
    fb = [b.copy() for b in learner.feedback]
    for r, y in _samples(3):
        learner.train_sample(r, y)
    for before, after in zip(fb, learner.feedback):
        np.testing.assert_array_equal(before, after)
