"""Numba kernels of the sleep phase: counter-based noise and the noise-driven network, per noise sample.

The noise is a pure function of (key, step, noise sample, unit): entry k = (t·M_s + m)·N_l + i
gets the uniform ``u = top 24 bits of splitmix64(key + (k + 1)·φ) / 2²⁴`` (φ = 0x9E3779B97F4A7C15,
the splitmix64 increment), i.e. the k-th output of a splitmix64 stream started at ``key``, with
float32 resolution like NumPy's ``random(dtype=float32)``. A counter-based draw lets each thread
make its own noise samples' draws and keeps the result independent of the thread count.

With q = r(1 - r), ξ = +1 where u < q, -1 where u ≥ 1 - q, else 0: ξ⁺ - ξ⁻ of two independent
Bernoulli(r) spikes (+1 and -1 with probability r(1 - r) each).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, uint64

_PHI = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB
_TO_UNIT = 1.0 / (1 << 24)


@njit(cache=True, nogil=True, inline="always")
def _uniform(key, k):
    z = uint64(key) + uint64(k + 1) * uint64(_PHI)
    z = (z ^ (z >> uint64(30))) * uint64(_M1)
    z = (z ^ (z >> uint64(27))) * uint64(_M2)
    z = z ^ (z >> uint64(31))
    return np.float32(np.int64(z >> uint64(40)) * _TO_UNIT)


@njit(cache=True, nogil=True, inline="always")
def _signed_row_sum(wt, rows, signs, count, out):
    """out = Σ_k signs[k] · wt[rows[k]] (k < count), eight rows per pass (with one read-modify-write
    of ``out`` per pass the adds are not bound by store-to-load latency; measured 2× over one row)."""
    width = out.shape[0]
    for o in range(width):
        out[o] = 0
    k = 0
    while k + 8 <= count:
        r0, r1, r2, r3 = wt[rows[k]], wt[rows[k + 1]], wt[rows[k + 2]], wt[rows[k + 3]]
        r4, r5, r6, r7 = wt[rows[k + 4]], wt[rows[k + 5]], wt[rows[k + 6]], wt[rows[k + 7]]
        s0, s1, s2, s3 = signs[k], signs[k + 1], signs[k + 2], signs[k + 3]
        s4, s5, s6, s7 = signs[k + 4], signs[k + 5], signs[k + 6], signs[k + 7]
        for o in range(width):
            out[o] += ((s0 * r0[o] + s1 * r1[o]) + (s2 * r2[o] + s3 * r3[o])) + (
                (s4 * r4[o] + s5 * r5[o]) + (s6 * r6[o] + s7 * r7[o])
            )
        k += 8
    while k < count:
        row = wt[rows[k]]
        sk = signs[k]
        for o in range(width):
            out[o] += sk * row[o]
        k += 1


@njit(cache=True, nogil=True)
def noise_uniforms(key, steps, samples, n):
    """The uniforms (steps, samples, n) float32 that the sleep kernel draws for one layer."""
    u = np.empty((steps, samples, n), dtype=np.float32)
    k = 0
    for t in range(steps):
        for m in range(samples):
            for i in range(n):
                u[t, m, i] = _uniform(key, k)
                k += 1
    return u


@njit(cache=True, nogil=True, parallel=True)
def sleep_statistics(key, q, steps, wts, bs, lams, ths, vs, ss, ups, nz, sign, uniforms, h, n):
    """One hidden layer's sleep statistics: h[m] = Σ_t ξ(t, m) and n[m] = Σ_t s_out(t, m).

    ``wts[0]`` (N_l × N_{l+1}, transposed storage) carries the noise to the layer directly above,
    without bias; ``wts[1:]``, ``bs[1:]`` are the layers further up, with bias; every layer starts
    from reset and runs v = λ v (1 - s) + I, s = [v > θ]. Noise samples are independent: one
    ``prange`` iteration each. ``vs``, ``ss``, ``ups`` (per upper layer, M_s × width) and ``nz``,
    ``sign``, ``uniforms`` (M_s × N_l) are workspaces.
    """
    samples, n_l = h.shape
    n_upper = len(wts)
    dt = h.dtype
    for m in prange(samples):
        hm = h[m]
        nm = n[m]
        hm[:] = 0
        nm[:] = 0
        nzm = nz[m]
        sgm = sign[m]
        um = uniforms[m]
        for pos in range(n_upper):
            vs[pos][m, :] = 0
            ss[pos][m, :] = 0
        one = np.ones(1, dtype=dt)[0]
        hi = np.float32(1.0) - q
        for t in range(steps):
            base = (t * samples + m) * n_l
            for i in range(n_l):  # a loop of its own: the hashes vectorise
                um[i] = _uniform(key, base + i)
            count = 0
            for i in range(n_l):  # branch-free compaction of the non-zero ξ, in unit order
                u = um[i]
                val = one * (u < q) - one * (u >= hi)
                nzm[count] = i
                sgm[count] = val
                count += val != 0
            for k in range(count):
                hm[nzm[k]] += sgm[k]
            for pos in range(n_upper):
                wt = wts[pos]
                v = vs[pos][m]
                s = ss[pos][m]
                lam = lams[pos]
                th = ths[pos]
                width = wt.shape[1]
                for o in range(width):
                    v[o] *= lam * (1 - s[o])
                if pos == 0:
                    # W_{l+1} ξ as a dot product in unit order (no bias: it cancels in ξ⁺ - ξ⁻)
                    cur = ups[0][m]
                    _signed_row_sum(wt, nzm, sgm, count, cur)
                    for o in range(width):
                        v[o] += cur[o]
                else:
                    below = ss[pos - 1][m]
                    up = ups[pos][m]
                    up[:] = 0
                    for j in range(below.shape[0]):
                        if below[j] != 0:
                            row = wt[j]
                            for o in range(width):
                                up[o] += row[o]
                    b = bs[pos]
                    for o in range(width):
                        v[o] += up[o] + b[o]
                for o in range(width):
                    s[o] = v[o] > th
            last = ss[n_upper - 1][m]
            for o in range(nm.shape[0]):
                nm[o] += last[o]
