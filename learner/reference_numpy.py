"""Plain NumPy BioGrad with the reference's per-synapse traces: the benchmark baseline.

This is the implementation a user would write from the paper: dense time-stepped
vectors, matrix-vector products for the currents, and per-synapse traces
P, R, E (N_l × N_{l-1} each) updated every step:

    P = λ R + s_in(t)[None, :];  E += ψ(t)[:, None] P;  R = P κ(t)[:, None]

It computes the same numbers as the Numba engines (tests/learner check that) and
exists to measure their speed-up in ``bench/learner.py``; it has no sleep phase,
no checkpoints and no input checks.
"""

from __future__ import annotations

import numpy as np

from biograd.learner.config import LearnerConfig


class NumpyReferenceLearner:
    """Weights are copied from arrays given as W_l (N_l, N_{l-1}), b_l, B_l (N_l, 10)."""

    def __init__(self, config: LearnerConfig, weights, biases, feedback):
        self.config = config
        dt = np.dtype(config.dtype)
        self.weights = [np.array(w, dtype=dt) for w in weights]
        self.biases = [np.array(b, dtype=dt) for b in biases]
        self.feedback = [np.array(b, dtype=dt) for b in feedback]
        self.params = [
            tuple(config.layer_param(n, l) for n in ("vdecay", "vth", "grad_win", "grad_amp"))
            for l in range(config.n_layers)
        ]
        self.grad_w = [np.zeros_like(w) for w in self.weights]
        self.grad_b = [np.zeros_like(b) for b in self.biases]
        self.batch_fill = 0

    def _forward(self, dense, traces: bool):
        """Run all T steps; returns (output spikes (T, 10), [(E, E_b) per layer] or None)."""
        dt = self.weights[0].dtype
        n_layers = len(self.weights)
        v = [np.zeros(w.shape[0], dtype=dt) for w in self.weights]
        s = [np.zeros(w.shape[0], dtype=dt) for w in self.weights]
        if traces:
            r = [np.zeros_like(w) for w in self.weights]
            e = [np.zeros_like(w) for w in self.weights]
            rb = [np.zeros_like(b) for b in self.biases]
            eb = [np.zeros_like(b) for b in self.biases]
        out = np.zeros((dense.shape[0], self.weights[-1].shape[0]), dtype=dt)
        for t in range(dense.shape[0]):
            s_in = dense[t].astype(dt)
            for l in range(n_layers):
                lam, th, win, amp = self.params[l]
                v[l] = lam * v[l] * (1.0 - s[l]) + (self.weights[l] @ s_in + self.biases[l])
                s[l] = (v[l] > th).astype(dt)
                if traces:
                    psi = amp * (np.abs(v[l] - th) < win).astype(dt)
                    kappa = 1.0 - s[l] - v[l] * psi
                    p = lam * r[l] + s_in[None, :]
                    e[l] += psi[:, None] * p
                    r[l] = p * kappa[:, None]
                    pb = lam * rb[l] + 1.0
                    eb[l] += psi * pb
                    rb[l] = pb * kappa
                s_in = s[l]
            out[t] = s[-1]
        return out, (list(zip(e, eb)) if traces else None)

    def predict(self, dense) -> tuple[int, np.ndarray]:
        out, _ = self._forward(np.asarray(dense), traces=False)
        counts = out.sum(axis=0).astype(np.int64)
        return int(np.argmax(counts)), counts

    def train_sample(self, dense, label: int) -> tuple[int, np.ndarray]:
        """Forward with traces, error phase, accumulate δ·E; SGD step every batch_size samples."""
        cfg = self.config
        out, elig = self._forward(np.asarray(dense), traces=True)
        n_out = out.shape[1]
        c = np.zeros(n_out)
        a_pos, a_neg = np.zeros(n_out), np.zeros(n_out)
        z_pos, z_neg = np.zeros(n_out), np.zeros(n_out)
        d_out = np.zeros(n_out)
        for t in range(out.shape[0]):
            c += out[t]
            if t < cfg.error_start:
                continue
            ex = np.exp(c - c.max())
            err = ex / ex.sum()
            err[label] -= 1.0
            a_pos = a_pos - z_pos + err
            a_neg = a_neg - z_neg - err
            z_pos = (a_pos > 1.0).astype(float)
            z_neg = (a_neg > 1.0).astype(float)
            d_out += z_pos - z_neg
        k = cfg.timesteps - cfg.error_start
        deltas = [b.astype(np.float64) @ d_out / k for b in self.feedback] + [d_out / k]
        for l, ((e, eb), d) in enumerate(zip(elig, deltas)):
            d = d.astype(e.dtype)
            self.grad_w[l] += d[:, None] * e
            self.grad_b[l] += d * eb
        self.batch_fill += 1
        if self.batch_fill >= cfg.batch_size:
            scale = cfg.lr / self.batch_fill
            for w, gw, b, gb in zip(self.weights, self.grad_w, self.biases, self.grad_b):
                w -= (scale * gw).astype(w.dtype)
                b -= (scale * gb).astype(b.dtype)
                gw[:] = 0
                gb[:] = 0
            self.batch_fill = 0
        counts = c.astype(np.int64)
        return int(np.argmax(counts)), counts
