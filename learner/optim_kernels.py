"""Numba kernels of the adaptive optimizers: pure functions over the transposed weight storage.

Rows are presynaptic inputs (``wt``/``gwt`` of shape (N_in, N_out)); a step visits only the
rows listed in ``rows[:n_rows]`` (those that received a gradient since the last step) and
clears them, so a streaming step costs O(active inputs · N_out), not O(N_in · N_out).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def adaptive_rows(wt, gwt, m, v, last, touched, rows, n_rows, lr, inv_n, beta1, beta2, eps, t, adam):
    """Per-synapse RMSprop (``adam`` False) or Adam (True) step ``t`` (1-based) on the listed rows.

    With g = gwt · inv_n (the batch mean) and d = t - 1 - last[j] the steps row j skipped:
      m ← β1 (β1^d m) + (1 - β1) g;  v ← β2 (β2^d v) + (1 - β2) g²
      Adam:    w -= lr · (m / (1 - β1^t)) / (sqrt(v / (1 - β2^t)) + eps)
      RMSprop: w -= lr · g / (sqrt(v) + eps)
    The β^d factors apply the decay of the skipped zero-gradient steps in one multiplication
    (the moments then equal the dense rule's); Adam's weight moves of the skipped steps
    (from the decaying momentum) are not applied — the lazy rule's only difference.
    ``m`` is not read for RMSprop (pass any 2-D array).
    """
    n = wt.shape[1]
    c1 = 1.0 - beta1**t
    c2 = 1.0 - beta2**t
    for r in range(n_rows):
        j = rows[r]
        gap = t - 1 - last[j]
        d2 = beta2**gap
        w = wt[j]
        g = gwt[j]
        vr = v[j]
        if adam:
            d1 = beta1**gap
            mr = m[j]
            for i in range(n):
                gi = g[i] * inv_n
                mi = beta1 * (d1 * mr[i]) + (1.0 - beta1) * gi
                vi = beta2 * (d2 * vr[i]) + (1.0 - beta2) * gi * gi
                mr[i] = mi
                vr[i] = vi
                w[i] -= lr * (mi / c1) / (np.sqrt(vi / c2) + eps)
                g[i] = 0.0
        else:
            for i in range(n):
                gi = g[i] * inv_n
                vi = beta2 * (d2 * vr[i]) + (1.0 - beta2) * gi * gi
                vr[i] = vi
                w[i] -= lr * gi / (np.sqrt(vi) + eps)
                g[i] = 0.0
        last[j] = t
        touched[j] = 0


@njit(cache=True, nogil=True)
def sum_sq_rows(gwt, rows, n_rows):
    """Σ gwt² over the listed rows (float64): the whole matrix's, since other rows are zero."""
    acc = 0.0
    for r in range(n_rows):
        g = gwt[rows[r]]
        for i in range(g.shape[0]):
            acc += float(g[i]) * float(g[i])
    return acc


@njit(cache=True, nogil=True)
def scaled_rows(wt, gwt, touched, rows, n_rows, scale):
    """wt -= scale · gwt on the listed rows, then clear them."""
    n = wt.shape[1]
    for r in range(n_rows):
        j = rows[r]
        w = wt[j]
        g = gwt[j]
        for i in range(n):
            w[i] -= scale * g[i]
            g[i] = 0.0
        touched[j] = 0
