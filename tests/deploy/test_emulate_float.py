"""The float departure emulation's eligibility against the per-synapse trace recursion."""

import numpy as np

from biograd.deploy.emulate_float import _eligibility_rows, _forward


def _synapse_form(x, v, s, psi, lam, kappa_on):
    """E_ij by docs/biograd-algorithm.md §2: P = μ R + s_j, E += ψ_i P, R = P κ_i."""
    T, n_in = x.shape
    n = v.shape[1]
    P = np.zeros((n, n_in))
    R = np.zeros((n, n_in))
    E = np.zeros((n, n_in))
    for t in range(T):
        P = lam * R + x[t][None, :]
        E += psi[t][:, None] * P
        kappa = (1 - s[t] - v[t] * psi[t]) if kappa_on else np.ones(n)
        R = P * kappa[:, None]
    return E


def _layer(seed):
    rng = np.random.default_rng(seed)
    T, n_in, n = 12, 9, 7
    x = (rng.random((T, n_in)) < 0.4).astype(np.uint8)
    wt = rng.normal(0, 0.4, (n_in, n))
    b = rng.normal(0, 0.1, n)
    v, s, psi = np.zeros((T, n)), np.zeros((T, n), dtype=np.uint8), np.zeros((T, n))
    _forward(wt, b, 0.3, 0.3, 0.3, 1.0, x, v, s, psi)
    return x, v, s, psi


def test_event_form_equals_synapse_form_exact_and_pre_trace():
    for seed in range(5):
        x, v, s, psi = _layer(seed)
        assert psi.any() and ((1 - s - v * psi) < 0).any()  # steps with κ < 0 occur
        for kappa_on, mu in ((True, 0.3), (False, 0.3), (False, np.exp(-1))):
            g = np.zeros_like(v)
            _eligibility_rows(v, s.astype(np.float64), psi, mu, kappa_on, g)
            E_event = g.T @ x.astype(np.float64)
            np.testing.assert_allclose(E_event, _synapse_form(x, v, s, psi, mu, kappa_on), atol=1e-12)


def test_pre_trace_differs_from_exact_rule():
    x, v, s, psi = _layer(1)
    g1, g2 = np.zeros_like(v), np.zeros_like(v)
    _eligibility_rows(v, s.astype(np.float64), psi, 0.3, True, g1)
    _eligibility_rows(v, s.astype(np.float64), psi, 0.3, False, g2)
    assert not np.allclose(g1, g2)
