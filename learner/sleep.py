"""The sleep phase (algorithm doc §5) and feedback-alignment diagnostics, as pure functions.

One sleep phase learns every direct-feedback matrix B_l (N_l × N_out) from noise, top-down
(l = L … 1). One rate r ~ U(0, 1) per phase; for hidden layer l, M_s noise samples of T_s
steps: ξ⁺, ξ⁻ ~ Bernoulli(r) on layer l; the layer directly above gets W_{l+1}(ξ⁺ - ξ⁻)
(no bias: it cancels), layers further up run test-mode dynamics with bias, all starting from
reset state. With h = Σ_t (ξ⁺ - ξ⁻) (N_l) and n = Σ_t s_out (N_out) per noise sample:

    B_l += η_s (Σ_m h_m n_mᵀ - mean_m(n_m²) ⊙ B_l)      (summed Hebbian, averaged decay)

Sleep never changes W or b. The random draws are made by :func:`draw_sleep_noise` (the rate
and one noise key per layer) and passed in, so :func:`sleep_feedback` is a pure function of
arrays; the noise itself is a counter-based stream of the key
(:mod:`biograd.learner.sleep_kernels`), drawn inside the parallel kernel.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from biograd.learner import sleep_kernels
from biograd.learner.state import Layer


def draw_sleep_noise(
    rng: np.random.Generator, sizes: Sequence[int], m_s: int, t_s: int
) -> tuple[float, dict[int, int]]:
    """(rate r, {hidden layer l: noise key}), drawn top-down from ``rng``.

    Layer l's uniforms (T_s, M_s, N_l) are ``sleep_kernels.noise_uniforms(key, t_s, m_s, N_l)``.
    """
    rate = float(rng.random())
    n_layers = len(sizes) - 1
    keys = {}
    for l in range(n_layers - 2, -1, -1):
        keys[l] = int(rng.integers(0, 2**63, dtype=np.int64))
    return rate, keys


def sleep_statistics(
    layers: Sequence[Layer], l: int, rate: float, key: int, m_s: int, t_s: int
) -> tuple[np.ndarray, np.ndarray]:
    """(h, n) of hidden layer l's noise phase: h[m] = Σ_t (ξ⁺ - ξ⁻) (M_s × N_l) and
    n[m] = Σ_t s_out (M_s × N_out), noise samples in parallel."""
    dt = layers[0].wt.dtype
    upper = layers[l + 1 :]
    h = np.empty((m_s, layers[l].wt.shape[1]), dtype=dt)
    n = np.empty((m_s, layers[-1].wt.shape[1]), dtype=dt)
    n_l = h.shape[1]

    def per_layer() -> tuple[np.ndarray, ...]:
        return tuple(np.empty((m_s, lay.wt.shape[1]), dtype=dt) for lay in upper)

    sleep_kernels.sleep_statistics(
        np.uint64(key),
        np.float32(rate * (1.0 - rate)),
        t_s,
        tuple(lay.wt for lay in upper),
        tuple(lay.b for lay in upper),
        np.array([lay.params.vdecay for lay in upper], dtype=dt),
        np.array([lay.params.vth for lay in upper], dtype=dt),
        per_layer(),
        per_layer(),
        per_layer(),
        np.empty((m_s, n_l), dtype=np.int64),
        np.empty((m_s, n_l), dtype=dt),
        np.empty((m_s, n_l), dtype=np.float32),
        h,
        n,
    )
    return h, n


def sleep_feedback(
    layers: Sequence[Layer],
    feedback: Sequence[np.ndarray],
    rate: float,
    keys: dict[int, int],
    sleep_lr: float,
    m_s: int,
    t_s: int,
) -> list[np.ndarray]:
    """The feedback matrices after one sleep phase (new arrays; the inputs are not changed).

    ``keys[l]`` is hidden layer l's noise key (:func:`draw_sleep_noise`), M_s noise samples of
    T_s steps each. Only ξ⁺ - ξ⁻ is used: for independent Bernoulli(r) spikes it is +1 and -1
    with probability r(1 - r) each, else 0, so one uniform per entry draws it.
    """
    new = [np.array(b, copy=True) for b in feedback]
    for l in range(len(layers) - 2, -1, -1):
        h, n = sleep_statistics(layers, l, rate, keys[l], m_s, t_s)
        n64 = n.astype(np.float64)
        hebb = h.T.astype(np.float64) @ n64
        decay = np.mean(n64**2, axis=0)
        b = new[l]
        b += (sleep_lr * (hebb - decay[None, :] * b)).astype(b.dtype)
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
