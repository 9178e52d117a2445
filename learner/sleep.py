"""The sleep phase (algorithm doc §5) and feedback-alignment diagnostics, as pure functions.

One sleep phase learns every direct-feedback matrix B_l (N_l × N_out) from noise, top-down
(l = L … 1). One rate r ~ U(0, 1) per phase; for hidden layer l, M_s noise samples of T_s
steps: ξ⁺, ξ⁻ ~ Bernoulli(r) on layer l; the layer directly above gets W_{l+1}(ξ⁺ - ξ⁻)
(no bias: it cancels), layers further up run test-mode dynamics with bias, all starting from
reset state. With h = Σ_t (ξ⁺ - ξ⁻) (N_l) and n = Σ_t s_out (N_out) per noise sample:

    B_l += η_s (Σ_m h_m n_mᵀ - mean_m(n_m²) ⊙ B_l)      (summed Hebbian, averaged decay)

Sleep never changes W or b. The random draws are made by :func:`draw_sleep_noise` and passed
in, so :func:`sleep_feedback` is a pure function of arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from biograd.learner import kernels
from biograd.learner.state import Layer


def draw_sleep_noise(
    rng: np.random.Generator, sizes: Sequence[int], m_s: int, t_s: int
) -> tuple[float, dict[int, np.ndarray]]:
    """(rate r, {hidden layer l: uniforms (T_s, M_s, N_l) float32}), drawn top-down from ``rng``."""
    rate = float(rng.random())
    n_layers = len(sizes) - 1
    uniforms = {}
    for l in range(n_layers - 2, -1, -1):
        uniforms[l] = rng.random((t_s, m_s, sizes[l + 1]), dtype=np.float32)
    return rate, uniforms


def sleep_feedback(
    layers: Sequence[Layer],
    feedback: Sequence[np.ndarray],
    rate: float,
    uniforms: dict[int, np.ndarray],
    sleep_lr: float,
) -> list[np.ndarray]:
    """The feedback matrices after one sleep phase (new arrays; the inputs are not changed).

    ``uniforms[l]`` holds U(0,1) draws (T_s, M_s, N_l) for hidden layer l. Only ξ⁺ - ξ⁻ is
    used, and for independent Bernoulli(r) spikes it is +1 and -1 with probability r(1 - r)
    each, else 0: one uniform per entry draws it. Dense work, vectorised over the M_s noise
    samples (BLAS).
    """
    n_layers = len(layers)
    dt = layers[0].wt.dtype
    q = rate * (1.0 - rate)
    new = [np.array(b, copy=True) for b in feedback]
    for l in range(n_layers - 2, -1, -1):
        u = uniforms[l]
        t_s, m_s, n_l = u.shape
        xi = np.empty((t_s, m_s, n_l), dtype=dt)
        h = np.empty((m_s, n_l), dtype=dt)
        kernels.ternary_noise(u, np.float32(q), xi, h)
        # the layer above l, for all steps and noise samples in one BLAS call (no bias)
        above = (xi.reshape(t_s * m_s, n_l) @ layers[l + 1].wt).reshape(t_s, m_s, -1)
        upper = layers[l + 1 :]
        v = [np.zeros((m_s, lay.wt.shape[1]), dtype=dt) for lay in upper]
        s = [np.zeros((m_s, lay.wt.shape[1]), dtype=dt) for lay in upper]
        n = np.zeros((m_s, layers[-1].wt.shape[1]), dtype=dt)
        for t in range(t_s):
            for pos, lay in enumerate(upper):
                lam, th = lay.params.vdecay, lay.params.vth
                current = above[t] if pos == 0 else s[pos - 1] @ lay.wt + lay.b
                v[pos] *= lam * (1.0 - s[pos])
                v[pos] += current
                s[pos] = (v[pos] > th).astype(dt)
            n += s[-1]
        b = new[l]
        hebb = h.T.astype(np.float64) @ n.astype(np.float64)
        decay = np.mean(n.astype(np.float64) ** 2, axis=0)
        b += (sleep_lr * (hebb - decay[None, :] * b)).astype(dt)
    return new


def mirror(layers: Sequence[Layer], l: int) -> np.ndarray:
    """(W_out … W_{l+1})^T of shape (N_l, N_out) for hidden layer l, in float64."""
    prod = np.array(layers[-1].wt, dtype=np.float64)  # (N_L, N_out) = W_out^T, a copy
    for k in range(len(layers) - 2, l, -1):
        prod = np.asarray(layers[k].wt, dtype=np.float64) @ prod
    return prod


def feedback_alignment(layers: Sequence[Layer], feedback: Sequence[np.ndarray]) -> list[tuple[float, float]]:
    """Per hidden layer: (angle in degrees, ‖B_l‖ / ‖(W_out…W_{l+1})^T‖)."""
    out = []
    for l, b in enumerate(feedback):
        m = mirror(layers, l)
        b64 = np.asarray(b, dtype=np.float64)
        nb, nm = np.linalg.norm(b64), np.linalg.norm(m)
        if nb == 0.0 or nm == 0.0:
            out.append((90.0, float(nb / nm) if nm else float("inf")))
            continue
        cos = float(np.clip(np.sum(b64 * m) / (nb * nm), -1.0, 1.0))
        out.append((float(np.degrees(np.arccos(cos))), float(nb / nm)))
    return out


def init_feedback(layers: Sequence[Layer], init: str, rng: np.random.Generator) -> list[np.ndarray]:
    """B_l for every hidden layer: the exact mirror, or a random direction with the mirror's norm."""
    dt = layers[0].wt.dtype
    out = []
    for l in range(len(layers) - 1):
        m = mirror(layers, l)
        if init == "mirror":
            b = m
        else:
            # Random direction, the mirror's Frobenius norm: only the angle starts wrong.
            b = rng.standard_normal(m.shape)
            b *= np.linalg.norm(m) / np.linalg.norm(b)
        # a copy: in float64 the top layer's mirror is W_out^T itself
        out.append(np.array(b, dtype=dt, order="C", copy=True))
    return out
