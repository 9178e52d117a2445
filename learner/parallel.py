"""Batch training on every core: data-parallel over the samples of a batch, reduced in sample order.

One call trains the samples of one (partial) batch, between two weight updates, in chunks of
:data:`CHUNK` samples (so a chunk's records stay in cache), each in three parallel phases, and
gives the gradient of the one-thread loop bit for bit:

1. per sample (``prange``): forward of every layer and the error phase, into per-sample
   workspaces (the same kernels as :mod:`learner.kernels`);
2. per sample (``prange``): ``h = δ ⊙ g`` of every layer (the event-form recursion), after the
   caller computed δ per sample exactly as the one-sample path does;
3. per gradient row (``prange`` over input units j): ``gwt[j] += Σ_samples Σ_{t: s_j(t)} h(t)``
   with the samples in batch order and each sample's steps summed four at a time as
   ``layer_backward_event`` does, so every float32 addition happens in the same order as in
   the loop over samples; ``gb`` likewise per unit. Rows are owned by one thread: no atomics,
   and the result does not depend on the thread count.

The inputs of every sample of a layer are gathered by column (input unit) for the whole batch
once (a counting sort, serial, O(spikes)).
"""

from __future__ import annotations

import os

# OpenMP threads that spin at a barrier burn the cores other processes wait for; on a shared
# machine that made two threads 10x slower than one (measured). They sleep instead, unless
# the user set a policy. Read when the OpenMP runtime starts (the first parallel call).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

from biograd.learner.kernels import error_phase, layer_forward  # noqa: E402


@njit(cache=True, nogil=True, parallel=True)
def batch_forward(in_ptr, in_idx, wts, bs, lams, ths, vs, out_ptrs, out_idxs, t_e, labels, counts, d_out, loss):
    """Phase 1 for samples s = 0..B-1: input s is ``in_idx[s, in_ptr[s, t]:in_ptr[s, t+1]]``;
    layer l's record goes to ``vs[l][s]`` and its spikes to ``out_ptrs[l][s]``, ``out_idxs[l][s]``.
    Per sample: output counts, D_out (error interneurons) and loss."""
    n_layers = len(wts)
    n_out = counts.shape[1]
    for s in prange(in_ptr.shape[0]):
        layer_forward(in_ptr[s], in_idx[s], wts[0], bs[0], lams[0], ths[0], vs[0][s], out_ptrs[0][s], out_idxs[0][s])
        for l in range(1, n_layers):
            layer_forward(
                out_ptrs[l - 1][s],
                out_idxs[l - 1][s],
                wts[l],
                bs[l],
                lams[l],
                ths[l],
                vs[l][s],
                out_ptrs[l][s],
                out_idxs[l][s],
            )
        c, d, lo = error_phase(out_ptrs[n_layers - 1][s], out_idxs[n_layers - 1][s], n_out, t_e, labels[s])
        counts[s] = c
        d_out[s] = d
        loss[s] = lo


@njit(cache=True, nogil=True, inline="always")
def _h_recursion(v, delta, lam, th, win, amp, h):
    """h(t) = δ ⊙ g(t), exactly the first half of ``kernels.layer_backward_event``."""
    steps = v.shape[0]
    n = v.shape[1]
    one = np.ones(1, v.dtype)[0]
    for t in range(steps - 1, -1, -1):
        vt = v[t]
        ht = h[t]
        if t == steps - 1:
            for i in range(n):
                x = vt[i]
                ht[i] = delta[i] * (amp * (abs(x - th) < win))
        else:
            hn = h[t + 1]
            for i in range(n):
                x = vt[i]
                psi = amp * (abs(x - th) < win)
                kappa = one - one * (x > th) - x * psi
                ht[i] = delta[i] * psi + lam * kappa * hn[i]


