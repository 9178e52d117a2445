"""Compile before the first sample: a live run says "ready" only once a window is fast.

Numba compiles a kernel on its first call (seconds on a cold cache); a camera window that
waited for that would be stale and its label misapplied. :func:`warm_up` runs the encoder
and every learner path (predict, train, update, sleep) on a throw-away learner of the same
configuration, so the real learner's state and random stream are untouched.
"""

from __future__ import annotations

import time

import numpy as np

from biograd.core.events import Geometry, make_events
from biograd.core.protocol import Phase
from biograd.core.transport import WireSample
from biograd.pipeline.encoder import Encoder


def warm_up(cfg, learner) -> float:
    """Compile what a live window needs; returns the seconds it took."""
    t0 = time.monotonic()
    encoder = Encoder(cfg)
    n = encoder.n_inputs
    geometry = Geometry(n // 2, 1) if n % 2 == 0 else Geometry(n, 1)
    rng = np.random.default_rng(0)
    count = 64
    events = make_events(
        np.sort(rng.integers(0, encoder.timesteps * encoder.bin_us, count)),
        rng.integers(0, geometry.width, count),
        np.zeros(count, np.int64),
        rng.integers(0, 2, count) if n % 2 == 0 else np.ones(count, np.int64),
    )
    raster = encoder(WireSample("warm-up", None, geometry, events, Phase.LIVE, 0, 0, 0))
    scratch = type(learner)(learner.config)
    scratch.predict(raster)
    scratch.train_sample(raster, 0)
    scratch.flush()  # the weight update of a partial batch
    scratch.sleep()
    return time.monotonic() - t0
