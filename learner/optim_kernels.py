"""Numba kernels of the optimizers: pure functions over the transposed weight storage.

Rows are presynaptic inputs (``wt``/``gwt`` of shape (N_in, N_out)); a step visits only the
rows listed in ``rows[:n_rows]`` (those that received a gradient since the last step) and
clears them, so a streaming step costs O(active inputs · N_out), not O(N_in · N_out).

One call per layer and step does the weights, the bias and the health flag (was any bias
gradient non-zero), so a streaming step pays the Python dispatch three times, not six. The
per-synapse steps are bound by the float divider (a division and a square root per weight,
three divisions for Adam) and by memory; what is skipped is skipped only where the result is
the same bit for bit: a division by a bias correction that has rounded to exactly 1, and the
β^d power of a row that skipped d steps is read from a table computed by the same expression.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from biograd.learner.kernels import apply_update

# Rows that skipped fewer steps than this read β^d from a table (a power per row cost more
# than a short row's update); longer gaps compute it.
POW_TABLE = 4096


@njit(cache=True, nogil=True)
def beta_powers(hyper, k, n):
    """out[d] = β^d for d < n in hyper's dtype, β = hyper[k], by the expression the step uses."""
    out = np.empty(n, dtype=hyper.dtype)
    beta = float(hyper[k])
    for d in range(n):
        out[d] = beta ** np.int64(d)
    return out


@njit(cache=True, nogil=True, inline="always")
def _decay(table, beta, gap):
    # β^gap, rounded once to the weights' dtype (gap 0: 1 exactly)
    if gap == 0:
        return table[0]
    if 0 < gap < table.shape[0]:
        return table[gap]
    out = np.empty(1, dtype=table.dtype)
    out[0] = float(beta) ** gap
    return out[0]


# error_model="numpy": a float division by zero gives inf/nan instead of raising, which drops
# the per-element zero check that keeps LLVM from vectorising the loop (2.4x faster measured).
@njit(cache=True, nogil=True, error_model="numpy")
def _adaptive_rows(wt, gwt, m, v, last, touched, rows, n_rows, hyper, t, adam, pow1, pow2):
    """Per-synapse RMSprop (``adam`` False) or Adam (True) step ``t`` (1-based) on the listed rows.

    ``hyper`` = [lr, inv_n, β1, β2, ε] in the weights' dtype (so float32 networks run float32
    arithmetic, which vectorises). With g = gwt · inv_n (the batch mean) and d = t - 1 - last[j]
    the steps row j skipped:
      m ← β1 (β1^d m) + (1 - β1) g;  v ← β2 (β2^d v) + (1 - β2) g²
      Adam:    w -= lr · (m / (1 - β1^t)) / (sqrt(v / (1 - β2^t)) + eps)
      RMSprop: w -= lr · g / (sqrt(v) + eps)
    The β^d factors apply the decay of the skipped zero-gradient steps in one multiplication
    (the moments then equal the dense rule's); Adam's weight moves of the skipped steps
    (from the decaying momentum) are not applied — the lazy rule's only difference.
    ``m`` is not read for RMSprop (pass any 2-D array). ``pow1``/``pow2``: :func:`beta_powers`
    tables of β1, β2 (any length ≥ 1).
    """
    n = wt.shape[1]
    lr, inv_n, b1, b2, eps = hyper[0], hyper[1], hyper[2], hyper[3], hyper[4]
    # scalars computed in float64, rounded once to the weights' dtype through this array
    s = np.empty(4, dtype=hyper.dtype)
    s[0] = 1.0 - float(b1)
    s[1] = 1.0 - float(b2)
    s[2] = 1.0 - float(b1) ** t
    s[3] = 1.0 - float(b2) ** t
    omb1, omb2, c1, c2 = s[0], s[1], s[2], s[3]
    # x / 1 == x exactly: once a bias correction has rounded to 1 its division is dropped
    # (float32 Adam: 1 - β1^t is 1 from t ≈ 165 with β1 = 0.9, 1 - β2^t from t ≈ 17 000)
    one1 = c1 == 1.0
    one2 = c2 == 1.0
    unit_n = inv_n == 1.0
    for r in range(n_rows):
        j = rows[r]
        gap = t - 1 - last[j]
        d2 = _decay(pow2, b2, gap)
        w = wt[j]
        g = gwt[j]
        vr = v[j]
        if adam:
            d1 = _decay(pow1, b1, gap)
            mr = m[j]
            if one1 and not one2 and unit_n and gap == 0:
                # the streaming case (batch 1, a row stepped last time too): g · 1 and β^0 · x
                # are x exactly, so those products are left out
                for i in range(n):
                    gi = g[i]
                    mi = b1 * mr[i] + omb1 * gi
                    vi = b2 * vr[i] + omb2 * gi * gi
                    mr[i] = mi
                    vr[i] = vi
                    w[i] -= lr * mi / (np.sqrt(vi / c2) + eps)
                    g[i] = 0
            elif one1 and one2:
                for i in range(n):
                    gi = g[i] * inv_n
                    mi = b1 * (d1 * mr[i]) + omb1 * gi
                    vi = b2 * (d2 * vr[i]) + omb2 * gi * gi
                    mr[i] = mi
                    vr[i] = vi
                    w[i] -= lr * mi / (np.sqrt(vi) + eps)
                    g[i] = 0
            elif one1:
                for i in range(n):
                    gi = g[i] * inv_n
                    mi = b1 * (d1 * mr[i]) + omb1 * gi
                    vi = b2 * (d2 * vr[i]) + omb2 * gi * gi
                    mr[i] = mi
                    vr[i] = vi
                    w[i] -= lr * mi / (np.sqrt(vi / c2) + eps)
                    g[i] = 0
            else:
                for i in range(n):
                    gi = g[i] * inv_n
                    mi = b1 * (d1 * mr[i]) + omb1 * gi
                    vi = b2 * (d2 * vr[i]) + omb2 * gi * gi
                    mr[i] = mi
                    vr[i] = vi
                    w[i] -= lr * (mi / c1) / (np.sqrt(vi / c2) + eps)
                    g[i] = 0
        elif unit_n and gap == 0:
            for i in range(n):
                gi = g[i]
                vi = b2 * vr[i] + omb2 * gi * gi
                vr[i] = vi
                w[i] -= lr * gi / (np.sqrt(vi) + eps)
                g[i] = 0
        else:
            for i in range(n):
                gi = g[i] * inv_n
                vi = b2 * (d2 * vr[i]) + omb2 * gi * gi
                vr[i] = vi
                w[i] -= lr * gi / (np.sqrt(vi) + eps)
                g[i] = 0
        last[j] = t
        touched[j] = 0


