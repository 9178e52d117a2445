"""The BPTT baseline's gradients, checked against finite differences.

Why the check is meaningful: a spiking network's loss is piecewise constant in the
weights (spikes are a step of v), so finite differences of the trained network are
zero almost everywhere and say nothing about the surrogate gradient. Instead the
forward pass is run with ``relaxed=True``: the step [v > θ] is replaced by the ramp
a·clip(v - θ + w, 0, 2w), whose derivative is exactly the pseudo-derivative
ψ = a[|v - θ| < w] that BPTT uses. Everything else — the reset gate v(1 - s), the
matmuls, the count cross-entropy, and the *same* backward code — is unchanged, so
the BPTT gradient must equal the true gradient of that relaxed network, and central
differences test every path of the backward pass (through time, through the reset
gate including steps where κ = 1 - s - vψ < 0, and down through the layers). A
wrong sign, a missing reset term or an off-by-one in time would break it.

The trained (step) network shares that code path; a separate test checks that its
forward pass emits binary spikes and that Adam on real N-MNIST lowers the loss.
"""

from __future__ import annotations

import numpy as np
import pytest

from biograd.learner.bptt_baseline import BPTTConfig, BPTTLearner, cross_entropy, forward, loss_and_grads


def _small_problem(seed=3, sizes=(14, 9, 7, 4), T=9, B=3):
    rng = np.random.default_rng(seed)
    cfg = BPTTConfig(
        layer_sizes=sizes,
        timesteps=T,
        dtype="float64",
        vdecay=(0.3, 0.5, 0.4),
        vth=(0.3, 0.25, 0.35),
        grad_win=(0.3, 0.2, 0.3),
        grad_amp=(1.0, 0.8, 1.2),
    )
    params = [cfg.neuron(l) for l in range(len(sizes) - 1)]
    # Weights large enough that membranes sweep through the surrogate window often.
    weights = [rng.normal(0, 1.2 / np.sqrt(n_in), (n_out, n_in)) for n_in, n_out in zip(sizes[:-1], sizes[1:])]
    biases = [rng.normal(0.1, 0.1, n_out) for n_out in sizes[1:]]
    x = (rng.random((T, B, sizes[0])) < 0.35).astype(np.float64)
    labels = rng.integers(0, sizes[-1], B)
    return params, weights, biases, x, labels


def _loss(weights, biases, x, labels, params):
    recs = forward(weights, biases, x, params, relaxed=True)
    return cross_entropy(recs[-1].s.sum(axis=0), labels)


def test_bptt_gradient_matches_finite_differences_of_relaxed_network():
    params, weights, biases, x, labels = _small_problem()
    recs = forward(weights, biases, x, params, relaxed=True)
    # The test exercises the interesting regimes, not just the linear part.
    for rec in recs:
        assert rec.psi.any(), "no step inside the surrogate window"
    kappa = [1.0 - r.s - r.v * r.psi for r in recs]
    assert any((k < 0).any() for k in kappa), "no step with κ < 0"

    loss, _, gw, gb = loss_and_grads(weights, biases, x, labels, params, relaxed=True)
    assert loss == pytest.approx(_loss(weights, biases, x, labels, params))
    eps = 1e-6
    analytic, numeric = [], []
    for group, grads in ((weights, gw), (biases, gb)):
        for p, g in zip(group, grads):
            assert g.shape == p.shape
            flat = p.reshape(-1)
            for i in range(flat.size):
                old = flat[i]
                flat[i] = old + eps
                up = _loss(weights, biases, x, labels, params)
                flat[i] = old - eps
                down = _loss(weights, biases, x, labels, params)
                flat[i] = old
                numeric.append((up - down) / (2 * eps))
                analytic.append(g.reshape(-1)[i])
    analytic, numeric = np.array(analytic), np.array(numeric)
    assert np.abs(analytic).max() > 1e-3, "gradient vanished: the check would be vacuous"
    # Per-entry check; a kink of the ramp inside ±eps would show up here as an outlier.
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


def test_gradient_reaches_every_layer_through_time():
    """Dropping the recurrent (through-time) term must change the gradient: the test above
    would otherwise not distinguish BPTT from a per-step rule."""
    params, weights, biases, x, labels = _small_problem(seed=5)
    _, _, gw, _ = loss_and_grads(weights, biases, x, labels, params, relaxed=True)
    no_time = [p._replace(vdecay=0.0) for p in params]
    _, _, gw0, _ = loss_and_grads(weights, biases, x, labels, no_time, relaxed=True)
    assert all(np.abs(g).max() > 0 for g in gw)
    assert not np.allclose(gw[0], gw0[0])


def test_step_network_spikes_are_binary_and_training_lowers_the_loss(nmnist_dir):
    from bench.exp_data import load_nmnist_rasters

    rasters, labels = load_nmnist_rasters(nmnist_dir, "Train", limit=64, seed=0)
    cfg = BPTTConfig(layer_sizes=(2312, 100, 10), batch_size=32, lr=1e-3, seed=1)
    net = BPTTLearner(cfg)
    x = net._inputs(rasters)
    recs = forward(net.weights, net.biases, x, net.params)
    assert all(set(np.unique(r.s)) <= {0.0, 1.0} for r in recs)
    before, *_ = loss_and_grads(net.weights, net.biases, x, labels, net.params)
    for _ in range(6):
        for i in range(0, 64, 32):
            net.train_batch(rasters[i : i + 32], labels[i : i + 32])
    after, *_ = loss_and_grads(net.weights, net.biases, x, labels, net.params)
    assert after < before - 0.05, (before, after)


def test_same_network_as_biograd_on_real_samples(nmnist_dir):
    """Same neurons and binning: given BioGrad's weights, BPTT's step forward pass gives
    BioGrad's output spike counts (float64, so summation order cannot flip a spike)."""
    from dataclasses import replace

    from bench.exp_data import load_nmnist_rasters
    from biograd.learner.config import NMNIST_LEARNER
    from biograd.learner.network import BioGradLearner

    rasters, _ = load_nmnist_rasters(nmnist_dir, "Test", limit=8, seed=2)
    bio = BioGradLearner(replace(NMNIST_LEARNER, dtype="float64", seed=4))
    # Biases up so the untrained net actually spikes in every layer.
    for b in bio.biases:
        b += 0.15
    net = BPTTLearner(BPTTConfig.from_learner(bio.config))
    net.weights = [np.array(w) for w in bio.weights]
    net.biases = [np.array(b) for b in bio.biases]
    _, counts = net.predict_batch(rasters)
    expected = np.array([bio.predict(r)[1] for r in rasters])
    assert expected.sum() > 0
    np.testing.assert_array_equal(counts, expected)
