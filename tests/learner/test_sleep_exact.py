"""sleep() against a direct loop written from the algorithm doc §5 (float64, same random draws).

The loop below is written from the text, not from learner/sleep.py: per noise sample and step,
the layer directly above l gets W_{l+1}(ξ⁺ - ξ⁻) without bias, layers further up run with bias,
every layer leaks with v = λ v (1 - s) + I, all layers above l start from reset, and
B_l += η_s (Σ_m h nᵀ - mean_m(n²) B_l), hidden layers top-down (l = L … 1) with the noise drawn
in that order. It fails if the decay term is dropped, the bias is added to the layer above, the
leak reset is skipped or the layers run bottom-up (each mutation is checked below).
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest

from biograd.learner import sleep as sleep_mod
from biograd.learner import sleep_kernels
from biograd.learner.config import LearnerConfig
from biograd.learner.network import BioGradLearner

CFG = LearnerConfig(
    layer_sizes=(8, 9, 7, 6, 10),  # three hidden layers: "layers further up" exist for l = 1 … 2
    vdecay=(0.3, 0.5, 0.4, 0.6),
    vth=(0.3, 0.25, 0.35, 0.3),
    timesteps=5,
    error_start=1,
    dtype="float64",
    feedback_init="random",
    sleep_noise_samples=6,
    sleep_steps=9,
    sleep_lr=0.01,
    seed=11,
)


def _bernoulli_difference(u, rate):
    """ξ⁺ - ξ⁻ for independent Bernoulli(r) spikes from one uniform per entry: +1 and -1 with
    probability r(1 - r) each (the implementation's draw, checked statistically below)."""
    q = rate * (1 - rate)
    return np.where(u < q, 1.0, np.where(u >= 1 - q, -1.0, 0.0))


def reference_sleep(weights, biases, feedback, params, rng, m_s, t_s, eta, mutation=None):
    """§5 as a plain loop over noise samples and steps. weights[k]: (N_{k+1}, N_k)."""
    n_layers = len(weights)
    feedback = [b.copy() for b in feedback]
    rate = rng.random()
    order = range(n_layers - 2, -1, -1) if mutation != "bottom_up" else range(n_layers - 1)
    for l in order:
        n_l = weights[l].shape[0]
        key = int(rng.integers(0, 2**63, dtype=np.int64))
        u = sleep_kernels.noise_uniforms(np.uint64(key), t_s, m_s, n_l)
        xi = _bernoulli_difference(u.astype(np.float64), rate)
        h_all, n_all = [], []
        for m in range(m_s):
            v = [np.zeros(weights[k].shape[0]) for k in range(n_layers)]  # reset above l
            s = [np.zeros(weights[k].shape[0]) for k in range(n_layers)]
            h = np.zeros(n_l)
            n = np.zeros(weights[-1].shape[0])
            for t in range(t_s):
                x = xi[t, m]
                h += x
                below = x
                for k in range(l + 1, n_layers):
                    lam, th = params[k]
                    current = weights[k] @ below
                    if k > l + 1 or mutation == "bias_above":
                        current = current + biases[k]
                    keep = 1.0 if mutation == "no_reset" else (1.0 - s[k])
                    v[k] = lam * v[k] * keep + current
                    s[k] = (v[k] > th).astype(float)
                    below = s[k]
                n += s[-1]
            h_all.append(h)
            n_all.append(n)
        h_all, n_all = np.array(h_all), np.array(n_all)
        hebb = sum(np.outer(h_all[m], n_all[m]) for m in range(m_s))
        decay = np.mean(n_all**2, axis=0)
        if mutation == "no_decay":
            decay = decay * 0
        feedback[l] = feedback[l] + eta * (hebb - decay[None, :] * feedback[l])
    return feedback


def _strong_learner():
    """Weights scaled up so every layer above the noise spikes often (resets and outputs happen)."""
    learner = BioGradLearner(CFG)
    for w in learner.weights:
        w *= 4.0
    return learner


def _reference_for(learner, mutation=None):
    cfg = learner.config
    params = [(cfg.layer_param("vdecay", k), cfg.layer_param("vth", k)) for k in range(cfg.n_layers)]
    return reference_sleep(
        [np.array(w) for w in learner.weights],
        [np.array(b) for b in learner.biases],
        learner.feedback,
        params,
        copy.deepcopy(learner.rng),
        cfg.sleep_noise_samples,
        cfg.sleep_steps,
        cfg.sleep_lr,
        mutation,
    )


def test_sleep_equals_the_direct_loop_of_the_algorithm():
    learner = _strong_learner()
    for _ in range(3):  # three phases: the rate and the noise differ each time
        expected = _reference_for(learner)
        w = [x.copy() for x in learner.weights]
        learner.sleep()
        for l, (got, want) in enumerate(zip(learner.feedback, expected)):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=f"B{l}")
        for a, b in zip(w, learner.weights):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("mutation", ["no_decay", "bias_above", "no_reset", "bottom_up"])
