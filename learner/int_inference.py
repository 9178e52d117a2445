"""Integer event-driven inference over int8 weights: the Loihi fixed-point neuron on the CPU.

The arrays come from the Loihi export (``deploy.quantize``; the bridge is
``deploy.cpu_inference``): this module takes integers only, so one quantised model
serves the chip and the CPU and the learner layer never imports deploy.

Per weight layer, in voltage units (Lava ``PyDenseModelBitAcc`` + ``PyLifResetModelBitAcc``)::

    a(t) = (Σ_j h_ij s_j(t)) << shift                h = mantissa / 2 (int8: mantissas are even)
    v(t) = sgn(d)(|d| >> 12) + a(t) + bias,          d = v(t-1) · decay
    v(t) = clip(v(t), ±(2^23 - 1));  s(t) = [v(t) > vth];  v ← 0 on a spike

``shift = weight_exp + 7`` (the even mantissa's factor 2, then Lava's ``<< 6``), ``bias =
bias_mant << bias_exp``, ``vth`` already ``<< 6``, ``decay = 4096 - dv``. These are exactly the
integers of ``deploy.inference.reference_counts`` with ``fixed``, which the Lava ``fixed_pt``
graph matches count for count.

Integer sums do not depend on their order, so the fused kernel adds weight rows straight
from the raw, time-ordered events (no CSR raster, no sort) and still gives the counts of the
raster path bit for bit. Rows are summed in int16 (|h| <= 127, at most 256 rows per partial
sum: exact) and widened once per step. The layers above the first carry their input sum from
step to step and add only the rows of units whose spike changed (:func:`_network_step`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numba import njit

from biograd.core.errors import BioGradError, EventFormatError
from biograd.core.events import EVENT_DTYPE, Geometry
from biograd.learner.encoding import SpikeRaster, _step_of, encode_events
from biograd.learner.kernels import check_raster

V_MAX = 2**23 - 1  # Loihi's 24-bit signed voltage, symmetric clip as in the oracle
DECAY_UNITY = 4096
_CHUNK = 256  # rows per int16 partial sum: 256 * 127 < 2^15
_PAD = 16


class IntLayer(NamedTuple):
    """One weight layer in integers (see the module docstring)."""

    wt: np.ndarray  # int8 (N_in, N_out), C-contiguous: one row per presynaptic input
    shift: int
    bias: np.ndarray  # int64 (N_out,)
    vth: int
    decay: int


@njit(cache=True, nogil=True, inline="always")
def _rows16(acc16, wt, idx, c0, c1):
    """acc16 = Σ_{c0 <= k < c1} wt[idx[k]] (at most 256 rows: exact in int16), eight rows per
    pass; c1 - c0 is a multiple of 8 (:func:`_pad8`)."""
    n = acc16.shape[0]
    for i in range(n):
        acc16[i] = 0
    k = c0
    while k + 8 <= c1:
        r0, r1, r2, r3 = wt[idx[k]], wt[idx[k + 1]], wt[idx[k + 2]], wt[idx[k + 3]]
        r4, r5, r6, r7 = wt[idx[k + 4]], wt[idx[k + 5]], wt[idx[k + 6]], wt[idx[k + 7]]
        for i in range(n):
            s0 = (np.int16(r0[i]) + np.int16(r1[i])) + (np.int16(r2[i]) + np.int16(r3[i]))
            s1 = (np.int16(r4[i]) + np.int16(r5[i])) + (np.int16(r6[i]) + np.int16(r7[i]))
            acc16[i] += s0 + s1
        k += 8


@njit(cache=True, nogil=True, inline="always")
def _pad8(idx, e, zero):
    """Round a row list up to whole passes of eight with the all-zero row: cheaper than a pass
    over the sum per leftover row."""
    for j in range(8):
        idx[e + j] = zero
    return (e + 7) // 8 * 8


@njit(cache=True, nogil=True, inline="always")
def _sum_rows(acc16, acc32, wt, idx, e):
    """acc32 += Σ_{k < e} wt[idx[k]] (int32) through int16 partial sums of 256 rows."""
    for c0 in range(0, e, _CHUNK):
        _rows16(acc16, wt, idx, c0, min(c0 + _CHUNK, e))
        for i in range(acc32.shape[0]):
            acc32[i] += acc16[i]


@njit(cache=True, nogil=True, inline="always")
def _lif_step(acc, v, scale, bias, vth, decay, n_next, change, dkey):
    """One Loihi LIF step for a layer from its summed input ``acc`` (int16 or int32).

    float64 holds every integer here exactly (|v · decay| < 2^36, |a| < 2^34 before the clip;
    ``decay`` is passed as decay / 4096, exact), and sgn(d)(|d| >> 12) is trunc(d / 4096): the
    loop vectorises, unlike int64 (no AVX2 multiply). ``v`` keeps the voltage before the reset, so [v > vth] is the last step's spike
    and the reset is applied here. For the layer above: change[i] = s_i(t) xor s_i(t-1), and
    dkey[i] its row of [W; -W]: i if unit i starts spiking, n_next + i if it stops.
    """
    vmax = np.float64(V_MAX)
    for i in range(v.shape[0]):
        x = v[i]
        was = x > vth
        y = np.trunc(x * decay) if not was else 0.0
        x = min(max(y + acc[i] * scale + bias[i], -vmax), vmax)
        v[i] = x
        change[i] = np.uint8(x > vth) ^ np.uint8(was)
        dkey[i] = np.int32(i) + np.int32(n_next) * np.int32(was)


@njit(cache=True, nogil=True, inline="always")
def _compact(change, dkey, out):
    """out[:m] = the dkey of the m changed units; branch-free (units change at 10-20 % per
    step, where a branch per unit mispredicts often), unsigned so no index wraparound."""
    m = np.uint64(0)
    for i in range(change.shape[0]):
        out[m] = dkey[i]
        m += np.uint64(change[i])
    return np.int64(m)


@njit(cache=True, nogil=True)
def _network_step(in_idx, n_in, net, work, counts):
    """All layers for one time step, given the input layer's active inputs in_idx[:n_in].

    Layer 0 sums the rows of this step's inputs. A hidden unit's spike train persists from step
    to step, so the layers above keep their input sum and add only the change: rows of W for
    units that start spiking, of -W for units that stop (``wts[l]`` = [W; -W; 0] for l >= 1;
    integer sums, so exact in any order). On a trained N-MNIST network the second layer then
    adds 4 400 rows per sample instead of 11 400 (the third: 600 instead of 2 700).
    """
    wts, scales, biases, vths, decays = net
    acc16s, acc32s, vs, changes, dkeys, keys = work[:6]
    last = len(wts) - 1
    n_next = wts[min(1, last)].shape[0] // 2 if last > 0 else 0
    n_in = _pad8(in_idx, n_in, wts[0].shape[0] - 1)
    if n_in <= _CHUNK:  # as always on N-MNIST: the LIF reads the int16 sum, no int32 pass
        _rows16(acc16s[0], wts[0], in_idx, 0, n_in)
        _lif_step(acc16s[0], vs[0], scales[0], biases[0], vths[0], decays[0], n_next, changes[0], dkeys[0])
    else:
        acc = acc32s[0]
        acc[:] = 0
        _sum_rows(acc16s[0], acc, wts[0], in_idx, n_in)
        _lif_step(acc, vs[0], scales[0], biases[0], vths[0], decays[0], n_next, changes[0], dkeys[0])
    for l in range(1, last + 1):
        m = _pad8(keys[l - 1], _compact(changes[l - 1], dkeys[l - 1], keys[l - 1]), wts[l].shape[0] - 1)
        _sum_rows(acc16s[l], acc32s[l], wts[l], keys[l - 1], m)
        n_next = wts[min(l + 1, last)].shape[0] // 2 if l < last else 0
        _lif_step(acc32s[l], vs[l], scales[l], biases[l], vths[l], decays[l], n_next, changes[l], dkeys[l])
    v = vs[last]
    vth = vths[last]
    for i in range(counts.shape[0]):
        counts[i] += v[i] > vth


@njit(cache=True, nogil=True, inline="always")
def _reset(work):
    """A new sample: voltages and the hidden layers' running input sums back to 0."""
    acc32s, vs = work[1], work[2]
    for l in range(len(vs)):
        vs[l][:] = 0.0
        acc32s[l][:] = 0


