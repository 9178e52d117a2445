"""Geometry and preprocessing between camera and learner: pure functions over event arrays.

Order applied by :class:`Preprocessor`: crop → noise filter → refractory filter →
down-sample → polarity. Each step is also a plain function.

* :func:`crop` keeps a region of interest and shifts it to the origin.
* :func:`downsample` maps a ``W x H`` sensor onto ``w x h`` cells:
  ``x' = floor(x * w / W)``, ``y' = floor(y * h / H)`` (several input pixels
  share one output pixel; events are kept, not merged).
* ``source.resize`` keeps the aspect ratio (``resize_mode = "crop"``, the
  default): the sensor (or the ``source.roi``) is first cropped around its
  centre to the target's aspect ratio (:func:`aspect_crop`), then down-sampled,
  so 346x260 → 34x34 keeps the centre 260x260 square instead of squashing the
  scene. ``resize_mode = "stretch"`` down-samples the whole area (squashes).
* :func:`select_polarity`: ``both`` (unchanged), ``on``/``off`` (keep one
  polarity), ``merge`` (every event becomes ON, one channel).
* dv-processing's noise filters (``BackgroundActivityNoiseFilter``,
  ``KNoiseFilter``, ``FastDecayNoiseFilter``) through :class:`DVNoiseFilter`;
  they keep state between packets, so one instance filters one stream.
* dv-processing 2.0.4 has no refractory filter, so :func:`refractory_filter`
  is ours (Numba): an event is dropped when the same pixel fired less than
  ``refractory_us`` before (the last *kept* event counts, as in a sensor's
  refractory period).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

import numpy as np
from numba import njit

from biograd.core.errors import ConfigError
from biograd.core.events import Geometry, empty_events, from_dv, to_dv

POLARITY_MODES = ("both", "on", "off", "merge")
NOISE_FILTERS = ("none", "background_activity", "knoise", "fast_decay")


def crop(events: np.ndarray, geometry: Geometry, roi: tuple[int, int, int, int]) -> tuple[np.ndarray, Geometry]:
    """Events inside ``roi = (x0, y0, width, height)``, shifted so the ROI starts at (0, 0)."""
    x0, y0, w, h = (int(v) for v in roi)
    if x0 < 0 or y0 < 0 or w <= 0 or h <= 0 or x0 + w > geometry.width or y0 + h > geometry.height:
        raise ConfigError(
            f"source.roi = {tuple(roi)}: must lie inside the "
            f"{geometry.width}x{geometry.height} sensor with positive size"
        )
    x, y = events["x"], events["y"]
    keep = (x >= x0) & (x < x0 + w) & (y >= y0) & (y < y0 + h)
    out = events[keep]
    out["x"] -= x0
    out["y"] -= y0
    return out, Geometry(w, h)


def aspect_crop(geometry: Geometry, target: Geometry) -> tuple[int, int, int, int]:
    """The centred (x0, y0, width, height) region of ``geometry`` with ``target``'s aspect ratio."""
    w, h = geometry.width, geometry.height
    # compare w/h with tw/th in integers: the wider side is cut
    if w * target.height > h * target.width:
        cw, ch = max(1, round(h * target.width / target.height)), h
    else:
        cw, ch = w, max(1, round(w * target.height / target.width))
    return (w - cw) // 2, (h - ch) // 2, cw, ch