def test_each_mutation_of_the_rule_is_detected(mutation):
    """The reference with one of the four mistakes differs from sleep(): the exact test would catch it."""
    learner = _strong_learner()
    good = _reference_for(learner)
    bad = _reference_for(learner, mutation)
    diff = max(float(np.max(np.abs(g - b))) for g, b in zip(good, bad))
    scale = max(float(np.max(np.abs(g - f))) for g, f in zip(good, learner.feedback))
    assert diff > 1e-3 * scale, (mutation, diff, scale)
    learner.sleep()
    assert any(not np.allclose(f, b, rtol=1e-10, atol=1e-12) for f, b in zip(learner.feedback, bad))


def test_layers_above_the_noise_spike_and_reset_in_the_test_network():
    """Guards the mutation test: without spikes above l, the reset and bias mutations would be invisible."""
    learner = _strong_learner()
    rate, keys = sleep_mod.draw_sleep_noise(copy.deepcopy(learner.rng), CFG.layer_sizes, 6, 9)
    new = sleep_mod.sleep_feedback(learner.layers, learner.feedback, rate, keys, CFG.sleep_lr, 6, 9)
    assert all(not np.array_equal(a, b) for a, b in zip(new, learner.feedback))


def test_sleep_noise_has_the_bernoulli_difference_distribution():
    """The counter-based uniforms are uniform and independent across entries and keys, and the
    kernel's h is Σ_t of their ternary map (+1 below r(1 - r), -1 at or above 1 - r(1 - r))."""
    rate = 0.3
    q = rate * (1 - rate)
    u = sleep_kernels.noise_uniforms(np.uint64(12345), 200, 50, 40)
    assert u.dtype == np.float32 and u.min() >= 0.0 and u.max() < 1.0
    flat = u.ravel().astype(np.float64)
    counts = np.histogram(flat, bins=20, range=(0, 1))[0]
    expected = flat.size / 20
    chi2 = float(np.sum((counts - expected) ** 2 / expected))
    assert chi2 < 45.0, chi2  # 19 degrees of freedom: p < 0.001 beyond 43.8
    assert abs(np.corrcoef(flat[:-1], flat[1:])[0, 1]) < 0.01  # neighbouring entries
    other = sleep_kernels.noise_uniforms(np.uint64(12346), 200, 50, 40).ravel().astype(np.float64)
    assert abs(np.corrcoef(flat, other)[0, 1]) < 0.01  # neighbouring keys
    xi = _bernoulli_difference(flat, rate)
    for value, p in ((1.0, q), (-1.0, q), (0.0, 1 - 2 * q)):
        freq = float(np.mean(xi == value))
        assert abs(freq - p) < 4 * np.sqrt(p * (1 - p) / xi.size), (value, freq, p)
    learner = _strong_learner()
    h, _ = sleep_mod.sleep_statistics(learner.layers, 2, rate, 12345, 50, 200)
    # hidden layer 2 has N_l = 6 units: the kernel's stream laid out (T_s, M_s, 6)
    u6 = sleep_kernels.noise_uniforms(np.uint64(12345), 200, 50, CFG.layer_sizes[3])
    want = _bernoulli_difference(u6.astype(np.float64), rate).sum(axis=0)
    np.testing.assert_array_equal(h, want)


def test_sleep_result_does_not_depend_on_the_thread_count():
    import numba

    learner = _strong_learner()
    rate, keys = sleep_mod.draw_sleep_noise(np.random.default_rng(2), CFG.layer_sizes, 6, 9)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = sleep_mod.sleep_feedback(learner.layers, learner.feedback, rate, keys, CFG.sleep_lr, 6, 9)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        every = sleep_mod.sleep_feedback(learner.layers, learner.feedback, rate, keys, CFG.sleep_lr, 6, 9)
    finally:
        numba.set_num_threads(before)
    for a, b in zip(one, every):
        np.testing.assert_array_equal(a, b)


def test_sleep_is_a_pure_function():
    learner = _strong_learner()
    fb = [b.copy() for b in learner.feedback]
    w = [lay.wt.copy() for lay in learner.layers]
    rate, keys = sleep_mod.draw_sleep_noise(np.random.default_rng(1), CFG.layer_sizes, 6, 9)
    first = sleep_mod.sleep_feedback(learner.layers, learner.feedback, rate, keys, CFG.sleep_lr, 6, 9)
    second = sleep_mod.sleep_feedback(learner.layers, learner.feedback, rate, keys, CFG.sleep_lr, 6, 9)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    for a, c in zip(learner.feedback, fb):
        np.testing.assert_array_equal(a, c)
    for lay, c in zip(learner.layers, w):
        np.testing.assert_array_equal(lay.wt, c)


def test_sleep_lr_scales_the_change():
    a = _strong_learner()
    b = BioGradLearner(replace(CFG, sleep_lr=CFG.sleep_lr / 2))
    for w, wa in zip(b.weights, a.weights):
        w[...] = wa
    fb0 = [x.copy() for x in a.feedback]
    a.sleep()
    b.sleep()
    for x, y, z in zip(a.feedback, b.feedback, fb0):
        np.testing.assert_allclose(y - z, (x - z) / 2, rtol=1e-9, atol=1e-14)
