"""Live UDP source: faery sends the real recording to loopback, the project receives it through faery."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from biograd.core.errors import ConfigError
from biograd.core.events import DAVIS346_GEOMETRY, to_faery
from biograd.sources import make_windower, open_source
from biograd.sources.aedat4 import AedatRecording
from biograd.sources.config import SourceConfig

faery = pytest.importorskip("faery")


@pytest.fixture(scope="module")
def recording(data_dir):
    return AedatRecording(data_dir / "aedat4" / "davis346.aedat4").read_all()


def send(events, port, fmt, chunk=4000):
    """faery's UDP encoder, a chunk at a time with a pause, so a loaded test machine keeps up."""
    for i in range(0, events.size, chunk):
        part = to_faery(events[i : i + chunk])
        faery.events_stream_from_array(part, (346, 260)).to_udp(("127.0.0.1", port), events_per_packet=400, format=fmt)
        time.sleep(0.003)


@pytest.mark.parametrize("fmt", ["t64_x16_y16_on8", "t32_x16_y15_on1"])
def test_udp_live_source_receives_the_real_recording(recording, fmt):
    cfg = SourceConfig(kind="udp", address="127.0.0.1:0", geometry=(346, 260), udp_format=fmt, window_events=10_000)
    stream = open_source(cfg)
    try:
        assert stream.geometry == DAVIS346_GEOMETRY
        port = stream.raw.port
        assert port > 0 and stream.name == f"udp://127.0.0.1:{port}"
        windower = make_windower(cfg, stream)
        sender = threading.Thread(target=send, args=(recording, port, fmt))
        got, samples = [], []
        packets = iter(stream)
        sender.start()
        deadline = time.monotonic() + 60
        while sum(p.size for p in got) < recording.size and time.monotonic() < deadline:
            packet = next(packets)  # an empty packet is a heartbeat
            if packet.size:
                got.append(packet)
                samples.extend(windower.push(packet))
        sender.join()
        events = np.concatenate(got)
        stats = stream.stats
        assert stats.dropped == 0 and stats.invalid == 0, stats  # nothing lost on loopback at this rate
        want = recording.copy()
        if fmt == "t32_x16_y15_on1":
            want["t"] &= 0xFFFFFFFF  # SPIF sends 32-bit time; no wrap within this recording
        np.testing.assert_array_equal(events, want)
        assert stats.events == recording.size
        # the same windowing as every live source: full windows of 10 000 events
        assert len(samples) == recording.size // 10_000
        assert all(s.events.size == 10_000 and s.geometry == DAVIS346_GEOMETRY for s in samples)
    finally:
        stream.close()


def test_udp_counts_torn_datagrams_and_out_of_sensor_events():
    import socket

    cfg = SourceConfig(kind="udp", address="127.0.0.1:0", geometry=(100, 100))
    stream = open_source(cfg)
    try:
        port = stream.raw.port
        good = np.zeros(3, dtype=faery.EVENTS_DTYPE)
        good["t"], good["x"], good["y"] = [10, 20, 30], [1, 2, 200], [3, 4, 5]  # x=200 is outside
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(good.tobytes() + b"\x01\x02", ("127.0.0.1", port))  # 2 stray bytes
        packets = iter(stream)
        deadline = time.monotonic() + 10
        packet = next(packets)
        while packet.size == 0 and time.monotonic() < deadline:
            packet = next(packets)
        assert packet["x"].tolist() == [1, 2]
        assert stream.stats.invalid == 1 and stream.stats.bad_events == 1
    finally:
        stream.close()


def test_udp_needs_a_geometry():
    with pytest.raises(ConfigError, match="source.geometry.*udp carries no sensor size"):
        SourceConfig(kind="udp", address="127.0.0.1:3333")
