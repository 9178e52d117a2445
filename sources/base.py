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
    ``reconnects`` network reconnections.
    """

    packets: int = 0
    events: int = 0
    skipped: dict = field(default_factory=dict)
    invalid: int = 0
    dropped: int = 0
    gaps: int = 0
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