@njit(cache=True, nogil=True)
def raster_counts(in_ptr, in_idx, net, work):
    """Output spike counts (int64) of one sample given as a CSR raster by step."""
    _reset(work)
    counts = np.zeros(work[2][len(work[2]) - 1].shape[0], dtype=np.int64)
    steps = in_ptr.shape[0] - 1
    buf = np.empty(max([in_ptr[t + 1] - in_ptr[t] for t in range(steps)]) + 8, dtype=np.int32)  # + _pad8
    for t in range(steps):
        e = in_ptr[t + 1] - in_ptr[t]
        buf[:e] = in_idx[in_ptr[t] : in_ptr[t + 1]]
        _network_step(buf, e, net, work, counts)
    return counts


@njit(cache=True, nogil=True)
def _events_into(ev, a, b, geo, net, work, counts):
    """Counts of the events [a, b) into ``counts``; returns (bad_index, code), see :func:`event_counts`.

    Event and input indices are unsigned: Numba checks a signed index for wraparound on
    every access, which cost about 40 % of this loop.
    """
    t, x, y, p = ev
    keys, stamp = work[6], work[7]
    width, height, channels, timesteps, bin_us, round_us, t_origin = geo
    plane = np.uint64(width * height)
    wu = np.uint64(width)
    half = round_us // 2
    one_div = bin_us % round_us == 0
    _reset(work)
    stamp[:] = -1
    counts[:] = 0
    hi = np.int64(-(2**62))  # end of the current bin in raw time: sorted events divide once per bin
    cur = np.int64(-1)
    cur32 = np.int32(-1)
    last = np.int64(-(2**62))
    done = 0  # steps already run
    nk = np.uint64(0)  # distinct inputs of step `done` so far
    k = np.uint64(a)
    end = np.uint64(b)
    while k < end:
        tk = t[k]
        xk = x[k]
        yk = y[k]
        pk = p[k]
        # one branch for the four checks (non-short-circuit |): all four are almost never true
        if (xk >= width) | (yk >= height) | (pk > 1) | (tk < last):
            bad = np.int64(k) - a
            if xk >= width:
                return bad, 1
            if yk >= height:
                return bad, 2
            if pk > 1:
                return bad, 3
            return bad, 4
        last = tk
        if tk >= hi:
            cur = _step_of(tk, t_origin, half, bin_us, round_us, one_div)
            hi = cur * bin_us - half + t_origin + bin_us if one_div else tk + 1
            if cur >= timesteps:
                break
            while done < cur:
                _network_step(keys, np.int64(nk), net, work, counts)
                done += 1
                nk = np.uint64(0)
            cur32 = np.int32(cur)
        if cur >= 0:
            key = (np.uint64(pk) if channels == 2 else np.uint64(0)) * plane + np.uint64(yk) * wu + np.uint64(xk)
            # a repeat of an input within the bin is stored and not counted (no branch)
            seen = stamp[key] == cur32
            stamp[key] = cur32
            keys[nk] = key
            nk += np.uint64(1) - np.uint64(seen)
        k += np.uint64(1)
    # binning stops at the first event past the window; the rest still has to be valid input
    for j in range(np.int64(k), b):
        if x[j] >= width:
            return j - a, 1
        if y[j] >= height:
            return j - a, 2
        if p[j] > 1:
            return j - a, 3
    while done < timesteps:
        _network_step(keys, np.int64(nk), net, work, counts)
        done += 1
        nk = np.uint64(0)
    return np.int64(-1), 0


