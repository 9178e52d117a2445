"""Encoders: event binning rules, N-MNIST on real files, MNIST rate code and its event form."""

from __future__ import annotations

import numpy as np
import pytest
from nmnist_io import read_nmnist_bin

from biograd.core.errors import EventFormatError
from biograd.core.events import NMNIST_GEOMETRY, Geometry, make_events
from biograd.learner.encoding import SpikeRaster, encode_events, encode_nmnist, mnist_rate_raster
from biograd.sources.mnist import mnist_to_events


def _rows(raster):
    return [raster.indices[raster.indptr[t] : raster.indptr[t + 1]].tolist() for t in range(raster.timesteps)]


def test_rounding_binning_dedup_and_index_order():
    g = Geometry(4, 3)
    # (t µs, x, y, p)
    ev = make_events(
        [0, 2499, 2500, 2600, 4499, 4500, 14000, 14200, 14499, 14500, 19499, 19500],
        [1, 1, 2, 1, 3, 0, 2, 2, 0, 0, 3, 3],
        [0, 0, 1, 0, 2, 0, 1, 1, 0, 0, 2, 2],
        [1, 1, 0, 1, 0, 1, 0, 0, 1, 1, 1, 1],
    )
    r = encode_events(ev, g, timesteps=4, bin_us=5000)
    assert r.n_inputs == 24
    on = 12  # polarity 1 is channel 1: index = p*12 + y*4 + x
    # step 0: 0, 2.499 -> 2, 2.5 -> 3 (half up), 2.6 -> 3, 4.499 -> 4 ms; 4.5 -> 5 ms is step 1;
    # 14.0, 14.2, 14.499 -> 14 ms (step 2, two events on one input); 14.5 -> 15 ms (step 3)
    assert _rows(r) == [[1 * 4 + 2, 2 * 4 + 3, on + 1], [on + 0], [1 * 4 + 2, on + 0], [on + 0, on + 2 * 4 + 3]]
    assert r.indptr.dtype == np.int64 and r.indices.dtype == np.int32
    # 19.5 ms rounds to 20 ms = step 4: outside T=4, dropped; 19.499 stays.
    r2 = encode_events(ev[-1:], g, timesteps=4, bin_us=5000)
    assert r2.n_spikes == 0


def test_polarity_channels_origin_and_no_rounding():
    g = Geometry(2, 2)
    ev = make_events([1000, 1000, 2600], [1, 1, 0], [0, 0, 1], [0, 1, 1])
    r = encode_events(ev, g, 3, 1000, polarity_channels=1)
    assert r.n_inputs == 4
    assert _rows(r) == [[], [1], []]  # 2600 rounds to 3 ms: outside T=3
    r = encode_events(ev, g, 3, 1000, polarity_channels=1, round_us=1)
    assert _rows(r) == [[], [1], [2]]  # floor binning: 2600 µs is step 2
    r = encode_events(ev, g, 3, 1000, polarity_channels=1, t_origin=1000)
    assert _rows(r) == [[1], [], [2]]


def test_bad_events_name_the_source():
    g = Geometry(4, 3)
    with pytest.raises(EventFormatError, match="cam0: event 1 has x=4"):
        encode_events(make_events([0, 1], [0, 4], [0, 0], [0, 0]), g, 2, 1000, source="cam0")
    with pytest.raises(EventFormatError, match="event 0 has y=3"):
        encode_events(make_events([0], [0], [3], [0]), g, 2, 1000)
    with pytest.raises(EventFormatError, match="polarity=2"):
        encode_events(make_events([0], [0], [0], [2]), g, 2, 1000)
    with pytest.raises(EventFormatError, match="expected a 1-D array"):
        encode_events(np.zeros(3), g, 2, 1000)


def test_nmnist_real_files_match_dense_reference(nmnist_dir):
    files = (
        sorted((nmnist_dir / "Train" / "3").glob("*.bin"))[:3] + sorted((nmnist_dir / "Test" / "8").glob("*.bin"))[:1]
    )
    assert files, f"no N-MNIST files under {nmnist_dir}"
    for path in files:
        ev = read_nmnist_bin(path)
        assert 1000 < ev.size < 8000
        r = encode_nmnist(ev)
        assert r.n_inputs == 2312 and r.timesteps == 60
        # Dense reference straight from the algorithm text: round to ms, raster (2, 34, 34, 300),
        # max over 5-ms bins.
        ms = np.floor(ev["t"] / 1000 + 0.5).astype(np.int64)
        keep = ms < 300
        dense = np.zeros((2, 34, 34, 300), dtype=np.uint8)
        dense[ev["p"][keep], ev["y"][keep], ev["x"][keep], ms[keep]] = 1
        binned = dense.reshape(2, 34, 34, 60, 5).max(axis=4).reshape(2312, 60).T
        np.testing.assert_array_equal(r.to_dense(), binned, err_msg=str(path))
        for t in range(60):
            row = r.indices[r.indptr[t] : r.indptr[t + 1]]
            assert np.all(np.diff(row) > 0)


def test_mnist_rate_code_and_event_round_trip():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(28, 28)).astype(np.uint8)
    image[0, :] = 0
    image[1, :] = 255
    r = mnist_rate_raster(image, 20, np.random.default_rng(5))
    dense = r.to_dense()
    assert dense.shape == (20, 784)
    assert dense[:, :28].sum() == 0 and dense[:, 28:56].all()
    rate = dense.mean(axis=0)[56:]
    assert abs(np.corrcoef(rate, image.reshape(-1)[56:])[0, 1]) > 0.8
    ev = mnist_to_events(image, 20, np.random.default_rng(5))
    assert np.all(ev["p"] == 1) and np.all(np.diff(ev["t"]) >= 0)
    back = encode_events(ev, Geometry(28, 28), 20, bin_us=1000, polarity_channels=1)
    np.testing.assert_array_equal(back.indptr, r.indptr)
    np.testing.assert_array_equal(back.indices, r.indices)
    ev5 = mnist_to_events(image, 20, np.random.default_rng(5), step_us=5000)
    back5 = encode_events(ev5, Geometry(28, 28), 20, bin_us=5000, polarity_channels=1)
    np.testing.assert_array_equal(back5.indices, r.indices)


def test_dense_round_trip():
    dense = np.random.default_rng(1).random((7, 11)) < 0.3
    r = SpikeRaster.from_dense(dense)
    np.testing.assert_array_equal(r.to_dense(), dense)


def test_events_out_of_time_order_give_the_same_raster(nmnist_dir):
    path = sorted((nmnist_dir / "Train" / "5").glob("*.bin"))[0]
    ev = read_nmnist_bin(path)
    shuffled = ev[np.random.default_rng(3).permutation(ev.size)]
    a, b = encode_nmnist(ev), encode_nmnist(shuffled)
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)
    # a live window: absolute timestamps, origin at the window start
    late = ev.copy()
    late["t"] += 7_000_000_123
    c = encode_events(late, NMNIST_GEOMETRY, 60, 5000, t_origin=7_000_000_123)
    np.testing.assert_array_equal(c.indices, a.indices)
