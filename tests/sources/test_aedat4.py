import struct

import numpy as np
import pytest

from biograd.core.errors import DataFormatError
from biograd.core.events import DAVIS346_GEOMETRY
from biograd.sources.aedat4 import AedatRecording, scan_aedat4


@pytest.fixture(scope="module")
def raw(davis_file):
    return davis_file.read_bytes()


@pytest.fixture(scope="module")
def aedat_events(davis_file):
    return AedatRecording(davis_file, backend="aedat").read_all()


def write(tmp_path, name, blob):
    path = tmp_path / name
    path.write_bytes(bytes(blob))
    return path


def test_aedat_and_dv_give_identical_events(davis_file, aedat_events):
    dv = AedatRecording(davis_file, backend="dv")
    dv_events = dv.read_all()
    assert aedat_events.size == 117_667
    np.testing.assert_array_equal(dv_events, aedat_events)
    assert dv.geometry == DAVIS346_GEOMETRY


@pytest.mark.parametrize("backend", ["aedat", "dv"])
def test_non_event_packets_are_skipped_and_counted(davis_file, backend):
    rec = AedatRecording(davis_file, backend=backend)
    packets = list(rec.packets())
    # 40 packets in the file: 13 event, 3 frame, 13 IMU, 11 trigger
    assert len(packets) == 13 and rec.stats.packets == 13 and rec.stats.events == 117_667
    assert rec.stats.skipped == {"frame": 3, "imus": 13, "triggers": 11}
    assert rec.stats.invalid == 0


def test_real_time_replay_paces_on_timestamps(davis_file, aedat_events):
    now = [100.0]
    sleeps = []

    def sleep(s):
        sleeps.append(s)
        now[0] += s

    rec = AedatRecording(davis_file, speed=2.0)
    rec._clock, rec._sleep = (lambda: now[0]), sleep
    starts = [int(p["t"][0]) for p in rec.packets()]
    # the wall clock reached each packet at (t - t0) / speed
    assert now[0] - 100.0 == pytest.approx((starts[-1] - starts[0]) / 1e6 / 2.0)
    assert len(sleeps) == len(starts) - 1
    fast = AedatRecording(davis_file)
    fast._sleep = lambda s: pytest.fail("speed=0 must not sleep")
    assert sum(p.size for p in fast.packets()) == aedat_events.size


def test_scan_lists_packets_with_offsets(davis_file, raw):
    layout = scan_aedat4(davis_file)
    assert len(layout.packets) == 40 and layout.problems == []
    assert layout.geometry == DAVIS346_GEOMETRY
    for offset, sid, size in layout.packets:
        assert struct.unpack_from("<iI", raw, offset) == (sid, size)
    assert layout.packets[-1][0] + 8 + layout.packets[-1][2] == layout.data_table_position


def test_bad_magic_and_damaged_header(tmp_path, raw):
    path = write(tmp_path, "magic.aedat4", b"#!AER-DAT3.1\r\n" + raw[14:])
    with pytest.raises(DataFormatError, match=r"magic\.aedat4 at byte offset 0: not an AEDAT 4.0 file"):
        AedatRecording(path)
    blob = bytearray(raw)
    blob[30:60] = b"\xff" * 30  # inside the IOHeader flatbuffer
    path = write(tmp_path, "header.aedat4", blob)
    with pytest.raises(DataFormatError, match=r"header\.aedat4 at byte offset \d+: damaged IOHeader"):
        AedatRecording(path)  # aedat itself would panic here (a BaseException)
    blob = bytearray(raw)
    blob[14:18] = struct.pack("<I", 10_000_000)
    path = write(tmp_path, "hlen.aedat4", blob)
    with pytest.raises(DataFormatError, match="IOHeader length 10000000 runs past the end"):
        AedatRecording(path, backend="dv")


def test_truncated_file(tmp_path, raw, aedat_events):
    path = write(tmp_path, "cut.aedat4", raw[:600_000])
    with pytest.raises(DataFormatError, match=r"cut\.aedat4 at byte offset 600000: truncated"):
        AedatRecording(path, strict=True)
    rec = AedatRecording(path)  # as a stream: the complete packets, problems counted
    events = rec.read_all()
    assert 0 < events.size < aedat_events.size
    np.testing.assert_array_equal(events, aedat_events[: events.size])
    assert rec.stats.invalid == 2 and rec.problems[0][0] == 600_000