@njit(cache=True, nogil=True)
def _any_nonzero(x):
    for i in range(x.shape[0]):
        if x[i] != 0:
            return True
    return False


@njit(cache=True, nogil=True, error_model="numpy")
def adaptive_layer(wt, gwt, m, v, last, touched, rows, n_rows, b, gb, mb, vb, lastb, hyper, t, adam, pow1, pow2):
    """One layer's RMSprop/Adam step ``t``: the listed weight rows, then the bias (``b``/``gb``
    of shape (1, N_out), moments ``mb``/``vb`` likewise, ``lastb`` (1,)), by
    :func:`_adaptive_rows`. Returns whether any bias gradient was non-zero (read before the
    step clears it)."""
    changed = _any_nonzero(gb[0])
    _adaptive_rows(wt, gwt, m, v, last, touched, rows, n_rows, hyper, t, adam, pow1, pow2)
    one_row = np.zeros(1, dtype=np.int32)
    flag = np.zeros(1, dtype=np.uint8)
    _adaptive_rows(b, gb, mb, vb, lastb, flag, one_row, 1, hyper, t, adam, pow1, pow2)
    return changed


@njit(cache=True, nogil=True)
def sgd_layer(wt, gwt, b, gb, scale, touched, rows, n_rows):
    """W -= scale · G and b -= scale · g_b on the touched rows only, then clear G, g_b
    (:func:`~biograd.learner.kernels.apply_update`). Returns whether any bias gradient was non-zero."""
    changed = _any_nonzero(gb)
    apply_update(wt, gwt, b, gb, scale, touched, rows, n_rows)
    return changed


