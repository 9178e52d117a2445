"""Both trace engines against the independent BPTT oracle (float64, 1e-10)."""

from __future__ import annotations

from dataclasses import replace

import bptt_oracle
import numpy as np
import pytest

from biograd.learner import kernels
from biograd.learner.config import LearnerConfig
from biograd.learner.encoding import SpikeRaster
from biograd.learner.network import BioGradLearner

TOL = 1e-10

NETWORKS = {
    # name: (layer sizes, T, t_e, per-layer (λ, θ, w, a) or shared, weight scale)
    "one-hidden": ((13, 9, 10), 15, 4, dict(vdecay=(0.3,), vth=(0.3,), grad_win=(0.3,), grad_amp=(1.0,)), 0.45),
    "two-hidden": (
        (17, 11, 7, 10),
        18,
        6,
        dict(vdecay=(0.5, 0.2, 0.7), vth=(0.3, 0.4, 0.25), grad_win=(0.35, 0.2, 0.3), grad_amp=(1.0, 0.7, 1.3)),
        0.5,
    ),
    "three-hidden": ((12, 10, 8, 6, 10), 14, 3, dict(vdecay=(0.6,), vth=(0.3,), grad_win=(0.4,), grad_amp=(0.9,)), 0.6),
}


def _make(name, engine, seed, **overrides):
    sizes, steps, t_e, params, wscale = NETWORKS[name]
    cfg = LearnerConfig(
        layer_sizes=sizes,
        timesteps=steps,
        error_start=t_e,
        dtype="float64",
        engine=engine,
        seed=seed,
        sleep=False,
        **params,
        **overrides,
    )
    learner = BioGradLearner(cfg)
    rng = np.random.default_rng(100 + seed)
    # Larger random weights and biases than the default init so that many
    # steps fall inside the surrogate window, with and without spikes.
    for w, b in zip(learner.weights, learner.biases):
        w[...] = rng.normal(0.0, wscale, size=w.shape)
        b[...] = rng.normal(0.05, 0.1, size=b.shape)
    for fb in learner.feedback:
        fb[...] = rng.normal(0.0, 1.0, size=fb.shape)
    dense = rng.random((steps, sizes[0])) < 0.35
    return learner, SpikeRaster.from_dense(dense), dense.astype(np.float64)


def _oracle(learner, x):
    """Per layer (spikes, E, E_b, v) from the tape oracle, inputs = oracle spikes of the layer below."""
    cfg = learner.config
    out = []
    for l, (w, b) in enumerate(zip(learner.weights, learner.biases)):
        p = [cfg.layer_param(n, l) for n in ("vdecay", "vth", "grad_win", "grad_amp")]
        res = bptt_oracle.layer_bptt(x, np.array(w, dtype=np.float64), np.array(b, dtype=np.float64), *p)
        out.append(res)
        x = res[0]
    return out


def _engine_eligibility(learner, raster):
    """E (N_l, N_{l-1}) and E_b of every layer from the learner's configured engine."""
    ptr, idx = learner.check_raster(raster)
    es = []
    if learner.config.engine == "event":
        learner.engine.infer(ptr, idx)
        for l in range(learner.config.n_layers):
            lam, th, win, amp = learner.layers[l].params
            n_in, n = learner.layers[l].wt.shape
            gwt = np.zeros_like(learner.layers[l].wt)
            gb = np.zeros(n)
            touched = np.zeros(n_in, np.uint8)
            rows = np.zeros(n_in, np.int32)
            kernels.layer_backward_event(
                learner.recs[l].v,
                ptr,
                idx,
                np.ones(n),
                lam,
                th,
                win,
                amp,
                learner.recs[l].h,
                gwt,
                gb,
                touched,
                rows,
                0,
                learner.recs[l].col_ptr,
                learner.recs[l].col_t,
            )
            es.append((gwt.T.copy(), gb))
            ptr, idx = learner.recs[l].out_ptr, learner.recs[l].out_idx
    else:
        learner.engine.train_forward(ptr, idx)
        for l in range(learner.config.n_layers):
            _, et, _, eb, _ = learner.engine.traces[l]
            es.append((et.T.copy(), eb.copy()))
    spikes = [
        SpikeRaster(
            learner.recs[l].out_ptr,
            learner.recs[l].out_idx[: learner.recs[l].out_ptr[-1]],
            learner.config.layer_sizes[l + 1],
        ).to_dense()
        for l in range(learner.config.n_layers)
    ]
    return es, spikes