def test_corrupt_packet_is_skipped_in_a_stream(tmp_path, raw, davis_file, aedat_events):
    offset, sid, size = scan_aedat4(davis_file).packets[1]  # the first event packet
    assert sid == 0
    blob = bytearray(raw)
    blob[offset + 8 + 10 : offset + 8 + 40] = b"\0" * 30
    path = write(tmp_path, "lz4.aedat4", blob)
    with pytest.raises(
        DataFormatError,
        match=rf"lz4\.aedat4 at byte offset {offset}: packet of stream 0 "
        r"could not be decoded",
    ):
        AedatRecording(path, strict=True).read_all()
    rec = AedatRecording(path)
    events = rec.read_all()
    first = next(AedatRecording(davis_file).packets()).size
    np.testing.assert_array_equal(events, aedat_events[first:])
    assert rec.stats.invalid == 1 and rec.stats.packets == 12


def test_events_outside_the_sensor(tmp_path, raw, aedat_events):
    tag = b'<attr key="sizeX" type="int">346</attr>'
    blob = raw.replace(tag, tag.replace(b"346", b"100"), 1)  # same length: offsets stay valid
    path = write(tmp_path, "narrow.aedat4", blob)
    with pytest.raises(
        DataFormatError,
        match=r"narrow\.aedat4 at byte offset 3226: dropped \d+ bad events of the packet "
        r"\(\d+ outside the 100x260 sensor\)",
    ):
        AedatRecording(path, strict=True).read_all()
    rec = AedatRecording(path)
    # only the events outside the sensor go, the rest of each packet is kept
    inside = aedat_events[aedat_events["x"] < 100]
    np.testing.assert_array_equal(rec.read_all(), inside)
    assert rec.stats.invalid == 13 and rec.stats.bad_events == aedat_events.size - inside.size


def test_time_going_backwards_across_packets_is_skipped(davis_file, aedat_events):
    rec = AedatRecording(davis_file)
    real = list(rec._raw_packets())
    real[3], real[4] = real[4], real[3]  # packet 4 now comes before 3
    rec = AedatRecording(davis_file)
    rec._raw_packets = lambda: iter(real)
    packets = list(rec.packets())
    assert rec.stats.invalid == 1 and "out of time order" in rec.problems[0][1]
    assert rec.stats.bad_events == real[4][1].size  # the late packet's events, all before the earlier one's end
    assert len(packets) == 12
    assert (np.diff(np.concatenate(packets)["t"]) >= 0).all()


def _flip_bytes(raw: bytes, n: int = 20, seed: int = 0) -> bytes:
    blob = bytearray(raw)
    for i in np.random.default_rng(seed).integers(2000, len(raw) - 100, n):
        blob[i] ^= 0xFF
    return bytes(blob)


@pytest.mark.parametrize("damage", ["bit-flipped", "half-truncated"])
def test_damaged_recording_in_a_stream_is_counted_warned_and_goes_on(tmp_path, raw, aedat_events, damage, caplog):
    """Issue 13 point 8: a bit-flipped file gave 0 events, a half-truncated one 57 912 of 117 667, silently."""
    import logging

    from biograd.sources import make_windower, open_source
    from biograd.sources.config import SourceConfig

    blob = _flip_bytes(raw) if damage == "bit-flipped" else raw[: len(raw) // 2]
    path = write(tmp_path, "damaged.aedat4", blob)
    cfg = SourceConfig(kind="aedat", path=str(path), window_events=5000)
    with caplog.at_level(logging.WARNING):
        stream = open_source(cfg)
        windower = make_windower(cfg, stream)
        samples = [s for p in stream for s in windower.push(p)] + list(windower.flush())
    got = sum(s.events.size for s in samples)
    s = stream.stats
    assert got == s.events and got > aedat_events.size // 3  # the stream went on past the damage
    assert s.invalid > 0 and s.skipped_bytes > 0  # skipped packets and bytes are counted
    lost = aedat_events.size - got
    assert lost > 0
    assert "damaged.aedat4 is damaged" in caplog.text and f"{s.skipped_bytes} bytes" in caplog.text
    if damage == "half-truncated":
        assert s.skipped_bytes >= len(raw) // 2 - 2000  # the missing half (less the data table) is counted
