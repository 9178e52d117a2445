"""Health guard: silent output and stalled learning said once; non-finite weights halt learning."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from biograd.learner.config import LearnerConfig
from biograd.learner.encoding import SpikeRaster
from biograd.learner.health import HealthGuard, LearningHalted
from biograd.learner.network import BioGradLearner

SMALL = LearnerConfig(
    layer_sizes=(30, 16, 12, 10), timesteps=12, error_start=3, batch_size=1, sleep=False, lr=0.01, seed=2
)


def _samples(n, seed=0):
    rng = np.random.default_rng(seed)
    return [(SpikeRaster.from_dense(rng.random((12, 30)) < 0.4), int(rng.integers(10))) for _ in range(n)]


def test_silent_output_is_said_once_until_it_spikes_again():
    learner = BioGradLearner(SMALL)
    learner.layers[-1].b[:] = -100.0  # the output can never reach threshold
    guard = HealthGuard(silent=5, stalled=0, check_every=0)
    said = [guard.observe(learner, learner.train_sample(r, y)) for r, y in _samples(12)]
    assert [len(s) for s in said] == [0, 0, 0, 0, 1] + [0] * 7
    assert "has not spiked for 5 labelled samples" in said[4][0]
    learner.layers[-1].b[:] = 100.0  # spikes again: the warning is re-armed
    r, y = _samples(1, seed=9)[0]
    assert guard.observe(learner, learner.train_sample(r, y)) == []
    learner.layers[-1].b[:] = -100.0
    said = [guard.observe(learner, learner.train_sample(r, y)) for r, y in _samples(5, seed=3)]
    assert [len(s) for s in said] == [0, 0, 0, 0, 1]


def test_no_weight_update_is_said_once():
    learner = BioGradLearner(replace(SMALL, batch_size=10_000))
    guard = HealthGuard(silent=0, stalled=4, check_every=0)
    said = [guard.observe(learner, learner.train_sample(r, y)) for r, y in _samples(8)]
    assert [len(s) for s in said] == [0, 0, 0, 1, 0, 0, 0, 0]
    assert "no weight has changed for 4 labelled samples" in said[3][0] and "batch_size = 10000" in said[3][0]


def test_streaming_updates_keep_the_stall_warning_quiet():
    learner = BioGradLearner(SMALL)
    guard = HealthGuard(silent=0, stalled=3, check_every=1)
    for r, y in _samples(10):
        assert guard.observe(learner, learner.train_sample(r, y)) == []
    assert learner.last_change == learner.samples_seen


@pytest.mark.parametrize("where", ["W", "b", "B"])
def test_non_finite_state_halts_learning(where):
    learner = BioGradLearner(SMALL)
    guard = HealthGuard(silent=0, stalled=0, check_every=3)
    data = _samples(6)
    for r, y in data[:2]:
        guard.observe(learner, learner.train_sample(r, y))
    target = {"W": learner.weights[1], "b": learner.biases[0], "B": learner.feedback[0]}[where]
    target.flat[3] = np.inf if where == "b" else np.nan
    with pytest.raises(LearningHalted, match=f"sample 2: {where}[01] has 1 non-finite value"):
        HealthGuard(0, 0, 0).check_finite(learner)
    r, y = data[2]
    with pytest.raises(LearningHalted, match="learning halted at sample 3"):
        guard.observe(learner, learner.train_sample(r, y))  # the third sample: the periodic check
