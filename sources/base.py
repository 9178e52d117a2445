"""What every source hands on: labelled ``Sample``s (datasets) or event packets (streams).

Datasets (N-MNIST, MNIST) iterate :class:`Sample`s in a seeded order. Streams
(AEDAT4 replay, DVS camera, DV network stream) iterate event packets; a
:class:`sources.windowing.Windower` turns packets into ``Sample``s.

A stream never stops on one bad packet: :func:`check_packet` tells it whether a
packet is usable, and the stream skips and counts the bad ones in its
:class:`StreamStats`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit

from biograd.core.errors import EventFormatError
from biograd.core.events import Geometry, validate_events


@dataclass(frozen=True)
class Sample:
    """One labelled (or unlabelled, ``label=None``) stretch of events."""

    sample_id: str
    label: int | None
    events: np.ndarray
    geometry: Geometry


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool = True, salt: int | None = None) -> np.ndarray:
    """Visiting order of ``n`` samples in ``epoch``: a permutation seeded by (seed, epoch), or
    by (seed, epoch, salt) when ``salt`` is given (a separate stream, e.g. bench/experiments.py's
    logged runs, whose orders must stay as they were)."""
    if not shuffle:
        return np.arange(n)
    return np.random.default_rng([seed, epoch] if salt is None else [seed, epoch, salt]).permutation(n)


def seeded_subset(n: int, limit: int, seed: int) -> np.ndarray:
    """Sorted indices of a fixed subset of ``limit`` of ``n`` items (all when limit is 0 or >= n)."""
    if not limit or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng([seed, 0x5EB5E7]).permutation(n)[:limit])


class SeededDataset:
    """Epoch-aware seeded iteration shared by the datasets.

    Subclasses set ``seed, shuffle, epochs, skip, epoch`` and define ``__len__``
    and ``sample(i, epoch)``. With ``epoch`` set, iteration is one pass over
    that epoch from position ``skip``; otherwise ``epochs`` epochs, skipping the
    first ``skip`` samples of the whole run.
    """

    seed = 0
    shuffle = True
    epochs = 1
    skip = 0
    epoch: int | None = None

    def __len__(self) -> int:
        raise NotImplementedError

    def sample(self, i: int, epoch: int = 0) -> Sample:
        raise NotImplementedError

    def iter_epoch(self, epoch: int, start: int = 0):
        """Samples of ``epoch`` in its seeded order, from position ``start``."""
        for i in epoch_order(len(self), self.seed, epoch, self.shuffle)[start:]:
            yield self.sample(int(i), epoch)

    def __iter__(self):
        if self.epoch is not None:
            yield from self.iter_epoch(self.epoch, self.skip)
            return
        n = len(self)
        if n == 0:
            return
        first_epoch, start = divmod(self.skip, n)
        for epoch in range(first_epoch, self.epochs):
            yield from self.iter_epoch(epoch, start if epoch == first_epoch else 0)


@dataclass
class StreamStats:
    """Counters a stream keeps while it runs (mutable: the stream updates them).

    ``skipped`` counts non-event packets by kind (frames, IMU, triggers);
    ``invalid`` bad event packets that were dropped (corrupt, outside the sensor,
    time going backwards); ``dropped`` packets lost because the consumer fell
    behind; ``gaps`` suspected losses upstream (time jumps, see live.py);
    ``reconnects`` network reconnections; ``bad_events`` events dropped from a
    packet whose other events were kept; ``skipped_bytes`` bytes of a damaged
    file that could not be decoded.
    """

    packets: int = 0
    events: int = 0
    skipped: dict = field(default_factory=dict)
    invalid: int = 0
    dropped: int = 0
    gaps: int = 0
    bad_events: int = 0  # events dropped inside otherwise usable packets
    skipped_bytes: int = 0  # bytes of a file that could not be decoded
    reconnects: int = 0
    last_error: str = ""

    def skip(self, kind: str, n: int = 1) -> None:
        self.skipped[kind] = self.skipped.get(kind, 0) + n

    def as_dict(self) -> dict:
        return {
            "packets": self.packets,
            "events": self.events,
            "skipped": dict(self.skipped),
            "invalid": self.invalid,
            "dropped": self.dropped,
            "gaps": self.gaps,
            "bad_events": self.bad_events,
            "skipped_bytes": self.skipped_bytes,
            "reconnects": self.reconnects,
        }


def check_packet(events: np.ndarray, geometry: Geometry, source: str, last_t: int | None) -> str:
    """ "" if ``events`` is a usable packet after a packet ending at ``last_t``, else the reason.

    Usable = :func:`pipeline.events.validate_events` passes and the first
    timestamp is not before the previous packet's last one.
    """
    try:
        validate_events(events, geometry, source)
    except EventFormatError as exc:
        return str(exc)
    if last_t is not None and events.size and int(events["t"][0]) < last_t:
        return f"{source}: timestamps go backwards across packets ({last_t} us -> {int(events['t'][0])} us)"
    return ""


@njit(cache=True)
def _longest_nondecreasing(t, floor):
    """Mask of a longest non-decreasing subsequence of ``t`` with every element >= floor.

    Patience sorting, O(n log n): the fewest events are dropped to make time
    run forward, so one event whose timestamp a flipped bit threw far ahead
    costs that event, not every event after it.
    """
    n = t.shape[0]
    tails = np.empty(n, np.int64)  # index of the last element of the best run of each length
    prev = np.full(n, -1, np.int64)
    length = 0
    for i in range(n):
        if t[i] < floor:
            continue
        lo, hi = 0, length
        while lo < hi:  # first run whose last value is > t[i]
            mid = (lo + hi) // 2
            if t[tails[mid]] <= t[i]:
                lo = mid + 1
            else:
                hi = mid
        if lo > 0:
            prev[i] = tails[lo - 1]
        tails[lo] = i
        if lo == length:
            length += 1
    keep = np.zeros(n, np.bool_)
    if length:
        k = tails[length - 1]
        while k >= 0:
            keep[k] = True
            k = prev[k]
    return keep


@njit(cache=True)
def _packet_ok(t, x, y, p, width, height, floor):
    """One pass: every event inside the sensor, polarity 0/1, time non-decreasing from ``floor``."""
    last = floor
    for i in range(t.shape[0]):
        if x[i] >= width or y[i] >= height or p[i] > 1 or t[i] < last:
            return False
        last = t[i]
    return True


def sanitize_packet(events: np.ndarray, geometry: Geometry, last_t: int | None) -> tuple[np.ndarray, int, str]:
    """(usable events, number dropped, why): drop single bad events instead of the whole packet.

    Dropped: coordinates outside the sensor, polarity > 1, negative time, and
    the fewest events that make time non-decreasing after ``last_t`` (the
    previous packet's last time). One flipped bit in a file damages a few
    events, not the thousands around it.
    """
    if events.size == 0:
        return events, 0, ""
    t = events["t"]
    floor = 0 if last_t is None else max(int(last_t), 0)
    if _packet_ok(t, events["x"], events["y"], events["p"], geometry.width, geometry.height, floor):
        return events, 0, ""  # the common case, in one pass without temporaries
    good = (events["x"] < geometry.width) & (events["y"] < geometry.height) & (events["p"] <= 1)
    monotone = t[0] >= floor and bool(np.all(t[1:] >= t[:-1]))
    if monotone and good.all():
        return events, 0, ""
    reasons = []
    if not good.all():
        reasons.append(f"{int(np.count_nonzero(~good))} outside the {geometry.width}x{geometry.height} sensor")
    if not monotone:
        idx = np.flatnonzero(good)
        keep = _longest_nondecreasing(np.ascontiguousarray(t[idx]), floor)
        if not keep.all():
            reasons.append(f"{int(np.count_nonzero(~keep))} out of time order")
            good[idx[~keep]] = False
    dropped = int(events.size - np.count_nonzero(good))
    if not dropped:
        return events, 0, ""
    return events[good], dropped, ", ".join(reasons)
