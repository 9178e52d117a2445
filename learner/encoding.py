"""Input encoders: event packets and MNIST images → binary spike rasters.

The learner consumes a :class:`SpikeRaster`: which inputs spike at each time
step, in CSR form by step. Everything here is a pure function over arrays so the
sources (dataset readers, live windowers) can reuse it.

Event binning (``encode_events``), following ../shared/docs/biograd-algorithm.md §6:

* time relative to ``t_origin`` (µs). N-MNIST files start at about 0 µs, so the
  N-MNIST encoder uses the timestamps as given (``t_origin = 0``); a live
  windower passes its window start;
* each timestamp is first rounded to the nearest ``round_us`` (1 000 µs = whole
  milliseconds, half-way cases rounded up), then binned:
  ``step = rounded_t // bin_us``; events with ``step`` outside ``[0, timesteps)``
  are dropped (N-MNIST: everything from 299.5 ms on);
* input index ``(p, y, x)`` flattened: ``p * H * W + y * W + x``
  (with ``polarity_channels = 1`` both polarities share channel 0);
* binary: several events of one input in one bin give one spike.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from biograd.core.errors import EventFormatError
from biograd.core.events import EVENT_DTYPE, NMNIST_GEOMETRY, Geometry

NMNIST_TIMESTEPS = 60
NMNIST_BIN_US = 5000
MNIST_TIMESTEPS = 20


class SpikeRaster(NamedTuple):
    """Binary input raster in CSR form by time step.

    Inputs spiking at step ``t`` are ``indices[indptr[t]:indptr[t + 1]]``
    (sorted, no repeats). ``indptr`` is int64 of length T + 1, ``indices`` int32.
    """

    indptr: np.ndarray
    indices: np.ndarray
    n_inputs: int

    @property
    def timesteps(self) -> int:
        return self.indptr.shape[0] - 1

    @property
    def n_spikes(self) -> int:
        return int(self.indptr[-1])

    def to_dense(self) -> np.ndarray:
        """(T, n_inputs) uint8 array of 0/1."""
        out = np.zeros((self.timesteps, self.n_inputs), dtype=np.uint8)
        for t in range(self.timesteps):
            out[t, self.indices[self.indptr[t] : self.indptr[t + 1]]] = 1
        return out

    @classmethod
    def from_dense(cls, dense) -> SpikeRaster:
        """Build from a (T, n_inputs) array; any non-zero entry is a spike."""
        dense = np.asarray(dense)
        if dense.ndim != 2:
            raise EventFormatError(f"dense raster must be 2-D (T, n_inputs), got shape {dense.shape}")
        steps, idx = np.nonzero(dense)
        indptr = np.zeros(dense.shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(steps, minlength=dense.shape[0]), out=indptr[1:])
        return cls(indptr, idx.astype(np.int32), int(dense.shape[1]))


@njit(cache=True, nogil=True, inline="always")
def _step_of(tk, t_origin, half, bin_us, round_us, one_div):
    u = tk - t_origin + half
    if one_div:
        return u // bin_us  # floor division: rounds toward -inf for u < 0
    return ((u // round_us) * round_us) // bin_us


@njit(cache=True, nogil=True)
def _bin_events_any_order(t, x, y, p, width, height, channels, timesteps, bin_us, round_us, t_origin):
    """:func:`_bin_events` for events in any time order.

    Two stable counting sorts (by input, then by step) order the spikes by
    (step, input) in O(events + inputs + steps); repeats are then adjacent.
    """
    n = t.shape[0]
    n_inputs = channels * width * height
    plane = width * height
    step_of = np.empty(n, dtype=np.int32)
    key = np.empty(n, dtype=np.int32)
    half = round_us // 2
    one_div = bin_us % round_us == 0
    nv = 0
    for k in range(n):
        if x[k] >= width:
            return np.zeros(timesteps + 1, np.int64), np.empty(0, np.int32), k, 1
        if y[k] >= height:
            return np.zeros(timesteps + 1, np.int64), np.empty(0, np.int32), k, 2
        if p[k] > 1:
            return np.zeros(timesteps + 1, np.int64), np.empty(0, np.int32), k, 3
        s = _step_of(t[k], t_origin, half, bin_us, round_us, one_div)
        if s < 0 or s >= timesteps:
            continue
        ch = p[k] if channels == 2 else 0
        step_of[nv] = s
        key[nv] = ch * plane + np.int32(y[k]) * width + x[k]
        nv += 1
    # stable counting sort by input
    cnt = np.zeros(n_inputs + 1, dtype=np.int32)
    for k in range(nv):
        cnt[key[k] + 1] += 1
    for i in range(n_inputs):
        cnt[i + 1] += cnt[i]
    by_input = np.empty(nv, dtype=np.int32)
    for k in range(nv):
        i = key[k]
        by_input[cnt[i]] = k
        cnt[i] += 1
    # stable counting sort by step: inputs end up ascending within each step
    indptr = np.zeros(timesteps + 1, dtype=np.int64)
    for k in range(nv):
        indptr[step_of[k] + 1] += 1
    for step in range(timesteps):
        indptr[step + 1] += indptr[step]
    fill = indptr[:timesteps].copy()
    raw = np.empty(nv, dtype=np.int32)
    for r in range(nv):
        k = by_input[r]
        s = step_of[k]
        raw[fill[s]] = key[k]
        fill[s] += 1
    # drop repeats (adjacent now), compacting in place
    m = 0
    start = 0
    for s in range(timesteps):
        end = indptr[s + 1]
        prev = -1
        for k in range(start, end):
            val = raw[k]
            if val != prev:
                raw[m] = val
                m += 1
                prev = val
        start = end
        indptr[s + 1] = m
    return indptr, raw[:m], -1, 0


@njit(cache=True, nogil=True)
def _bin_events(t, x, y, p, width, height, channels, timesteps, bin_us, round_us, t_origin):
    """CSR raster of the events; returns (indptr, indices, bad_index, bad_code).

    bad_code: 0 ok, 1 x out of range, 2 y out of range, 3 polarity > 1.
    Events in time order (the usual case) take one pass that also drops repeats
    (a per-input stamp of the last step it spiked in), then two stable counting
    sorts (by input, then by step) order the spikes by (step, input). Events out
    of time order go to :func:`_bin_events_any_order`.
    """
    n = t.shape[0]
    n_inputs = channels * width * height
    plane = width * height
    half = round_us // 2
    # When round_us divides bin_us, rounding then binning is one floor division:
    # step = floor((t - origin + half) / bin_us).
    one_div = bin_us % round_us == 0
    rec_step = np.empty(n, dtype=np.int32)
    rec_key = np.empty(n, dtype=np.int32)
    stamp = np.full(n_inputs, -1, dtype=np.int32)
    key_ptr = np.zeros(n_inputs + 1, dtype=np.int32)
    indptr = np.zeros(timesteps + 1, dtype=np.int64)
    # bounds of the current bin in raw time: sorted events divide once per step
    lo = np.int64(1)
    hi = np.int64(0)
    cur = np.int64(0)
    last = np.int64(-(2**62))
    nv = 0
    for k in range(n):
        if x[k] >= width:
            return indptr, np.empty(0, np.int32), k, 1
        if y[k] >= height:
            return indptr, np.empty(0, np.int32), k, 2
        if p[k] > 1:
            return indptr, np.empty(0, np.int32), k, 3
        tk = t[k]
        if tk < last:
            return _bin_events_any_order(t, x, y, p, width, height, channels, timesteps, bin_us, round_us, t_origin)
        last = tk
        if tk < lo or tk >= hi:
            cur = _step_of(tk, t_origin, half, bin_us, round_us, one_div)
            if one_div:
                lo = cur * bin_us - half + t_origin
                hi = lo + bin_us
        s = cur
        if s < 0 or s >= timesteps:
            continue
        ch = p[k] if channels == 2 else 0
        key = ch * plane + np.int32(y[k]) * width + x[k]
        if stamp[key] == s:
            continue
        stamp[key] = s
        rec_step[nv] = s
        rec_key[nv] = key
        key_ptr[key + 1] += 1
        indptr[s + 1] += 1
        nv += 1
    for i in range(n_inputs):
        key_ptr[i + 1] += key_ptr[i]
    by_input = np.empty(nv, dtype=np.int32)
    for r in range(nv):
        i = rec_key[r]
        by_input[key_ptr[i]] = r
        key_ptr[i] += 1
    for step in range(timesteps):
        indptr[step + 1] += indptr[step]
    fill = indptr[:timesteps].copy()
    out = np.empty(nv, dtype=np.int32)
    for q in range(nv):
        r = by_input[q]
        s = rec_step[r]
        out[fill[s]] = rec_key[r]
        fill[s] += 1
    return indptr, out, -1, 0


def encode_events(
    events: np.ndarray,
    geometry: Geometry,
    timesteps: int,
    bin_us: int,
    polarity_channels: int = 2,
    *,
    t_origin: int = 0,
    round_us: int = 1000,
    source: str = "event packet",
) -> SpikeRaster:
    """Bin ``events`` (EVENT_DTYPE) into a binary :class:`SpikeRaster` of ``timesteps`` steps.

    ``n_inputs = polarity_channels * height * width``. See the module docstring
    for the rounding and time-origin rules. Events outside the sensor or with a
    polarity other than 0/1 raise :class:`EventFormatError` naming ``source``.
    """
    if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE or events.ndim != 1:
        got = getattr(events, "dtype", type(events).__name__)
        raise EventFormatError(f"{source}: expected a 1-D array of {EVENT_DTYPE}, got {got}")
    if polarity_channels not in (1, 2):
        raise EventFormatError(f"polarity_channels must be 1 or 2, got {polarity_channels!r}")
    if timesteps < 1 or bin_us < 1 or round_us < 1:
        raise EventFormatError(f"timesteps, bin_us and round_us must be >= 1, got {timesteps}, {bin_us}, {round_us}")
    indptr, indices, bad, code = _bin_events(
        events["t"],
        events["x"],
        events["y"],
        events["p"],
        int(geometry.width),
        int(geometry.height),
        int(polarity_channels),
        int(timesteps),
        int(bin_us),
        int(round_us),
        int(t_origin),
    )
    if code:
        field, value = {1: ("x", events["x"]), 2: ("y", events["y"]), 3: ("polarity", events["p"])}[code]
        limit = {
            1: f"the {geometry.width}x{geometry.height} sensor",
            2: f"the {geometry.width}x{geometry.height} sensor",
            3: "0 or 1",
        }[code]
        raise EventFormatError(f"{source}: event {bad} has {field}={int(value[bad])}, expected {limit}")
    return SpikeRaster(indptr, indices, polarity_channels * geometry.width * geometry.height)


def encode_nmnist(events: np.ndarray, source: str = "N-MNIST sample") -> SpikeRaster:
    """N-MNIST sample → 60 binary 5-ms bins of the first 300 ms, 2312 inputs (p, y, x).

    Timestamps are used as given (N-MNIST recordings start at about 0 µs).
    """
    return encode_events(events, NMNIST_GEOMETRY, NMNIST_TIMESTEPS, NMNIST_BIN_US, 2, source=source)


def _check_image(image_u8) -> np.ndarray:
    image = np.asarray(image_u8)
    if image.dtype != np.uint8:
        raise EventFormatError(f"MNIST image must be uint8, got {image.dtype}")
    if image.ndim not in (1, 2):
        raise EventFormatError(f"MNIST image must be 1-D or 2-D, got shape {image.shape}")
    return image


def mnist_rate_raster(image_u8, timesteps: int, rng: np.random.Generator) -> SpikeRaster:
    """Bernoulli rate code: input i spikes at step t iff U(0,1) < pixel_i / 255.

    One uniform draw per (step, pixel) from ``rng``, in (t, pixel) order.
    Input index = row-major pixel index (784 for 28 x 28).
    """
    image = _check_image(image_u8)
    prob = image.reshape(-1).astype(np.float64) / 255.0
    dense = rng.random((timesteps, prob.shape[0])) < prob
    return SpikeRaster.from_dense(dense)
