"""Batch training on every core, with the one-sample loop's gradient bit for bit.

One call trains the samples of one (partial) batch, between two weight updates, in chunks of
:data:`CHUNK` samples, one Numba call per chunk with two parallel phases:

1. per sample (``prange``, handed out one at a time: ``parallel_chunksize(1)``): forward of every layer, the error phase,
   δ of every layer (:func:`~biograd.learner.kernels.hidden_deltas`, the one-sample path's own
   function) and each layer's input in CSC, into per-sample workspaces;
2. per layer, per block of units (``prange`` over blocks): for the samples in batch order,
   :func:`~biograd.learner.kernels.backward_columns` on the block, the very function the
   one-sample path runs on all units. Each element of the gradient gets the same float32
   additions in the same order as in the loop over samples, so the result does not depend on
   the thread count or the block split, and no two threads write the same gradient element.

Blocks are multiples of 16 units (64 bytes of float32), so threads never share a cache line of
the gradient.
"""

from __future__ import annotations

import os

# OpenMP threads that spin at a barrier burn the cores other processes wait for; on a shared
# machine that made two threads 10x slower than one (measured). They sleep instead, unless
# the user set a policy. Read when the OpenMP runtime starts (the first parallel call).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numba  # noqa: E402
import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

from biograd.learner.kernels import (  # noqa: E402
    backward_columns,
    error_phase,
    hidden_deltas,
    layer_forward,
    mark_rows,
    to_csc,
)


@njit(cache=True, nogil=True, parallel=True)
def train_chunk(
    in_ptr, in_idx, labels, t_e, k, wts, bs, lams, ths, wins, amps, feedback,
    vs, out_ptrs, out_idxs, deltas, col_ptrs, col_ts, hs, gwts, gbs, touched, rows, n_rows,
    blocks, n_blocks, counts, loss,
):  # fmt: skip
    """Train samples s = 0..n-1 (input ``in_idx[s, in_ptr[s, t]:in_ptr[s, t+1]]``) into the
    gradients ``gwts``/``gbs``; per sample output counts and loss; returns each layer's n_rows.

    ``blocks[l, :n+1]``: the block edges of layer l's units in phase 2 (n = ``n_blocks[l]``). Workspaces per layer l: ``vs[l]`` (n, T, N_l) membranes, ``out_ptrs[l]``/``out_idxs[l]``
    spikes, ``deltas[l]`` (n, N_l), ``col_ptrs[l]``/``col_ts[l]`` the layer's input per sample
    in CSC, ``hs[l]`` (T, N_l) δ ⊙ g (each block writes only its own units).
    """
    n = in_ptr.shape[0]
    n_layers = len(wts)
    n_out = counts.shape[1]
    for s in prange(n):
        ptr = in_ptr[s]
        idx = in_idx[s]
        for l in range(n_layers):
            to_csc(ptr, idx, wts[l].shape[0], col_ptrs[l][s], col_ts[l][s])
            layer_forward(ptr, idx, wts[l], bs[l], lams[l], ths[l], vs[l][s], out_ptrs[l][s], out_idxs[l][s])
            ptr = out_ptrs[l][s]
            idx = out_idxs[l][s]
        c, d, lo = error_phase(ptr, idx, n_out, t_e, labels[s])
        counts[s] = c
        loss[s] = lo
        hidden_deltas(feedback, d, k, deltas, s)
    for l in range(n_layers):
        edges = blocks[l]
        for b in prange(n_blocks[l]):
            i0 = edges[b]
            i1 = edges[b + 1]
            for s in range(n):
                backward_columns(
                    vs[l][s], deltas[l][s], lams[l], ths[l], wins[l], amps[l], hs[l],
                    gwts[l], gbs[l], col_ptrs[l][s], col_ts[l][s], i0, i1,
                )  # fmt: skip
        for s in range(n):
            n_rows[l] = mark_rows(col_ptrs[l][s], touched[l], rows[l], n_rows[l])


CHUNK = 32  # samples per call: their records (~0.3 MB each at 2312-500-100-10) stay in the L3 cache


