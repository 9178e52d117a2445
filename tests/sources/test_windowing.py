import numpy as np
import pytest

from biograd.core.errors import ConfigError
from biograd.core.events import DAVIS346_GEOMETRY
from biograd.sources.aedat4 import AedatRecording
from biograd.sources.windowing import Windower


@pytest.fixture(scope="module")
def packets(davis_file):
    return list(AedatRecording(davis_file).packets())


def run(windower, packets):
    out = []
    for p in packets:
        out.extend(windower.push(p))
    return out


def test_duration_windows_cover_the_stream_in_order(packets):
    events = np.concatenate(packets)
    samples = run(Windower(DAVIS346_GEOMETRY, duration_us=10_000, source="davis"), packets)
    t0 = int(events["t"][0])
    assert len(samples) == (int(events["t"][-1]) - t0) // 10_000
    for k, s in enumerate(samples):
        start = t0 + 10_000 * k
        expect = events[(events["t"] >= start) & (events["t"] < start + 10_000)]
        np.testing.assert_array_equal(s.events["t"] + start, expect["t"])
        np.testing.assert_array_equal(s.events["x"], expect["x"])
        assert s.label is None and s.sample_id == f"davis/{k}" and s.geometry == DAVIS346_GEOMETRY
    # the same windows whatever the packet boundaries
    tiny = np.array_split(events, 997)
    again = run(Windower(DAVIS346_GEOMETRY, duration_us=10_000, source="davis"), tiny)
    assert len(again) == len(samples)
    for a, b in zip(again, samples):
        np.testing.assert_array_equal(a.events, b.events)


def test_gap_restarts_windows_at_the_next_event(packets):
    events = np.concatenate(packets)[:2000].copy()
    events["t"][1000:] += 5_000_000  # a 5 s silence
    w = Windower(DAVIS346_GEOMETRY, duration_us=1_000)
    samples = run(w, [events]) + w.flush()
    assert sum(s.events.size for s in samples) == 2000
    assert all(s.events.size for s in samples)  # no empty windows for the silence
    assert all(s.events["t"].min() >= 0 and s.events["t"].max() < 1_000 for s in samples)


def test_count_windows(packets):
    events = np.concatenate(packets)
    samples = run(Windower(DAVIS346_GEOMETRY, count=5000), packets)
    assert len(samples) == events.size // 5000
    np.testing.assert_array_equal(np.concatenate([s.events["x"] for s in samples]), events["x"][: len(samples) * 5000])


def test_set_label_labels_the_next_window_only(packets):
    w = Windower(DAVIS346_GEOMETRY, count=1000)
    first = w.push(packets[0][:1500])
    assert [s.label for s in first] == [None]
    w.set_label(7)  # the 500 buffered events mixed before/after: dropped
    assert w.discarded_events == 500
    later = w.push(packets[1][:2500])
    assert [s.label for s in later] == [7, None]
    np.testing.assert_array_equal(later[0].events["x"], packets[1]["x"][:1000])
    with pytest.raises(ConfigError, match="digit"):
        w.set_label(12)
    with pytest.raises(ConfigError, match="exactly one"):
        Windower(DAVIS346_GEOMETRY, duration_us=10, count=10)
