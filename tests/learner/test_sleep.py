"""Sleep phase on a small real-data run: it aligns random feedback and keeps mirror feedback aligned."""

from __future__ import annotations

import numpy as np
import pytest
from nmnist_io import nmnist_files, read_nmnist_bin

from biograd.learner.config import LearnerConfig
from biograd.learner.encoding import encode_nmnist
from biograd.learner.network import BioGradLearner


@pytest.fixture(scope="module")
def nmnist_subset(nmnist_dir):
    files = nmnist_files(nmnist_dir, "Train")
    assert len(files) >= 300, f"expected the 1000 nmnist-1k Train files under {nmnist_dir}"
    pick = np.random.default_rng(0).permutation(len(files))[:320]
    return [(encode_nmnist(read_nmnist_bin(files[i][0])), files[i][1]) for i in pick]


def _train(data, init, sleep):
    cfg = LearnerConfig(
        layer_sizes=(2312, 64, 32, 10),
        batch_size=8,
        lr=3e-3,
        feedback_init=init,
        sleep=sleep,
        sleep_noise_samples=64,
        sleep_steps=40,
        seed=1,
    )
    learner = BioGradLearner(cfg)
    start = learner.feedback_alignment()
    trace = []
    for k, (raster, label) in enumerate(data):
        learner.train_sample(raster, label)
        if k % 40 == 39:
            trace.append([angle for angle, _ in learner.feedback_alignment()])
    return learner, np.array([a for a, _ in start]), np.array(trace)


def test_sleep_aligns_random_feedback_during_training(nmnist_subset):
    slept, start, with_sleep = _train(nmnist_subset, "random", True)
    awake, _, without = _train(nmnist_subset, "random", False)
    assert slept.sleeps == 40 and awake.sleeps == 0
    assert np.all(start > 80)
    # Without sleep the feedback never moves: its angle to the forward path stays near 90°.
    assert np.all(without > 80), without
    # With sleep it turns towards (W_out … W_{l+1})^T, well below the sleepless run.
    assert np.all(with_sleep[-1] < 70), with_sleep
    assert np.all(with_sleep[-1] < without[-1] - 20), (with_sleep, without)
    assert np.all(np.diff(with_sleep[:, 1]) < 2), with_sleep  # top layer: steady decrease


def test_sleep_keeps_mirror_feedback_aligned_during_training(nmnist_subset):
    _, start, trace = _train(nmnist_subset, "mirror", True)
    assert np.all(start < 1e-3)
    assert np.all(trace < 45), trace