@njit(cache=True, nogil=True, parallel=True)
def batch_h(vs, deltas, lams, ths, wins, amps, hs):
    """Phase 2: ``hs[l][s]`` for every sample s and layer l, from ``deltas[l][s]``."""
    for s in prange(vs[0].shape[0]):
        for l in range(len(vs)):
            _h_recursion(vs[l][s], deltas[l][s], lams[l], ths[l], wins[l], amps[l], hs[l][s])


@njit(cache=True, nogil=True)
def batch_columns(in_ptr, in_idx, n_in, col_ptr, col_s, col_t):
    """The spikes of all B samples by input unit: unit j's are entries ``col_ptr[j]:col_ptr[j+1]``
    of (col_s = sample, col_t = step), ordered by sample, then step. Returns the spike count."""
    n_samples = in_ptr.shape[0]
    steps = in_ptr.shape[1] - 1
    for j in range(n_in + 1):
        col_ptr[j] = 0
    nnz = 0
    for s in range(n_samples):
        for k in range(in_ptr[s, steps]):
            col_ptr[in_idx[s, k] + 1] += 1
        nnz += in_ptr[s, steps]
    for j in range(n_in):
        col_ptr[j + 1] += col_ptr[j]
    for s in range(n_samples):
        for t in range(steps):
            for k in range(in_ptr[s, t], in_ptr[s, t + 1]):
                j = in_idx[s, k]
                col_s[col_ptr[j]] = s
                col_t[col_ptr[j]] = t
                col_ptr[j] += 1
    for j in range(n_in, 0, -1):
        col_ptr[j] = col_ptr[j - 1]
    col_ptr[0] = 0
    return nnz


@njit(cache=True, nogil=True, parallel=True)
def batch_accumulate(col_ptr, col_s, col_t, h, gwt, gb, touched):
    """Phase 3 for one layer: ``gwt[j] += Σ h[s, t]`` over unit j's entries (per sample four
    steps at a time, as ``layer_backward_event``), ``gb += Σ_s Σ_t h[s, t]``; sets touched[j]."""
    n = gwt.shape[1]
    for j in prange(gwt.shape[0]):
        a = col_ptr[j]
        e = col_ptr[j + 1]
        if a == e:
            continue
        row = gwt[j]
        while a < e:
            s = col_s[a]
            b = a
            while b < e and col_s[b] == s:
                b += 1
            hs = h[s]
            k = a
            while k + 4 <= b:
                h0 = hs[col_t[k]]
                h1 = hs[col_t[k + 1]]
                h2 = hs[col_t[k + 2]]
                h3 = hs[col_t[k + 3]]
                for i in range(n):
                    row[i] += (h0[i] + h1[i]) + (h2[i] + h3[i])
                k += 4
            while k < b:
                h0 = hs[col_t[k]]
                for i in range(n):
                    row[i] += h0[i]
                k += 1
            a = b
        touched[j] = 1
    n_blocks = (n + 63) // 64
    for blk in prange(n_blocks):
        i0 = blk * 64
        i1 = min(i0 + 64, n)
        for s in range(h.shape[0]):
            for t in range(h.shape[1]):
                ht = h[s, t]
                for i in range(i0, i1):
                    gb[i] += ht[i]


CHUNK = 16  # samples per parallel chunk: their records (~0.3 MB each at 2312-500-100-10) stay in cache


