import numpy as np
import pytest

from biograd.core.errors import ConfigError
from biograd.core.events import DAVIS346_GEOMETRY, NMNIST_GEOMETRY, Geometry, validate_events
from biograd.sources.aedat4 import AedatRecording
from biograd.sources.preprocess import DVNoiseFilter, Preprocessor, crop, downsample, refractory_filter, select_polarity


@pytest.fixture(scope="module")
def davis(davis_file):
    return AedatRecording(davis_file).read_all()


def test_crop_keeps_roi_and_shifts(davis):
    out, g = crop(davis, DAVIS346_GEOMETRY, (43, 0, 260, 260))
    assert g == Geometry(260, 260)
    inside = (davis["x"] >= 43) & (davis["x"] < 303)
    assert out.size == int(inside.sum())
    np.testing.assert_array_equal(out["x"], davis["x"][inside] - 43)
    np.testing.assert_array_equal(out["t"], davis["t"][inside])
    validate_events(out, g, "cropped")
    with pytest.raises(ConfigError, match="source.roi"):
        crop(davis, DAVIS346_GEOMETRY, (300, 0, 100, 10))


def test_downsample_346x260_to_34x34(davis):
    out = downsample(davis, DAVIS346_GEOMETRY, NMNIST_GEOMETRY)
    validate_events(out, NMNIST_GEOMETRY, "downsampled")
    assert out.size == davis.size and out["x"].max() == 33 and out["y"].max() <= 33
    np.testing.assert_array_equal(out["x"], davis["x"].astype(int) * 34 // 346)
    np.testing.assert_array_equal(out["y"], davis["y"].astype(int) * 34 // 260)
    np.testing.assert_array_equal(out["p"], davis["p"])


def test_polarity_modes(davis):
    on, off = select_polarity(davis, "on"), select_polarity(davis, "off")
    assert on.size + off.size == davis.size and (on["p"] == 1).all() and (off["p"] == 0).all()
    merged = select_polarity(davis, "merge")
    assert merged.size == davis.size and (merged["p"] == 1).all()
    assert select_polarity(davis, "both") is davis
    with pytest.raises(ConfigError, match="source.polarity"):
        select_polarity(davis, "positive")


def reference_refractory(events, width, refractory):
    last, keep = {}, []
    for i, (t, x, y) in enumerate(zip(events["t"].tolist(), events["x"].tolist(), events["y"].tolist())):
        k = y * width + x
        if k not in last or t - last[k] >= refractory:
            keep.append(i)
            last[k] = t
    return events[keep]


def test_refractory_filter_matches_reference_and_carries_state(davis):
    kept, _ = refractory_filter(davis, DAVIS346_GEOMETRY, 5_000)
    ref = reference_refractory(davis, 346, 5_000)
    np.testing.assert_array_equal(kept, ref)
    assert 0 < kept.size < davis.size
    first, state = refractory_filter(davis[:50_000], DAVIS346_GEOMETRY, 5_000)
    state_copy = state.copy()
    second, _ = refractory_filter(davis[50_000:], DAVIS346_GEOMETRY, 5_000, state)
    np.testing.assert_array_equal(state, state_copy)  # pure: the input state is not touched
    np.testing.assert_array_equal(np.concatenate([first, second]), kept)
    none, _ = refractory_filter(davis, DAVIS346_GEOMETRY, 0)
    assert none.size == davis.size


@pytest.mark.parametrize("kind", ["background_activity", "knoise", "fast_decay"])
def test_dv_noise_filters_remove_events_and_keep_a_subset(davis, kind):
    part = davis[:30_000]
    flt = DVNoiseFilter(kind, DAVIS346_GEOMETRY, 2000)
    out = np.concatenate([flt(part[:15_000]), flt(part[15_000:])])
    assert 0 < out.size < part.size
    keys = set(zip(part["t"].tolist(), part["x"].tolist(), part["y"].tolist(), part["p"].tolist()))
    assert all(k in keys for k in zip(out["t"].tolist(), out["x"].tolist(), out["y"].tolist(), out["p"].tolist()))


def test_preprocessor_chain(davis):
    pre = Preprocessor(DAVIS346_GEOMETRY, roi=(43, 0, 260, 260), resize=(34, 34), polarity="on", refractory_us=1000)
    assert pre.geometry == NMNIST_GEOMETRY
    out = np.concatenate([pre(davis[:60_000]), pre(davis[60_000:])])
    validate_events(out, NMNIST_GEOMETRY, "preprocessed")
    cropped, g = crop(davis, DAVIS346_GEOMETRY, (43, 0, 260, 260))
    kept, _ = refractory_filter(cropped, g, 1000)
    expected = select_polarity(downsample(kept, g, NMNIST_GEOMETRY), "on")
    np.testing.assert_array_equal(out, expected)
    with pytest.raises(ConfigError, match="source.roi"):
        Preprocessor(DAVIS346_GEOMETRY, roi=(0, 0, 400, 10))
