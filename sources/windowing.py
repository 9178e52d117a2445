"""Turn a continuous packet stream into ``Sample``s: fixed-duration or fixed-count windows.

Duration windows: a window opens at its first event ``t0`` and holds the
events with ``t0 <= t < t0 + duration_us``; it is complete once an event at or
after its end arrives. The next window starts at ``t0 + duration_us`` — or, after
a stretch with no events, at the next event — so no empty windows are emitted.
Count windows hold exactly ``count`` events.

Events in a window are shifted to window time (``t - t0``), like an N-MNIST
sample that starts at 0.

Labels: ``set_label(k)`` says "the next window is digit k". The window in
progress at that moment mixes what came before the label, so its events are
discarded (counted in ``discarded_events``); the next window is labelled ``k``,
later ones are unlabelled (``None``) until the next ``set_label``.
"""

from __future__ import annotations

import numpy as np

from biograd.core.errors import ConfigError
from biograd.core.events import Geometry, empty_events
from biograd.sources.base import Sample


class Windower:
    def __init__(
        self, geometry: Geometry, *, duration_us: int = 0, count: int = 0, source: str = "live", min_events: int = 1
    ):
        if (duration_us > 0) == (count > 0):
            raise ConfigError(
                f"windowing: give exactly one of duration_us (got {duration_us}) or count (got {count}) > 0"
            )
        self.geometry, self.source = geometry, source
        self.duration_us, self.count, self.min_events = int(duration_us), int(count), int(min_events)
        self._chunks: list[np.ndarray] = []
        self._buffered = 0
        self._start: int | None = None
        self._label: int | None = None
        self.windows = 0
        self.discarded_events = 0
        self.small_windows = 0

    def set_label(self, label: int | None) -> None:
        """The next window is digit ``label``; the window in progress is discarded."""
        if label is not None and not 0 <= int(label) <= 9:
            raise ConfigError(f"label = {label!r}: must be a digit 0..9")
        self.discarded_events += self._buffered
        self._chunks, self._buffered, self._start = [], 0, None
        self._label = None if label is None else int(label)

    def _buffer(self) -> np.ndarray:
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
        return self._chunks[0] if self._chunks else empty_events(0)

    def _emit(self, events: np.ndarray, t0: int) -> Sample | None:
        if events.size < self.min_events:
            self.small_windows += 1
            return None
        out = events.copy()
        out["t"] -= t0
        sample = Sample(f"{self.source}/{self.windows}", self._label, out, self.geometry)
        self.windows += 1
        self._label = None
        return sample

    def push(self, packet: np.ndarray) -> list[Sample]:
        """Add a packet (time-ordered after the previous ones); return the windows it completed."""
        if packet.size == 0:
            return []
        self._chunks.append(packet)
        self._buffered += packet.size
        done: list[Sample] = []
        if self.count:
            while self._buffered >= self.count:
                buf = self._buffer()
                window, rest = buf[: self.count], buf[self.count :]
                self._chunks, self._buffered = [rest] if rest.size else [], rest.size
                sample = self._emit(window, int(window["t"][0]))
                if sample is not None:
                    done.append(sample)
            return done
        while self._buffered:
            buf = self._buffer()
            if self._start is None:
                self._start = int(buf["t"][0])
            end = self._start + self.duration_us
            if int(buf["t"][-1]) < end:
                break  # the window may still receive events
            cut = int(np.searchsorted(buf["t"], end, side="left"))
            window, rest = buf[:cut], buf[cut:]
            self._chunks, self._buffered = [rest] if rest.size else [], rest.size
            sample = self._emit(window, self._start)
            if sample is not None:
                done.append(sample)
            self._start = end if rest.size and int(rest["t"][0]) < end + self.duration_us else None
        return done

    def flush(self) -> list[Sample]:
        """The partial window at the end of a stream (if it has ``min_events``)."""
        if not self._buffered:
            return []
        buf = self._buffer()
        t0 = self._start if self._start is not None else int(buf["t"][0])
        self._chunks, self._buffered, self._start = [], 0, None
        sample = self._emit(buf, t0)
        return [sample] if sample is not None else []