@njit(cache=True, nogil=True)
def event_counts(ev, geo, net, work):
    """Output counts straight from raw events in time order, binned as ``encoding.encode_events``.

    ``ev`` = the (t, x, y, p) fields; ``geo`` = (width, height, channels, timesteps, bin_us,
    round_us, t_origin); ``net`` and ``work`` = the arrays and workspaces of :class:`IntNetwork`.
    Returns (counts, bad_index, code): code 0 ok, 1/2/3 x/y/polarity out of range at
    bad_index (as ``encoding._bin_events``), 4 events not in time order (the caller bins
    them with the any-order encoder instead).
    """
    counts = np.zeros(work[2][len(work[2]) - 1].shape[0], dtype=np.int64)
    bad, code = _events_into(ev, 0, ev[0].shape[0], geo, net, work, counts)
    return counts, bad, code


@njit(cache=True, nogil=True)
def event_counts_packed(ev, starts, geo, net, work, counts, codes):
    """:func:`event_counts` for every sample of a packed array (sample i = events
    [starts[i], starts[i+1])) in one call; per sample counts[i] and codes[i] = (bad, code)."""
    for i in range(starts.shape[0] - 1):
        bad, code = _events_into(ev, starts[i], starts[i + 1], geo, net, work, counts[i])
        codes[i, 0] = bad
        codes[i, 1] = code


