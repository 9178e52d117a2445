"""Float emulation of BioGrad batch-1 learning with each on-chip departure as a switch.

Used to measure what each departure of the on-chip rule (deploy/onchip.py) costs, one at
a time, against the exact algorithm (batch size 1, feedback B fixed — the on-chip setting).
The eligibility uses the exact event form of docs/biograd-algorithm.md §2:

    g_i(T-1) = ψ_i(T-1),  g_i(t) = ψ_i(t) + μ κ_i(t) g_i(t+1),  E_ij = Σ_t g_i(t) s_j(t)

with μ = λ and κ = 1 - s - v ψ for the exact rule. Switches:

* ``kappa=False`` — per-input pre trace P_j = μ P_j + s_j (the chip's x-trace): κ ≡ 1;
* ``decay`` — μ = ρ = e^{-1/τ} instead of λ (the chip's integer time constant);
* ``quantize`` — weights on the chip's 9-bit grid (w_lsb) with stochastic rounding of each
  update, tags as integers ρ I E clipped to -257..255, third factor δ rounded to 1/S_δ in
  -63..63 (an approximation of the integer engine; the integer-exact one is OnChipEmulator);
* ``learn_bias=False`` — biases frozen (Loihi biases are neuron parameters).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from biograd.deploy.fixed_point import TAG_MAX, TAG_MIN, THIRD_FACTOR_MAX, W_LEARN_MAX, W_LEARN_MIN, W_MANT_MIN
from biograd.deploy.params import NetworkParams
from biograd.deploy.plan import default_delta_scale
from biograd.deploy.quantize import quantize_weights

# float copies for the Numba kernels (the on-chip weight and tag ranges)
_TAG_LO, _TAG_HI = float(TAG_MIN), float(TAG_MAX)
_W_LO, _W_HI = float(W_LEARN_MIN), float(W_LEARN_MAX)


@dataclass(frozen=True)
class Departures:
    kappa: bool = True
    decay: float | None = None  # None: λ
    quantize: bool = False
    learn_bias: bool = True


@njit(cache=True)
def _forward(wt, b, lam, th, win, amp, x, v, s, psi):
    """x (T, N_in) 0/1 → v, s, ψ (T, N); wt is W transposed (N_in, N)."""
    T, n_in = x.shape
    n = b.shape[0]
    for t in range(T):
        for i in range(n):
            acc = b[i]
            if t > 0 and s[t - 1, i] == 0:
                acc += lam * v[t - 1, i]
            v[t, i] = acc
        for j in range(n_in):
            if x[t, j] != 0:
                for i in range(n):
                    v[t, i] += wt[j, i]
        for i in range(n):
            s[t, i] = 1 if v[t, i] > th else 0
            psi[t, i] = amp if abs(v[t, i] - th) < win else 0.0


@njit(cache=True)
def _eligibility_rows(v, s, psi, mu, kappa, g):
    T, n = v.shape
    for i in range(n):
        g[T - 1, i] = psi[T - 1, i]
    for t in range(T - 2, -1, -1):
        for i in range(n):
            k = 1.0 - s[t, i] - v[t, i] * psi[t, i] if kappa else 1.0
            g[t, i] = psi[t, i] + mu * k * g[t + 1, i]


@njit(cache=True)
def _error(out_s, label, te):
    """Σ_t (z⁺ - z⁻) of BioGrad's error interneurons (float softmax of running counts)."""
    T, n = out_s.shape
    c = np.zeros(n)
    ap = np.zeros(n)
    an = np.zeros(n)
    zp = np.zeros(n)
    zn = np.zeros(n)
    tot = np.zeros(n)
    for t in range(T):
        for i in range(n):
            c[i] += out_s[t, i]
        if t >= te:
            m = c.max()
            e = np.exp(c - m)
            e /= e.sum()
            e[label] -= 1.0
            for i in range(n):
                ap[i] = ap[i] - zp[i] + e[i]
                an[i] = an[i] - zn[i] - e[i]
                zp[i] = 1.0 if ap[i] > 1.0 else 0.0
                zn[i] = 1.0 if an[i] > 1.0 else 0.0
                tot[i] += zp[i] - zn[i]
    return tot