@pytest.mark.parametrize("engine", ["event", "synapse"])
@pytest.mark.parametrize("name", list(NETWORKS))
@pytest.mark.parametrize("seed", [0, 1])
def test_eligibility_equals_bptt(engine, name, seed):
    learner, raster, x = _make(name, engine, seed)
    oracle = _oracle(learner, x)
    es, spikes = _engine_eligibility(learner, raster)
    n_kappa_neg = n_in_window = 0
    for l, ((e, eb), (o_s, o_e, o_eb, o_v)) in enumerate(zip(es, oracle)):
        np.testing.assert_array_equal(spikes[l], o_s, err_msg=f"layer {l} spikes differ")
        assert o_s.sum() > 0, f"layer {l} never spikes: the test network is degenerate"
        assert np.abs(o_e).max() > 0.1, f"layer {l} has vanishing eligibility"
        np.testing.assert_allclose(e, o_e, rtol=0, atol=TOL, err_msg=f"layer {l} E")
        np.testing.assert_allclose(eb, o_eb, rtol=0, atol=TOL, err_msg=f"layer {l} E_b")
        p = [learner.config.layer_param(n, l) for n in ("vdecay", "vth", "grad_win", "grad_amp")]
        psi = p[3] * (np.abs(o_v - p[1]) < p[2])
        kappa = 1.0 - o_s - o_v * psi
        n_kappa_neg += int(np.sum(kappa[:-1] < 0))
        n_in_window += int(np.sum(psi > 0))
    assert n_kappa_neg > 0, "no step with κ < 0: the κ < 0 path is untested"
    assert n_in_window > 10


@pytest.mark.parametrize("engine", ["event", "synapse"])
@pytest.mark.parametrize("name", ["two-hidden", "three-hidden"])
def test_full_update_equals_delta_times_bptt(engine, name):
    """batch_size 1: W_l changes by exactly -η δ_l E_l, b_l by -η δ_l E^b_l."""
    lr = 0.05
    learner, raster, x = _make(name, engine, 3, lr=lr, batch_size=1)
    label = 7
    oracle = _oracle(learner, x)
    deltas, counts = bptt_oracle.error_deltas(
        oracle[-1][0], label, learner.config.error_start, [np.array(b) for b in learner.feedback]
    )
    assert any(np.abs(d).max() > 0 for d in deltas), "error phase produced no error spikes"
    w0 = [np.array(w) for w in learner.weights]
    b0 = [np.array(b) for b in learner.biases]
    res = learner.train_sample(raster, label)
    assert res.updated and not res.slept
    np.testing.assert_array_equal(res.counts, counts)
    for l, (d, (_, e, eb, _)) in enumerate(zip(deltas, oracle)):
        np.testing.assert_allclose(
            learner.weights[l] - w0[l], -lr * d[:, None] * e, rtol=0, atol=TOL, err_msg=f"layer {l} weight update"
        )
        np.testing.assert_allclose(
            learner.biases[l] - b0[l], -lr * d * eb, rtol=0, atol=TOL, err_msg=f"layer {l} bias update"
        )


def test_minibatch_update_is_mean_over_batch():
    lr = 0.05
    learner, _, _ = _make("two-hidden", "event", 4, lr=lr, batch_size=3)
    rng = np.random.default_rng(9)
    w0 = [np.array(w) for w in learner.weights]
    expected = [np.zeros_like(w) for w in w0]
    for k in range(3):
        dense = rng.random((learner.config.timesteps, learner.n_inputs)) < 0.35
        label = int(rng.integers(10))
        oracle = _oracle(learner, dense.astype(float))
        deltas, _ = bptt_oracle.error_deltas(
            oracle[-1][0], label, learner.config.error_start, [np.array(b) for b in learner.feedback]
        )
        for l, (d, o) in enumerate(zip(deltas, oracle)):
            expected[l] += -lr * d[:, None] * o[1] / 3
        res = learner.train_sample(SpikeRaster.from_dense(dense), label)
        assert res.updated == (k == 2)
        if k < 2:
            for w, w_before in zip(learner.weights, w0):
                np.testing.assert_array_equal(w, w_before)
    for l in range(3):
        np.testing.assert_allclose(learner.weights[l] - w0[l], expected[l], rtol=0, atol=TOL)


def test_engines_agree_in_float32():
    """Both engines train the same network to nearly the same weights in float32."""
    results = []
    for engine in ("event", "synapse"):
        learner, _, _ = _make("two-hidden", engine, 5, batch_size=2, lr=0.02)
        learner = BioGradLearner(replace(learner.config, dtype="float32"))
        rng = np.random.default_rng(2)
        for _ in range(4):
            dense = rng.random((learner.config.timesteps, learner.n_inputs)) < 0.35
            learner.train_sample(SpikeRaster.from_dense(dense), int(rng.integers(10)))
        results.append([np.array(w) for w in learner.weights])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def test_numpy_reference_baseline_computes_the_same_update():
    """The benchmark's NumPy baseline trains to the same weights (so its speed is comparable)."""
    from biograd.learner.reference_numpy import NumpyReferenceLearner

    learner, _, _ = _make("two-hidden", "event", 6, batch_size=2, lr=0.05)
    ref = NumpyReferenceLearner(learner.config, learner.weights, learner.biases, learner.feedback)
    rng = np.random.default_rng(11)
    for _ in range(4):
        dense = rng.random((learner.config.timesteps, learner.n_inputs)) < 0.35
        label = int(rng.integers(10))
        a = learner.train_sample(SpikeRaster.from_dense(dense), label)
        b = ref.train_sample(dense, label)
        assert a.prediction == b[0]
        np.testing.assert_array_equal(a.counts, b[1])
        np.testing.assert_array_equal(ref.predict(dense)[1], learner.predict(SpikeRaster.from_dense(dense))[1])
    for w, wr in zip(learner.weights, ref.weights):
        np.testing.assert_allclose(w, wr, rtol=0, atol=TOL)
