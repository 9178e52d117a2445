"""Optimizers: one step on known gradients equals a hand computation; lazy rows; both engines; resume."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from biograd.learner.config import LearnerConfig
from biograd.learner.encoding import SpikeRaster
from biograd.learner.network import BioGradLearner

TINY = LearnerConfig(
    layer_sizes=(6, 5, 4, 10),
    timesteps=8,
    error_start=2,
    batch_size=2,
    lr=0.01,
    beta1=0.8,
    beta2=0.9,
    eps=1e-3,
    dtype="float64",
    sleep=False,
    seed=3,
)


def _set_grads(learner, rng, zero_rows=()):
    """Put random accumulated gradients in place (rows in zero_rows of layer 0 stay untouched)."""
    out = []
    for l, g in enumerate(learner.grads):
        gw = rng.standard_normal(g.gwt.shape)
        if l == 0:
            gw[list(zero_rows)] = 0.0
        gb = rng.standard_normal(g.gb.shape)
        g.gwt[...] = gw
        g.gb[...] = gb
        g.reindex()
        out.append((gw.T.copy(), gb.copy()))  # (N_out, N_in) like learner.weights
    return out


def _step(learner, n):
    learner.batch_fill = n
    learner.apply_update()


def test_sgd_step_is_w_minus_lr_times_mean_gradient():
    learner = BioGradLearner(replace(TINY, optimizer="sgd"))
    w0 = [w.copy() for w in learner.weights]
    b0 = [b.copy() for b in learner.biases]
    grads = _set_grads(learner, np.random.default_rng(0))
    _step(learner, 2)
    for l, (gw, gb) in enumerate(grads):
        np.testing.assert_allclose(learner.weights[l], w0[l] - 0.01 / 2 * gw, rtol=0, atol=1e-15)
        np.testing.assert_allclose(learner.biases[l], b0[l] - 0.01 / 2 * gb, rtol=0, atol=1e-15)
        assert not learner.grads[l].gwt.any() and not learner.grads[l].gb.any()


@pytest.mark.parametrize("name", ["rmsprop", "adam", "layer_rms"])
def test_adaptive_steps_equal_a_hand_computation(name):
    """Three steps; row 2 of layer 0 gets no gradient in step 2 (the lazy path must catch up)."""
    cfg = replace(TINY, optimizer=name)
    learner = BioGradLearner(cfg)
    rng = np.random.default_rng(1)
    w = [x.copy() for x in learner.weights]
    b = [x.copy() for x in learner.biases]
    m = [np.zeros_like(x) for x in w]
    v = [np.zeros_like(x) for x in w]
    mb = [np.zeros_like(x) for x in b]
    vb = [np.zeros_like(x) for x in b]
    s = [[0.0, 0.0] for _ in w]
    b1, b2, eps, lr = cfg.beta1, cfg.beta2, cfg.eps, cfg.lr
    for t, zero_rows in ((1, ()), (2, (2,)), (3, ())):
        grads = _set_grads(learner, rng, zero_rows)
        _step(learner, 4)
        for l, (gw, gb) in enumerate(grads):
            for p, g, mm, vv, k in ((w, gw / 4, m, v, 0), (b, gb / 4, mb, vb, 1)):
                # the dense rule, written out (G = accumulated / batch)
                if name == "layer_rms":
                    s[l][k] = b2 * s[l][k] + (1 - b2) * np.mean(g**2)
                    p[l] = p[l] - lr * g / (np.sqrt(s[l][k] / (1 - b2**t)) + eps)
                    continue
                vv[l] = b2 * vv[l] + (1 - b2) * g**2
                if name == "rmsprop":
                    p[l] = p[l] - lr * g / (np.sqrt(vv[l]) + eps)
                else:
                    mm[l] = b1 * mm[l] + (1 - b1) * g
                    step = lr * (mm[l] / (1 - b1**t)) / (np.sqrt(vv[l] / (1 - b2**t)) + eps)
                    if k == 0 and l == 0 and zero_rows:
                        # lazy Adam: a row without gradient is not moved by its momentum
                        step[:, list(zero_rows)] = 0.0
                    p[l] = p[l] - step
        for l in range(cfg.n_layers):
            np.testing.assert_allclose(learner.weights[l], w[l], rtol=1e-12, atol=1e-15, err_msg=f"{name} t={t} W{l}")
            np.testing.assert_allclose(learner.biases[l], b[l], rtol=1e-12, atol=1e-15, err_msg=f"{name} t={t} b{l}")


def test_lazy_adam_differs_from_dense_only_by_the_skipped_momentum_move():
    cfg = replace(TINY, optimizer="adam")
    learner = BioGradLearner(cfg)
    rng = np.random.default_rng(2)
    _set_grads(learner, rng)
    _step(learner, 1)
    before = learner.weights[0].copy()
    _set_grads(learner, rng, zero_rows=(0, 4))
    _step(learner, 1)
    after = learner.weights[0]
    np.testing.assert_array_equal(after[:, [0, 4]], before[:, [0, 4]])  # skipped rows: not visited
    assert np.all(after[:, [1, 2, 3, 5]] != before[:, [1, 2, 3, 5]])
    # and when row 0 comes back its moments carry the decay of the skipped step
    m_row = learner.optimizer.m[0][0].copy()
    g = _set_grads(learner, rng)[0][0][:, 0]
    _step(learner, 1)
    np.testing.assert_allclose(learner.optimizer.m[0][0], cfg.beta1 * (cfg.beta1 * m_row) + (1 - cfg.beta1) * g)


def _samples(cfg, n, seed=0):
    rng = np.random.default_rng(seed)
    return [
        (SpikeRaster.from_dense(rng.random((cfg.timesteps, cfg.layer_sizes[0])) < 0.4), int(rng.integers(10)))
        for _ in range(n)
    ]


@pytest.mark.parametrize("name", ["rmsprop", "adam", "layer_rms"])
def test_both_engines_take_the_same_steps(name):
    cfg = replace(TINY, layer_sizes=(12, 9, 7, 10), optimizer=name, batch_size=1, sleep=True, sleep_every=3)
    cfg = replace(cfg, sleep_noise_samples=4, sleep_steps=5)
    a = BioGradLearner(cfg)
    b = BioGradLearner(replace(cfg, engine="synapse"))
    w0 = [w.copy() for w in a.weights]
    for r, y in _samples(cfg, 8):
        ra, rb = a.train_sample(r, y), b.train_sample(r, y)
        np.testing.assert_array_equal(ra.counts, rb.counts)
    assert a.optimizer.t == b.optimizer.t == 8
    for l in range(cfg.n_layers):
        assert not np.array_equal(a.weights[l], w0[l])
        np.testing.assert_allclose(a.weights[l], b.weights[l], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(a.biases[l], b.biases[l], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("engine", ["event", "synapse"])
@pytest.mark.parametrize("name", ["rmsprop", "adam", "layer_rms"])
def test_resume_with_optimizer_state_is_bit_identical(tmp_path, engine, name):
    cfg = replace(TINY, layer_sizes=(12, 9, 7, 10), optimizer=name, engine=engine, dtype="float32", batch_size=2)
    data = _samples(cfg, 9, seed=5)
    straight, first = BioGradLearner(cfg), BioGradLearner(cfg)
    for r, y in data[:5]:
        straight.train_sample(r, y)
        first.train_sample(r, y)
    resumed = BioGradLearner.load(first.save(tmp_path / "ck.npz"))
    assert resumed.optimizer.t == first.optimizer.t == 2
    for r, y in data[5:]:
        straight.train_sample(r, y)
        resumed.train_sample(r, y)
    sa, sb = straight.state_arrays(), resumed.state_arrays()
    assert sa.keys() == sb.keys() and any(k.startswith("opt_") and k != "opt_t" for k in sa)
    for k in sa:
        np.testing.assert_array_equal(np.asarray(sa[k]), np.asarray(sb[k]), err_msg=k)


def test_streaming_step_visits_only_touched_rows():
    """A per-synapse step leaves the rows of silent inputs (and their moments) alone."""
    cfg = replace(TINY, layer_sizes=(40, 9, 7, 10), optimizer="rmsprop", batch_size=1, dtype="float32")
    learner = BioGradLearner(cfg)
    dense = np.zeros((cfg.timesteps, 40), dtype=bool)
    dense[:, :10] = np.random.default_rng(0).random((cfg.timesteps, 10)) < 0.8
    w0 = learner.weights[0].copy()
    learner.train_sample(SpikeRaster.from_dense(dense), 3)
    np.testing.assert_array_equal(learner.weights[0][:, 10:], w0[:, 10:])
    assert not learner.optimizer.v[0][10:].any() and not learner.optimizer.last[0][10:].any()
    assert (learner.optimizer.last[0][:10] == 1).sum() == dense[:, :10].any(axis=0).sum()