@njit(cache=True)
def _update(wt, b, g, x, delta, lr, learn_bias, quantize, tag_scale, w_lsb):
    """W -= lr δ_i E_ij, b -= lr δ_i Σ_t g_i; with quantize, tags and weights in chip integers."""
    T, n_in = x.shape
    n = b.shape[0]
    e_row = np.zeros(n)
    for j in range(n_in):
        for i in range(n):
            e_row[i] = 0.0
        hit = False
        for t in range(T):
            if x[t, j] != 0:
                hit = True
                for i in range(n):
                    e_row[i] += g[t, i]
        if not hit:
            continue
        for i in range(n):
            e = e_row[i]
            if quantize:
                e = min(max(np.round(e * tag_scale), _TAG_LO), _TAG_HI) / tag_scale
                step = -lr * delta[i] * e / w_lsb
                fl = np.floor(step)
                step = fl + (1.0 if np.random.random() < step - fl else 0.0)
                w = np.round(wt[j, i] / w_lsb) + step
                wt[j, i] = min(max(w, _W_LO), _W_HI) * w_lsb
            else:
                wt[j, i] -= lr * delta[i] * e
    if learn_bias:
        for i in range(n):
            acc = 0.0
            for t in range(T):
                acc += g[t, i]
            b[i] -= lr * delta[i] * acc


@njit(cache=True)
def _seed(seed):
    np.random.seed(seed)


class FloatEmulator:
    """Batch-1 BioGrad with departure switches; see the module docstring."""

    def __init__(
        self,
        params: NetworkParams,
        lr: float | tuple[float, ...],
        departures: Departures = Departures(),
        w_lsb: float = 2.0**-11,
        impulse: int = 16,
        tau: int = 1,
        delta_scale: tuple[float, ...] = (),
        seed: int = 0,
    ):
        self.p = params
        lrs = tuple(lr) if isinstance(lr, (tuple, list)) else (lr,) * params.n_layers
        self.lr, self.dep = lrs, departures
        self.w_lsb, self.delta_scale = w_lsb, tuple(delta_scale) or default_delta_scale(params.n_layers)
        self.tag_scale = float(np.exp(-1.0 / tau)) * impulse
        self.mu = [
            departures.decay if departures.decay is not None else params.vdecay[l] for l in range(params.n_layers)
        ]
        self.wt = [np.ascontiguousarray(w.T.copy()) for w in params.weights]
        if departures.quantize:
            for wt in self.wt:
                wt[...] = quantize_weights(wt, w_lsb, lo=W_MANT_MIN) * w_lsb
        self.b = [b.copy() for b in params.biases]
        self.B = [b.copy() for b in params.feedback]
        _seed(seed)  # Numba's own generator draws the stochastic-rounding numbers

    def _forward(self, x):
        p, T = self.p, self.p.timesteps
        rec = []
        for l in range(p.n_layers):
            n = self.b[l].shape[0]
            v, s, psi = np.zeros((T, n)), np.zeros((T, n), dtype=np.uint8), np.zeros((T, n))
            _forward(self.wt[l], self.b[l], p.vdecay[l], p.vth[l], p.grad_win[l], p.grad_amp[l], x, v, s, psi)
            rec.append((x, v, s, psi))
            x = s
        return rec

    def predict(self, x: np.ndarray) -> int:
        return int(np.argmax(self._forward(x)[-1][2].sum(axis=0)))

    def train_sample(self, x: np.ndarray, label: int) -> int:
        """x: (T, N_in) 0/1 uint8. Returns the training prediction."""
        p = self.p
        rec = self._forward(x)
        out_s = rec[-1][2]
        pred = int(np.argmax(out_s.sum(axis=0)))
        n_err = _error(out_s.astype(np.float64), label, p.error_start)
        K = p.timesteps - p.error_start
        for l in range(p.n_layers):
            delta = (n_err if l == p.n_layers - 1 else self.B[l] @ n_err) / K
            if self.dep.quantize:
                ds = self.delta_scale[0] if len(self.delta_scale) == 1 else self.delta_scale[l]
                delta = np.clip(np.round(delta * ds), -THIRD_FACTOR_MAX, THIRD_FACTOR_MAX) / ds
            xin, v, s, psi = rec[l]
            g = np.zeros_like(v)
            _eligibility_rows(v, s.astype(np.float64), psi, self.mu[l], self.dep.kappa, g)
            _update(
                self.wt[l],
                self.b[l],
                g,
                xin,
                delta,
                self.lr[l],
                self.dep.learn_bias,
                self.dep.quantize,
                self.tag_scale,
                self.w_lsb,
            )
        return pred