class BatchWorkspace:
    """Per-sample workspaces for up to ``capacity`` samples of a network of ``sizes``, and the
    driver of :func:`train_chunk` (:meth:`accumulate`)."""

    def __init__(self, sizes, timesteps: int, capacity: int, dtype):
        self.capacity = capacity
        self.timesteps = timesteps
        self.dtype = np.dtype(dtype)
        T = timesteps
        outs = sizes[1:]
        self.vs = tuple(np.zeros((capacity, T, n), dtype=self.dtype) for n in outs)
        self.hs = tuple(np.zeros((T, n), dtype=self.dtype) for n in outs)
        self.deltas = tuple(np.zeros((capacity, n), dtype=self.dtype) for n in outs)
        self.out_ptrs = tuple(np.zeros((capacity, T + 1), dtype=np.int64) for _ in outs)
        self.out_idxs = tuple(np.zeros((capacity, T * n), dtype=np.int32) for n in outs)
        self.col_ptrs = tuple(np.zeros((capacity, n + 1), dtype=np.int64) for n in sizes[:-1])
        # a hidden layer's output has at most T * N spikes; the network input's room grows on demand
        self.col_ts = [np.zeros((capacity, T * n if l else 1), dtype=np.int32) for l, n in enumerate(sizes[:-1])]

    def accumulate(self, ptrs, idxs, labels, layers, feedback, error_start, grads):
        """Train samples (CSR ``ptrs[s]``, ``idxs[s]``) into ``grads``, ``capacity`` at a time;
        returns (counts, loss) of all. ``grads[l].rows``/``n_rows``/``touched`` are kept up to
        date as the one-sample path keeps them."""
        counts, loss = [], []
        for a in range(0, len(ptrs), self.capacity):
            b = a + self.capacity
            c, lo = self._chunk(ptrs[a:b], idxs[a:b], labels[a:b], layers, feedback, error_start, grads)
            counts.append(c)
            loss.append(lo)
        return np.concatenate(counts), np.concatenate(loss)

    def _chunk(self, ptrs, idxs, labels, layers, feedback, error_start, grads):
        n = len(ptrs)
        in_ptr = np.stack(ptrs)
        width = max(1, max(int(p[-1]) for p in ptrs))
        in_idx = np.zeros((n, width), dtype=np.int32)
        for s, idx in enumerate(idxs):
            in_idx[s, : idx.shape[0]] = idx
        if self.col_ts[0].shape[1] < width:
            self.col_ts[0] = np.zeros((self.capacity, width), dtype=np.int32)
        n_out = layers[-1].wt.shape[1]
        counts = np.zeros((n, n_out), dtype=np.int64)
        loss = np.zeros(n, dtype=np.float64)
        lams, ths, wins, amps = (np.array([lay.params[k] for lay in layers], dtype=self.dtype) for k in range(4))
        n_rows = np.array([g.n_rows for g in grads], dtype=np.int64)
        threads = numba.get_num_threads()
        blocks, n_blocks = block_edges([lay.wt.shape[1] for lay in layers], threads)
        with numba.parallel_chunksize(1):  # samples differ in cost: hand them out one at a time
            train_chunk(
                in_ptr,
                in_idx,
                np.asarray(labels, dtype=np.int64),
                error_start,
                float(self.timesteps - error_start),
                tuple(lay.wt for lay in layers),
                tuple(lay.b for lay in layers),
                lams,
                ths,
                wins,
                amps,
                tuple(feedback),
                tuple(v[:n] for v in self.vs),
                tuple(p[:n] for p in self.out_ptrs),
                tuple(i[:n] for i in self.out_idxs),
                tuple(d[:n] for d in self.deltas),
                tuple(c[:n] for c in self.col_ptrs),
                tuple(c[:n] for c in self.col_ts),
                self.hs,
                tuple(g.gwt for g in grads),
                tuple(g.gb for g in grads),
                tuple(g.touched for g in grads),
                tuple(g.rows for g in grads),
                n_rows,
                blocks,
                n_blocks,
                counts,
                loss,
            )
        for g, r in zip(grads, n_rows):
            g.n_rows = int(r)
        return counts, loss


def block_edges(widths, threads: int) -> tuple[np.ndarray, np.ndarray]:
    """Per layer, one block of units per thread (fewer if the layer has fewer than 16 units per
    thread), the inner edges at multiples of 16 units (64 bytes of float32: threads never share a
    cache line of the gradient) and as even as that allows: 500 → 256 + 244, 100 → 48 + 52."""
    counts = [max(1, min(threads, width // 16)) for width in widths]
    edges = np.zeros((len(widths), max(counts) + 1), dtype=np.int64)
    for l, (width, n) in enumerate(zip(widths, counts)):
        for b in range(1, n):
            edges[l, b] = int(round(b * width / n / 16)) * 16
        edges[l, n] = width
    return edges, np.array(counts, dtype=np.int64)


def use_threads(threads: int) -> int:
    """Run the parallel phases on ``threads`` threads (0 = every core Numba may use); returns it."""
    most = int(getattr(numba.config, "NUMBA_NUM_THREADS"))  # noqa: B009 - set at run time, unknown to mypy
    n = most if threads <= 0 else min(threads, most)
    numba.set_num_threads(n)
    return n
