"""PrefetchingEncoder: samples binned ahead on a worker thread give the same rasters and errors."""

from __future__ import annotations

import numpy as np
import pytest

from biograd.core.errors import EventFormatError
from biograd.core.events import NMNIST_GEOMETRY, Geometry, make_events
from biograd.core.protocol import Phase
from biograd.core.transport import WireSample
from biograd.pipeline.encoder import Encoder, PrefetchingEncoder
from biograd.pipeline.run_config import build_run_config


def _sample(i, n=400, geometry=NMNIST_GEOMETRY):
    rng = np.random.default_rng(i)
    ev = make_events(
        np.sort(rng.integers(0, 300_000, n)),
        rng.integers(0, geometry.width, n),
        rng.integers(0, geometry.height, n),
        rng.integers(0, 2, n),
    )
    return WireSample(f"s{i}", i % 10, geometry, ev, Phase.TRAIN, 0, i, 0)


def test_prefetched_rasters_equal_direct_binning_and_errors_surface_on_the_call():
    cfg = build_run_config(None, [])
    plain, ahead = Encoder(cfg), PrefetchingEncoder(cfg)
    samples = [_sample(i) for i in range(6)]
    bad = _sample(99, geometry=Geometry(10, 10))  # 200 inputs: not the network's 2312
    for s in samples[:3] + [bad]:
        ahead.prefetch(s)
    assert len(ahead._ahead) == PrefetchingEncoder.AHEAD  # at most AHEAD in flight
    for s in samples:
        got, want = ahead(s), plain(s)
        np.testing.assert_array_equal(got.indptr, want.indptr)
        np.testing.assert_array_equal(got.indices, want.indices)
        assert got.indptr[-1] > 0
    ahead.prefetch(bad)
    with pytest.raises(EventFormatError, match="sample 's99'"):
        ahead(bad)
    assert not ahead._ahead
    ahead.close()
    np.testing.assert_array_equal(ahead(samples[0]).indices, plain(samples[0]).indices)  # works after close
