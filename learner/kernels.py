"""Numba kernels of the BioGrad learner: pure functions over preallocated arrays.

Layout: a weight layer's matrix is stored transposed, ``wt`` of shape
(N_in, N_out) C-contiguous, so the weights leaving one presynaptic input are a
contiguous row: an input spike adds one row to the current, and the event-form
gradient adds one row to ``gwt``.

Neuron (per layer, λ = ``lam``, θ = ``th``, w = ``win``, a = ``amp``)::

    v(t) = λ v(t-1) (1 - s(t-1)) + W s_in(t) + b,    s(t) = [v(t) > θ]
    ψ(t) = a [|v(t) - θ| < w],                         κ(t) = 1 - s(t) - v(t) ψ(t)

Two trace engines give E_ij = ∂(Σ_t s_i(t)) / ∂W_ij (surrogate ds/dv = ψ,
inputs constant):

* event form: g(T-1) = ψ(T-1), g(t) = ψ(t) + λ κ(t) g(t+1); E_ij = Σ_t g_i(t) s_j(t)
  — O(T·N) per layer plus one row add per input spike;
* synapse form: P = λ R + s_j, E += ψ_i P, R = P κ_i, per synapse and step
  — O(T·N·N_in), what an on-chip learning rule does.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def check_raster(indptr, indices, n_inputs):
    """0 if the CSR raster is well formed, else an error code (see network._RASTER_ERRORS)."""
    if indptr.shape[0] < 2 or indptr[0] != 0:
        return 1
    for t in range(indptr.shape[0] - 1):
        if indptr[t + 1] < indptr[t]:
            return 2
    if indptr[indptr.shape[0] - 1] != indices.shape[0]:
        return 3
    for k in range(indices.shape[0]):
        if indices[k] < 0 or indices[k] >= n_inputs:
            return 4
    return 0


@njit(cache=True, nogil=True)
def to_csc(in_ptr, in_idx, n_in, col_ptr, col_t):
    """Transpose a CSR raster (by step) to CSC (by input): the steps of input j are
    ``col_t[col_ptr[j]:col_ptr[j + 1]]``, ascending. Returns the spike count."""
    steps = in_ptr.shape[0] - 1
    nnz = in_ptr[steps]
    for j in range(n_in + 1):
        col_ptr[j] = 0
    for k in range(nnz):
        col_ptr[in_idx[k] + 1] += 1
    for j in range(n_in):
        col_ptr[j + 1] += col_ptr[j]
    for t in range(steps):
        for k in range(in_ptr[t], in_ptr[t + 1]):
            j = in_idx[k]
            col_t[col_ptr[j]] = t
            col_ptr[j] += 1
    # each col_ptr[j] now holds the start of column j + 1: shift back
    for j in range(n_in, 0, -1):
        col_ptr[j] = col_ptr[j - 1]
    col_ptr[0] = 0
    return nnz


@njit(cache=True, nogil=True, inline="always")
def _leak_and_fire(t, v, b, lam, th, out_idx, m):
    """v[t] (holding W s_in(t)) += b + λ v[t-1] (1 - s(t-1)); append spikes of step t.

    The leak is branch-free so it vectorises; spikes are sparse, so each block of
    64 neurons is first counted (vectorised) and only blocks with a spike are scanned.
    """
    vt = v[t]
    n = vt.shape[0]
    if t == 0:
        for i in range(n):
            vt[i] += b[i]
    else:
        vp = v[t - 1]
        for i in range(n):
            x = vp[i]
            vt[i] += b[i] + lam * (x <= th) * x
    for i0 in range(0, n, 64):
        i1 = min(i0 + 64, n)
        c = 0
        for i in range(i0, i1):
            c += vt[i] > th
        if c:
            for i in range(i0, i1):
                if vt[i] > th:
                    out_idx[m] = i
                    m += 1
    return m


@njit(cache=True, nogil=True, inline="always")
def _add_rows(vt, wt, idx, a, e):
    """vt = Σ_{k in [a, e)} wt[idx[k]], four rows per pass (a quarter of the stores to vt)."""
    n = vt.shape[0]
    for i in range(n):
        vt[i] = 0
    k = a
    while k + 4 <= e:
        r0 = wt[idx[k]]
        r1 = wt[idx[k + 1]]
        r2 = wt[idx[k + 2]]
        r3 = wt[idx[k + 3]]
        for i in range(n):
            vt[i] += (r0[i] + r1[i]) + (r2[i] + r3[i])
        k += 4
    while k < e:
        r0 = wt[idx[k]]
        for i in range(n):
            vt[i] += r0[i]
        k += 1


@njit(cache=True, nogil=True)
def layer_forward(in_ptr, in_idx, wt, b, lam, th, v, out_ptr, out_idx):
    """Run one layer over all T steps: v (T, N) gets the membrane record, out_* the spikes (CSR).

    Event-driven: step t costs one weight-row add per input spike plus O(N) for
    the leak and threshold.
    """
    steps = in_ptr.shape[0] - 1
    m = 0
    out_ptr[0] = 0
    for t in range(steps):
        _add_rows(v[t], wt, in_idx, in_ptr[t], in_ptr[t + 1])
        m = _leak_and_fire(t, v, b, lam, th, out_idx, m)
        out_ptr[t + 1] = m
    return m


@njit(cache=True, nogil=True)
def network_forward(in_ptr, in_idx, wts, bs, lams, ths, vs, out_ptrs, out_idxs):
    """:func:`layer_forward` for every layer in one call (tuples hold the per-layer arrays).

    Returns the output layer's spike counts (int64).
    """
    ptr = in_ptr
    idx = in_idx
    for l in range(len(wts)):
        layer_forward(ptr, idx, wts[l], bs[l], lams[l], ths[l], vs[l], out_ptrs[l], out_idxs[l])
        ptr = out_ptrs[l]
        idx = out_idxs[l]
    return output_counts(ptr, idx, wts[len(wts) - 1].shape[1])


@njit(cache=True, nogil=True)
def output_counts(out_ptr, out_idx, n_out):
    """Spike count of each output unit over the sample (int64)."""
    c = np.zeros(n_out, dtype=np.int64)
    for k in range(out_ptr[out_ptr.shape[0] - 1]):
        c[out_idx[k]] += 1
    return c


@njit(cache=True, nogil=True)
def error_phase(out_ptr, out_idx, n_out, t_e, label):
    """Error interneurons over steps t_e … T-1.

    Returns (counts at T-1, D = Σ_t (z⁺ - z⁻), loss = -log softmax(c(T-1))[label]).
    e(t) = softmax(c(t)) - onehot(label);  a±(t) = a±(t-1) - z±(t-1) ± e(t);
    z±(t) = [a±(t) > 1].
    """
    steps = out_ptr.shape[0] - 1
    c = np.zeros(n_out, dtype=np.float64)
    a_pos = np.zeros(n_out, dtype=np.float64)
    a_neg = np.zeros(n_out, dtype=np.float64)
    z_pos = np.zeros(n_out, dtype=np.float64)
    z_neg = np.zeros(n_out, dtype=np.float64)
    d = np.zeros(n_out, dtype=np.float64)
    e = np.zeros(n_out, dtype=np.float64)
    for t in range(steps):
        for k in range(out_ptr[t], out_ptr[t + 1]):
            c[out_idx[k]] += 1.0
        if t < t_e:
            continue
        cmax = c.max()
        tot = 0.0
        for k in range(n_out):
            e[k] = np.exp(c[k] - cmax)
            tot += e[k]
        for k in range(n_out):
            e[k] = e[k] / tot - (1.0 if k == label else 0.0)
            a_pos[k] = a_pos[k] - z_pos[k] + e[k]
            a_neg[k] = a_neg[k] - z_neg[k] - e[k]
            z_pos[k] = 1.0 if a_pos[k] > 1.0 else 0.0
            z_neg[k] = 1.0 if a_neg[k] > 1.0 else 0.0
            d[k] += z_pos[k] - z_neg[k]
    cmax = c.max()
    tot = 0.0
    for k in range(n_out):
        tot += np.exp(c[k] - cmax)
    loss = -(c[label] - cmax - np.log(tot))
    counts = np.empty(n_out, dtype=np.int64)
    for k in range(n_out):
        counts[k] = np.int64(c[k])
    return counts, d, loss


@njit(cache=True, nogil=True)
def backward_columns(v, delta, lam, th, win, amp, h, gwt, gb, col_ptr, col_t, i0, i1):
    """The event-form gradient of units i0 … i1-1 only: h(t) = δ ⊙ g(t) there, gb += Σ_t h(t),
    gwt[j] += Σ_{t: s_j(t)=1} h(t) with the input in CSC (``col_ptr``, ``col_t``).

    Every element's arithmetic is independent of the others, so any split of the units gives
    the one-call result bit for bit (what lets threads share one sample's backward pass).
    The loops index views from 0: an index Numba cannot prove non-negative gets a wrap-around
    check that stops vectorisation (measured 4x slower with ``range(i0, i1)``).
    """
    steps = v.shape[0]
    w = i1 - i0
    d = delta[i0:i1]
    gbb = gb[i0:i1]
    # float × bool products (not selects) keep float32 arithmetic float32 and vectorise
    one = np.ones(1, v.dtype)[0]
    for t in range(steps - 1, -1, -1):
        vt = v[t, i0:i1]
        ht = h[t, i0:i1]
        if t == steps - 1:
            for i in range(w):
                x = vt[i]
                ht[i] = d[i] * (amp * (abs(x - th) < win))
        else:
            # h(t) = δ ⊙ g(t) = δ ψ(t) + λ κ(t) h(t+1): δ factors out of the recursion
            hn = h[t + 1, i0:i1]
            for i in range(w):
                x = vt[i]
                psi = amp * (abs(x - th) < win)
                kappa = one - one * (x > th) - x * psi
                ht[i] = d[i] * psi + lam * kappa * hn[i]
    for t in range(steps):
        ht = h[t, i0:i1]
        for i in range(w):
            gbb[i] += ht[i]
    for j in range(gwt.shape[0]):
        a = col_ptr[j]
        e = col_ptr[j + 1]
        if a == e:
            continue
        row = gwt[j, i0:i1]
        k = a
        while k + 4 <= e:
            h0 = h[col_t[k], i0:i1]
            h1 = h[col_t[k + 1], i0:i1]
            h2 = h[col_t[k + 2], i0:i1]
            h3 = h[col_t[k + 3], i0:i1]
            for i in range(w):
                row[i] += (h0[i] + h1[i]) + (h2[i] + h3[i])
            k += 4
        while k < e:
            h0 = h[col_t[k], i0:i1]
            for i in range(w):
                row[i] += h0[i]
            k += 1


@njit(cache=True, nogil=True)
def mark_rows(col_ptr, touched, rows, n_rows):
    """Flag (and list, in first-touch order) every input j with a spike; returns the new n_rows."""
    for j in range(touched.shape[0]):
        if col_ptr[j] < col_ptr[j + 1] and not touched[j]:
            touched[j] = 1
            rows[n_rows] = j
            n_rows += 1
    return n_rows


@njit(cache=True, nogil=True)
def layer_backward_event(
    v, in_ptr, in_idx, delta, lam, th, win, amp, h, gwt, gb, touched, rows, n_rows, col_ptr, col_t
):
    """Event-form gradient: gwt[j] += Σ_{t: s_j(t)=1} δ ⊙ g(t);  gb += Σ_t δ ⊙ g(t).

    ``h`` (T, N) is workspace for δ ⊙ g; (col_ptr, col_t) workspace for the
    layer input in CSC (by input), so each active input's gradient row is read
    and written once. Rows of gwt that receive a gradient are listed in
    rows[:n_rows] (flag in ``touched``) so the update visits only them.
    Cost O(T·N + input spikes · N). Returns the new n_rows.
    """
    to_csc(in_ptr, in_idx, gwt.shape[0], col_ptr, col_t)
    backward_columns(v, delta, lam, th, win, amp, h, gwt, gb, col_ptr, col_t, 0, v.shape[1])
    return mark_rows(col_ptr, touched, rows, n_rows)


@njit(cache=True, nogil=True)
def hidden_deltas(feedback, d_out, k, out, s):
    """δ of every layer from the output dendrite D_out, into row s of ``out[l]``: scaled =
    D_out / K (in the network's dtype), B_l · scaled for the hidden layers, scaled for the
    output. One function for the one-sample and the batch paths, so both give the same values."""
    last = len(out) - 1
    scaled = out[last][s]
    for o in range(scaled.shape[0]):
        scaled[o] = d_out[o] / k
    for l in range(last):
        b = feedback[l]
        dl = out[l][s]
        for i in range(b.shape[0]):
            acc = scaled[0] - scaled[0]
            for o in range(b.shape[1]):
                acc += b[i, o] * scaled[o]
            dl[i] = acc


@njit(cache=True, nogil=True)
def layer_forward_synapse(in_ptr, in_idx, wt, b, lam, th, win, amp, v_rec, out_ptr, out_idx, rt, et, rb, eb, s_in):
    """Forward pass with the per-synapse traces P, R, E updated online every step.

    rt, et (N_in, N) and rb, eb (N,) are overwritten; s_in (N_in,) is workspace.
    Per synapse (pre j, post i):  P = λ R(t-1) + s_j(t);  E += ψ_i(t) P;  R = P κ_i(t).
    Bias traces: the same with s_j ≡ 1.
    """
    steps = in_ptr.shape[0] - 1
    n_in = wt.shape[0]
    n = wt.shape[1]
    rt[:] = 0.0
    et[:] = 0.0
    rb[:] = 0.0
    eb[:] = 0.0
    s_in[:] = 0.0
    psi = np.empty(n, dtype=v_rec.dtype)
    kappa = np.empty(n, dtype=v_rec.dtype)
    zero = np.zeros(1, v_rec.dtype)[0]
    one = zero + 1
    m = 0
    out_ptr[0] = 0
    for t in range(steps):
        vt = v_rec[t]
        # the same summation as layer_forward, so both engines see identical membranes
        _add_rows(vt, wt, in_idx, in_ptr[t], in_ptr[t + 1])
        m = _leak_and_fire(t, v_rec, b, lam, th, out_idx, m)
        out_ptr[t + 1] = m
        for i in range(n):
            x = vt[i]
            s = one if x > th else zero
            psi[i] = amp if abs(x - th) < win else zero
            kappa[i] = one - s - x * psi[i]
        for k in range(in_ptr[t], in_ptr[t + 1]):
            s_in[in_idx[k]] = one
        for j in range(n_in):
            sj = s_in[j]
            rrow = rt[j]
            erow = et[j]
            for i in range(n):
                p = lam * rrow[i] + sj
                erow[i] += psi[i] * p
                rrow[i] = p * kappa[i]
        for i in range(n):
            p = lam * rb[i] + one
            eb[i] += psi[i] * p
            rb[i] = p * kappa[i]
        for k in range(in_ptr[t], in_ptr[t + 1]):
            s_in[in_idx[k]] = zero
    return m


@njit(cache=True, nogil=True)
def accumulate_traces(et, eb, delta, gwt, gb, touched, rows, n_rows, active):
    """gwt[j, i] += δ_i E_ij (transposed storage) for the inputs j in ``active`` (those that
    spiked: E_ij is exactly 0 for the others);  gb_i += δ_i E^b_i. Returns the new n_rows."""
    n = et.shape[1]
    for a in range(active.shape[0]):
        j = active[a]
        erow = et[j]
        grow = gwt[j]
        for i in range(n):
            grow[i] += delta[i] * erow[i]
        if not touched[j]:
            touched[j] = 1
            rows[n_rows] = j
            n_rows += 1
    for i in range(n):
        gb[i] += delta[i] * eb[i]
    return n_rows


@njit(cache=True, nogil=True)
def apply_update(wt, gwt, b, gb, scale, touched, rows, n_rows):
    """W -= scale · G and b -= scale · g_b on the touched rows only, then clear G, g_b."""
    n = wt.shape[1]
    for r in range(n_rows):
        j = rows[r]
        w = wt[j]
        g = gwt[j]
        for i in range(n):
            w[i] -= scale * g[i]
            g[i] = 0.0
        touched[j] = 0
    for i in range(n):
        b[i] -= scale * gb[i]
        gb[i] = 0.0
