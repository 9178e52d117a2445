import numpy as np
import pytest

from biograd.core.errors import EventFormatError
from biograd.core.events import (
    DAVIS346_GEOMETRY,
    EVENT_DTYPE,
    Geometry,
    from_aedat,
    from_dv,
    from_tonic,
    make_events,
    to_aedat,
    to_dv,
    to_tonic,
    validate_events,
)


@pytest.fixture(scope="module")
def davis_events(davis_file):
    """Every polarity event of the real DAVIS346 recording, decoded with aedat."""
    import aedat

    decoder = aedat.Decoder(str(davis_file))
    packets = [from_aedat(p["events"]) for p in decoder if "events" in p]
    return np.concatenate(packets)


def test_record_is_packed_13_bytes():
    assert EVENT_DTYPE.itemsize == 13
    assert EVENT_DTYPE.names == ("t", "x", "y", "p")


def test_davis_recording_decodes_to_documented_counts(davis_events):
    assert davis_events.size == 117_667
    # The data README says 60.6 % ON; both aedat and dv-processing read 61.5 % from the file.
    assert 0.6 < davis_events["p"].mean() < 0.63
    validate_events(davis_events, DAVIS346_GEOMETRY, "davis346.aedat4")


def test_aedat_round_trip_is_lossless(davis_events):
    back = from_aedat(to_aedat(davis_events))
    assert back.dtype == EVENT_DTYPE
    np.testing.assert_array_equal(back, davis_events)


def test_dv_round_trip_is_lossless_and_matches_dv_reader(davis_events, davis_file):
    import dv_processing as dv

    store = to_dv(davis_events[:20_000])
    np.testing.assert_array_equal(from_dv(store), davis_events[:20_000])
    reader = dv.io.MonoCameraRecording(str(davis_file))
    batches = []
    while True:
        batch = reader.getNextEventBatch()
        if batch is None:
            break
        batches.append(from_dv(batch))
    np.testing.assert_array_equal(np.concatenate(batches), davis_events)


def test_tonic_round_trip(davis_events):
    np.testing.assert_array_equal(from_tonic(to_tonic(davis_events)), davis_events)


def test_validate_names_source_index_and_value():
    geometry = Geometry(34, 34)
    ev = make_events([0, 5, 9], [1, 40, 2], [1, 1, 1], [1, 0, 1])
    with pytest.raises(EventFormatError, match=r"sample\.bin: event 1 has x=40 outside the 34x34"):
        validate_events(ev, geometry, "sample.bin")
    ev = make_events([0, 9, 5], [1, 2, 3], [1, 1, 1], [1, 0, 1])
    with pytest.raises(EventFormatError, match=r"timestamps go backwards at event 2 \(9 us -> 5 us\)"):
        validate_events(ev, geometry, "pkt")
    ev = make_events([0], [1], [1], [3])
    with pytest.raises(EventFormatError, match="polarity 3"):
        validate_events(ev, geometry)
    with pytest.raises(EventFormatError, match="expected a 1-D array"):
        validate_events(np.zeros(3), geometry)
    validate_events(make_events([0, 0, 1], [0, 33, 2], [33, 0, 1], [0, 1, 1]), geometry)


def test_geometry_rejects_nonsense():
    with pytest.raises(EventFormatError, match="width"):
        Geometry(0, 10)