def downsample(events: np.ndarray, geometry: Geometry, target: Geometry) -> np.ndarray:
    """Map coordinates onto ``target``: ``x' = x * target.width // geometry.width`` (same for y)."""
    out = events.copy()
    out["x"] = (events["x"].astype(np.int64) * target.width // geometry.width).astype(np.uint16)
    out["y"] = (events["y"].astype(np.int64) * target.height // geometry.height).astype(np.uint16)
    return out


def select_polarity(events: np.ndarray, mode: str) -> np.ndarray:
    """``both`` as is, ``on``/``off`` keep that polarity, ``merge`` makes every event ON."""
    if mode == "both":
        return events
    if mode == "on":
        return events[events["p"] == 1]
    if mode == "off":
        return events[events["p"] == 0]
    if mode == "merge":
        out = events.copy()
        out["p"] = 1
        return out
    raise ConfigError(f"source.polarity = {mode!r}: must be one of {', '.join(POLARITY_MODES)}")


@njit(cache=True)
def _refractory(t, x, y, width, refractory_us, last):
    keep = np.zeros(t.shape[0], dtype=np.bool_)
    for i in range(t.shape[0]):
        k = np.int64(y[i]) * width + np.int64(x[i])
        if t[i] - last[k] >= refractory_us:
            keep[i] = True
            last[k] = t[i]
    return keep


def refractory_filter(
    events: np.ndarray, geometry: Geometry, refractory_us: int, last_t: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Drop events of a pixel within ``refractory_us`` of that pixel's last kept event.

    Pure: returns ``(kept_events, new_last_t)``; pass ``new_last_t`` with the next
    packet of the same stream (``None`` = no pixel has fired yet). ``last_t`` is
    an int64 array of ``height * width`` timestamps and is not modified.
    """
    n = geometry.width * geometry.height
    if last_t is None:
        last = np.full(n, np.iinfo(np.int64).min // 2, dtype=np.int64)
    else:
        if last_t.shape != (n,):
            raise ConfigError(f"refractory state has shape {last_t.shape}, expected ({n},)")
        last = last_t.copy()
    keep = _refractory(
        np.ascontiguousarray(events["t"]),
        np.ascontiguousarray(events["x"]),
        np.ascontiguousarray(events["y"]),
        geometry.width,
        int(refractory_us),
        last,
    )
    return events[keep], last


class DVNoiseFilter:
    """One of dv-processing's noise filters over EVENT_DTYPE packets (stateful across packets)."""

    def __init__(self, kind: str, geometry: Geometry, window_us: int = 2000):
        import dv_processing as dv

        size = (geometry.width, geometry.height)
        delta = timedelta(microseconds=int(window_us))
        if kind == "background_activity":
            self._filter = dv.noise.BackgroundActivityNoiseFilter(size, backgroundActivityDuration=delta)
        elif kind == "knoise":
            self._filter = dv.noise.KNoiseFilter(size, timeDelta=delta)
        elif kind == "fast_decay":
            self._filter = dv.noise.FastDecayNoiseFilter(size, halfLife=delta)
        else:
            raise ConfigError(f"source.noise_filter = {kind!r}: must be one of {', '.join(NOISE_FILTERS)}")
        self.kind = kind

    def __call__(self, events: np.ndarray) -> np.ndarray:
        if events.size == 0:
            return events
        # to_dv pushes event by event (dv has no bulk constructor): ~1 M ev/s.
        self._filter.accept(to_dv(events))
        return from_dv(self._filter.generateEvents())


class Preprocessor:
    """crop → noise filter → refractory → down-sample → polarity, for one stream."""

    def __init__(
        self,
        geometry: Geometry,
        *,
        roi: tuple = (),
        resize: tuple = (),
        resize_mode: Literal["crop", "stretch"] = "crop",
        polarity: Literal["both", "on", "off", "merge"] = "both",
        noise_filter: str = "none",
        noise_window_us: int = 2000,
        refractory_us: int = 0,
    ):
        if polarity not in POLARITY_MODES:
            raise ConfigError(f"source.polarity = {polarity!r}: must be one of {', '.join(POLARITY_MODES)}")
        if resize_mode not in ("crop", "stretch"):
            raise ConfigError(f"source.resize_mode = {resize_mode!r}: must be crop or stretch")
        self.input_geometry = geometry
        self.roi = tuple(roi)
        g = geometry
        if self.roi:
            crop(empty_events(0), g, self.roi)  # validates the ROI now, not on the first packet
            g = Geometry(int(self.roi[2]), int(self.roi[3]))
        if resize and resize_mode == "crop":
            x0, y0, w, h = aspect_crop(g, Geometry(int(resize[0]), int(resize[1])))
            if (w, h) != (g.width, g.height):
                base = self.roi[:2] if self.roi else (0, 0)
                self.roi = (base[0] + x0, base[1] + y0, w, h)
                g = Geometry(w, h)
        self.cropped_geometry = g
        self.noise = DVNoiseFilter(noise_filter, g, noise_window_us) if noise_filter != "none" else None
        self.refractory_us = int(refractory_us)
        self._last = None
        self.target = Geometry(int(resize[0]), int(resize[1])) if resize else g
        self.polarity = polarity

    @property
    def geometry(self) -> Geometry:
        """The geometry of the events this hands on."""
        return self.target

    def __call__(self, events: np.ndarray) -> np.ndarray:
        g = self.input_geometry
        if self.roi:
            events, g = crop(events, g, self.roi)
        if self.noise is not None:
            events = self.noise(events)
        if self.refractory_us > 0:
            events, self._last = refractory_filter(events, g, self.refractory_us, self._last)
        if self.target != g:
            events = downsample(events, g, self.target)
        return select_polarity(events, self.polarity)