def _fields(events):
    return events["t"], events["x"], events["y"], events["p"]


class IntNetwork:
    """A feed-forward network of :class:`IntLayer` run by the integer event kernels.

    Holds the workspaces, so one instance serves one thread at a time.
    """

    def __init__(self, layers: Sequence[IntLayer], timesteps: int):
        if not layers:
            raise BioGradError("an integer network needs at least one layer")
        if timesteps < 1:
            raise BioGradError(f"timesteps must be >= 1, got {timesteps}")
        n_in = layers[0].wt.shape[0]
        for l, q in enumerate(layers):
            if q.wt.dtype != np.int8 or q.wt.ndim != 2 or not q.wt.flags.c_contiguous:
                raise BioGradError(f"layer {l}: wt must be a C-contiguous 2-D int8 array, got {q.wt.dtype}")
            if q.wt.size and q.wt.min() == -128:
                raise BioGradError(f"layer {l}: weights must be within -127..127 (halved Loihi mantissas)")
            if q.wt.shape[0] != n_in:
                raise BioGradError(f"layer {l}: {q.wt.shape[0]} inputs, the layer below has {n_in} units")
            if q.bias.shape != (q.wt.shape[1],):
                raise BioGradError(f"layer {l}: bias has shape {q.bias.shape}, expected ({q.wt.shape[1]},)")
            if q.bias.dtype.kind != "i" or np.abs(q.bias).max(initial=0) >= 2**31:
                raise BioGradError(f"layer {l}: bias must be integers below 2^31")
            if not 0 <= q.shift <= 24 or not 0 <= q.decay <= DECAY_UNITY or q.vth < 0:
                raise BioGradError(f"layer {l}: shift {q.shift}, decay {q.decay} or vth {q.vth} out of range")
            n_in = q.wt.shape[1]
        self.layers = tuple(layers)
        self.timesteps = int(timesteps)
        self.n_inputs = int(layers[0].wt.shape[0])
        self.n_outputs = int(layers[-1].wt.shape[1])
        # Widths padded to whole vectors (16 int16) with units of zero weight and bias: their
        # v stays 0 <= vth, so they never fire, and the row sums need no scalar tail.
        sizes = [-(-q.wt.shape[1] // _PAD) * _PAD for q in layers]
        wts, biases = [], []
        for l, (q, n) in enumerate(zip(layers, sizes)):
            w = np.zeros((q.wt.shape[0], n), dtype=np.int8)
            w[:, : q.wt.shape[1]] = q.wt
            w = np.concatenate([w, -w, w[:1] * 0] if l > 0 else [w, w[:1] * 0])  # + the zero row
            b = np.zeros(n)
            b[: q.bias.shape[0]] = q.bias
            wts.append(w)
            biases.append(b)
        self._net = (
            tuple(wts),
            np.array([2.0**q.shift for q in layers]),
            tuple(biases),
            np.array([q.vth for q in layers], dtype=np.float64),
            np.array([q.decay / DECAY_UNITY for q in layers]),
        )

        def per_layer(dtype, extra=0):
            return tuple(np.zeros(n + extra, dtype=dtype) for n in sizes)

        # acc16s, acc32s, vs, changes, dkeys, keys (the next layer's rows), bin inputs, stamps
        self._work = (
            *(per_layer(d) for d in (np.int16, np.int32, np.float64, np.uint8, np.int32)),
            per_layer(np.int32, 8),
            np.zeros(self.n_inputs + 8, dtype=np.int32),  # the inputs of a time bin
            np.full(self.n_inputs, -1, dtype=np.int32),  # the bin each input last spiked in
        )

    def counts(self, raster: SpikeRaster) -> np.ndarray:
        """Output spike counts (int64) of one binned sample."""
        if int(raster.n_inputs) != self.n_inputs:
            raise BioGradError(f"raster has {raster.n_inputs} inputs, the network expects {self.n_inputs}")
        ptr = np.ascontiguousarray(raster.indptr, dtype=np.int64)
        idx = np.ascontiguousarray(raster.indices, dtype=np.int32)
        if ptr.shape[0] != self.timesteps + 1:
            raise BioGradError(f"raster has {ptr.shape[0] - 1} time steps, the network runs {self.timesteps}")
        if check_raster(ptr, idx, self.n_inputs):
            raise BioGradError("malformed spike raster")
        return raster_counts(ptr, idx, self._net, self._work)[: self.n_outputs]

    def counts_events(
        self,
        events: np.ndarray,
        geometry: Geometry,
        bin_us: int,
        polarity_channels: int = 2,
        *,
        t_origin: int = 0,
        round_us: int = 1000,
        source: str = "event packet",
    ) -> np.ndarray:
        """Output counts of raw events (EVENT_DTYPE), binned as :func:`encoding.encode_events`.

        Time-ordered events take the fused kernel; others are binned first.
        """
        self._check_events(events, geometry, bin_us, polarity_channels, round_us, source)
        geo = self._geo(geometry, bin_us, polarity_channels, t_origin, round_us)
        counts, _, code = event_counts(_fields(events), geo, self._net, self._work)
        if code == 0:
            return counts[: self.n_outputs]
        return self._slow_path(events, geometry, bin_us, polarity_channels, t_origin, round_us, source, code)

    def counts_events_packed(
        self,
        events: np.ndarray,
        starts: np.ndarray,
        geometry: Geometry,
        bin_us: int,
        polarity_channels: int = 2,
        *,
        t_origin: int = 0,
        round_us: int = 1000,
        source: str = "event packet",
    ) -> np.ndarray:
        """(n_samples, n_out) counts of many samples packed in one array: sample i is
        ``events[starts[i]:starts[i + 1]]``. One kernel call for all (a data set's evaluation)."""
        self._check_events(events, geometry, bin_us, polarity_channels, round_us, source)
        starts = np.ascontiguousarray(starts, dtype=np.int64)
        if starts.ndim != 1 or starts.size < 1 or starts[0] != 0 or starts[-1] != len(events):
            raise BioGradError("starts must run from 0 to len(events)")
        if np.any(np.diff(starts) < 0):
            raise BioGradError("starts must be non-decreasing")
        n = starts.size - 1
        counts = np.zeros((n, self._work[2][-1].shape[0]), dtype=np.int64)
        codes = np.zeros((n, 2), dtype=np.int64)
        opts = (geometry, bin_us, polarity_channels, t_origin, round_us)
        event_counts_packed(_fields(events), starts, self._geo(*opts), self._net, self._work, counts, codes)
        for i in np.flatnonzero(codes[:, 1]):
            sample = events[starts[i] : starts[i + 1]]
            counts[i, : self.n_outputs] = self._slow_path(sample, *opts, f"{source} (sample {i})", int(codes[i, 1]))
        return counts[:, : self.n_outputs]

    def _geo(self, geometry, bin_us, channels, t_origin, round_us):
        w, h = int(geometry.width), int(geometry.height)
        return (w, h, int(channels), self.timesteps, int(bin_us), int(round_us), int(t_origin))

    def _check_events(self, events, geometry, bin_us, polarity_channels, round_us, source):
        if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE or events.ndim != 1:
            raise EventFormatError(f"{source}: expected a 1-D array of {EVENT_DTYPE}")
        if polarity_channels not in (1, 2):
            raise EventFormatError(f"polarity_channels must be 1 or 2, got {polarity_channels!r}")
        if polarity_channels * geometry.width * geometry.height != self.n_inputs:
            raise BioGradError(
                f"{polarity_channels} x {geometry.width} x {geometry.height} inputs, the network expects {self.n_inputs}"
            )
        if bin_us < 1 or round_us < 1:
            raise EventFormatError(f"bin_us and round_us must be >= 1, got {bin_us}, {round_us}")

    def _slow_path(self, events, geometry, bin_us, channels, t_origin, round_us, source, code):
        """Events out of time order (code 4) are binned first; bad events (1-3) raise the
        encoder's error, which names the event, field, value and limit."""
        raster = encode_events(
            events, geometry, self.timesteps, bin_us, channels, t_origin=t_origin, round_us=round_us, source=source
        )
        if code != 4:  # pragma: no cover - the encoder checks the same bounds and raises first
            raise EventFormatError(f"{source}: invalid event (code {code})")
        return self.counts(raster)

    def predict(self, raster: SpikeRaster) -> tuple[int, np.ndarray]:
        """(argmax of the output counts, counts); ties go to the first index."""
        c = self.counts(raster)
        return int(np.argmax(c)), c