# reassoc: lets the float64 sum vectorise (a different, equally valid summation order)
@njit(cache=True, nogil=True, fastmath={"reassoc"})
def sum_sq_rows(gwt, rows, n_rows):
    """Σ gwt² over the listed rows (float64): the whole matrix's, since other rows are zero."""
    acc = 0.0
    for r in range(n_rows):
        g = gwt[rows[r]]
        for i in range(g.shape[0]):
            acc += float(g[i]) * float(g[i])
    return acc


@njit(cache=True, nogil=True)
def _pairwise_leaf(a, lo, n):
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r = np.empty(8, dtype=np.float64)
    for k in range(8):
        r[k] = a[lo + k]
    i = 8
    while i < n - (n % 8):
        for k in range(8):
            r[k] += a[lo + i + k]
        i += 8
    res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@njit(cache=True, nogil=True)
def pairwise_sum(a, lo, n):
    """Σ a[lo:lo+n] in NumPy's order for a contiguous float64 reduction (``np.add.reduce``:
    blocks of ≤ 128 summed in 8 strided partial sums, a larger range split in halves at a
    multiple of 8 and the halves' sums added), so a mean computed here equals ``np.mean``
    bit for bit. The halving runs on an explicit stack (Numba crashed on the recursion)."""
    f_lo = np.empty(64, dtype=np.int64)
    f_n = np.empty(64, dtype=np.int64)
    f_stage = np.zeros(64, dtype=np.int64)
    vals = np.empty(64, dtype=np.float64)
    top, nv = 0, 0
    f_lo[0], f_n[0], f_stage[0] = lo, n, 0
    while top >= 0:
        m = f_n[top]
        if m <= 128:
            vals[nv] = _pairwise_leaf(a, f_lo[top], m)
            nv += 1
            top -= 1
            continue
        half = m // 2
        half -= half % 8
        if f_stage[top] == 0:
            f_stage[top] = 1
            f_lo[top + 1], f_n[top + 1], f_stage[top + 1] = f_lo[top], half, 0
            top += 1
        elif f_stage[top] == 1:
            f_stage[top] = 2
            f_lo[top + 1], f_n[top + 1], f_stage[top + 1] = f_lo[top] + half, m - half, 0
            top += 1
        else:
            vals[nv - 2] = vals[nv - 2] + vals[nv - 1]
            nv -= 1
            top -= 1
    return vals[0]


@njit(cache=True, nogil=True)
def layer_rms_layer(wt, gwt, b, gb, touched, rows, n_rows, s, inv_n, corr, lr, beta2, eps, scale_type):
    """One layer's ``layer_rms`` step (:class:`~biograd.learner.optim.LayerRMS`), scalars in
    float64: s ← β2 s + (1-β2) mean(G²) for W and b apart, then W -= scale_W G on the listed
    rows and b -= scale_b g_b, clearing G and g_b. ``corr`` = 1 - β2^t (computed by the
    caller, as Python's ``**`` does); ``scale_type`` a 1-element array of the weights' dtype
    (scale_W is rounded to it, as the weights' update runs in it). Returns whether any bias
    gradient was non-zero."""
    changed = _any_nonzero(gb)
    ms_w = sum_sq_rows(gwt, rows, n_rows) * inv_n * inv_n / gwt.size
    nb = gb.shape[0]
    gb64 = np.empty(nb, dtype=np.float64)
    sq = np.empty(nb, dtype=np.float64)
    for i in range(nb):
        gb64[i] = float(gb[i]) * inv_n
        sq[i] = gb64[i] * gb64[i]
    ms_b = pairwise_sum(sq, 0, nb) / nb
    s[0] = beta2 * s[0] + (1.0 - beta2) * ms_w
    s[1] = beta2 * s[1] + (1.0 - beta2) * ms_b
    scale_type[0] = lr * inv_n / (np.sqrt(s[0] / corr) + eps)
    scale_w = scale_type[0]
    scale_b = lr / (np.sqrt(s[1] / corr) + eps)
    n = wt.shape[1]
    for r in range(n_rows):
        j = rows[r]
        w = wt[j]
        g = gwt[j]
        for i in range(n):
            w[i] -= scale_w * g[i]
            g[i] = 0.0
        touched[j] = 0
    upd = np.empty(1, dtype=b.dtype)
    for i in range(nb):
        upd[0] = scale_b * gb64[i]
        b[i] -= upd[0]
        gb[i] = 0.0
    return changed