class BatchWorkspace:
    """Per-sample workspaces for up to ``capacity`` samples of a network of ``sizes``, and the
    driver of the three phases (:meth:`accumulate`)."""

    def __init__(self, sizes, timesteps: int, capacity: int, dtype):
        self.capacity = capacity
        self.timesteps = timesteps
        self.dtype = np.dtype(dtype)
        T = timesteps
        hidden = sizes[1:]
        self.vs = tuple(np.zeros((capacity, T, n), dtype=self.dtype) for n in hidden)
        self.hs = tuple(np.zeros((capacity, T, n), dtype=self.dtype) for n in hidden)
        self.out_ptrs = tuple(np.zeros((capacity, T + 1), dtype=np.int64) for _ in hidden)
        self.out_idxs = tuple(np.zeros((capacity, T * n), dtype=np.int32) for n in hidden)
        self.col_ptrs = tuple(np.zeros(n + 1, dtype=np.int64) for n in sizes[:-1])

    def accumulate(self, ptrs, idxs, labels, layers, deltas_of, error_start, grads):
        """Train samples (CSR ``ptrs[s]``, ``idxs[s]``) into ``grads``, ``capacity`` at a time
        (a chunk's records stay in cache); returns (counts, loss) of all.

        ``deltas_of(d_out)`` gives δ per layer for one sample: the one-sample path's own
        function, so δ is the same float32 values. ``grads[l].touched`` is set for every row
        that received a gradient; ``rows``/``n_rows`` are rebuilt from it.
        """
        counts, loss = [], []
        for a in range(0, len(ptrs), self.capacity):
            b = a + self.capacity
            c, lo = self._chunk(ptrs[a:b], idxs[a:b], labels[a:b], layers, deltas_of, error_start, grads)
            counts.append(c)
            loss.append(lo)
        return np.concatenate(counts), np.concatenate(loss)

    def _chunk(self, ptrs, idxs, labels, layers, deltas_of, error_start, grads):
        n = len(ptrs)
        T = self.timesteps
        in_ptr = np.stack(ptrs)
        in_idx = np.zeros((n, max(1, max(int(p[-1]) for p in ptrs))), dtype=np.int32)
        for s, idx in enumerate(idxs):
            in_idx[s, : idx.shape[0]] = idx
        wts = tuple(lay.wt for lay in layers)
        n_out = wts[-1].shape[1]
        counts = np.zeros((n, n_out), dtype=np.int64)
        d_out = np.zeros((n, n_out), dtype=np.float64)
        loss = np.zeros(n, dtype=np.float64)
        vs = tuple(v[:n] for v in self.vs)
        hs = tuple(h[:n] for h in self.hs)
        out_ptrs = tuple(p[:n] for p in self.out_ptrs)
        out_idxs = tuple(i[:n] for i in self.out_idxs)
        lams, ths, wins, amps = (np.array([lay.params[k] for lay in layers], dtype=self.dtype) for k in range(4))
        bs = tuple(lay.b for lay in layers)
        labels = np.asarray(labels, dtype=np.int64)
        batch_forward(
            in_ptr, in_idx, wts, bs, lams, ths, vs, out_ptrs, out_idxs, error_start, labels, counts, d_out, loss
        )
        deltas = tuple(np.zeros((n, w.shape[1]), dtype=self.dtype) for w in wts)
        for s in range(n):
            for l, d in enumerate(deltas_of(d_out[s])):
                deltas[l][s] = d
        batch_h(vs, deltas, lams, ths, wins, amps, hs)
        for l, g in enumerate(grads):
            ptr, idx = (in_ptr, in_idx) if l == 0 else (out_ptrs[l - 1], out_idxs[l - 1])
            nnz = int(ptr[:, T].sum())
            col_s = np.empty(nnz, dtype=np.int32)
            col_t = np.empty(nnz, dtype=np.int32)
            batch_columns(ptr, idx, wts[l].shape[0], self.col_ptrs[l], col_s, col_t)
            batch_accumulate(self.col_ptrs[l], col_s, col_t, hs[l], g.gwt, g.gb, g.touched)
        for g in grads:
            rows = np.flatnonzero(g.touched)
            g.rows[: rows.size] = rows
            g.n_rows = int(rows.size)
        return counts, loss


def use_threads(threads: int) -> int:
    """Run the parallel phases on ``threads`` threads (0 = every core Numba may use); returns it."""
    import numba

    most = int(getattr(numba.config, "NUMBA_NUM_THREADS"))  # noqa: B009 - set at run time, unknown to mypy
    n = most if threads <= 0 else min(threads, most)
    numba.set_num_threads(n)
    return n
