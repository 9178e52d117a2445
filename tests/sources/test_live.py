"""Live sources: camera errors, and a DV network stream against a real dv.io.NetworkWriter server."""

import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from free_ports import free_ports

from biograd.core.errors import HardwareUnavailableError
from biograd.core.events import DAVIS346_GEOMETRY, make_events
from biograd.sources.aedat4 import AedatRecording
from biograd.sources.live import DVNetworkStream, list_cameras, open_camera, parse_address

SERVER = Path(__file__).with_name("dv_server.py")


def test_no_camera_is_a_clear_error():
    if list_cameras():
        pytest.skip("a DVS camera is attached")
    with pytest.raises(HardwareUnavailableError, match="no DVS camera found"):
        open_camera()
    with pytest.raises(HardwareUnavailableError, match="no DVS camera found"):
        open_camera("DAVIS346_00000104")


def test_camera_by_name_and_opaque_open_errors():
    found = [
        SimpleNamespace(cameraModel="DVXplorer", serialNumber="DXA001"),
        SimpleNamespace(cameraModel="DAVIS346", serialNumber="00000104"),
    ]
    opened = []
    assert open_camera("DAVIS346_00000104", discover=lambda: found, opener=opened.append) is None
    assert opened == [found[1]]
    open_camera("", discover=lambda: found, opener=opened.append)
    assert opened[-1] is found[0]
    with pytest.raises(
        HardwareUnavailableError,
        match=r"camera 'DVS128_1' not found; attached: "
        r"DVXplorer_DXA001, DAVIS346_00000104",
    ):
        open_camera("DVS128_1", discover=lambda: found)

    def broken(_):
        raise IndexError("vector::_M_range_check: __n (which is 0) >= this->size() (which is 0)")

    with pytest.raises(HardwareUnavailableError, match="DVXplorer_DXA001 could not be opened: vector::"):
        open_camera("", discover=lambda: found, opener=broken)


def test_parse_address():
    assert parse_address("127.0.0.1:7777") == ("127.0.0.1", 7777)
    assert parse_address("9000") == ("127.0.0.1", 9000)


def start_server(port, davis_file):
    proc = subprocess.Popen(
        [sys.executable, str(SERVER), str(port), str(davis_file)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "ready"
    return proc


def stop_server(proc):
    proc.kill()
    proc.wait(timeout=10)


def receive(packets, n, timeout=10.0):
    got, total, deadline = [], 0, time.monotonic() + timeout
    while total < n and time.monotonic() < deadline:
        p = next(packets)
        got.append(p)
        total += p.size
    return np.concatenate(got)


@pytest.fixture(scope="module")
def file_events(davis_file):
    return AedatRecording(davis_file, backend="dv").read_all()


def test_network_stream_receives_every_event_and_reconnects(davis_file, file_events):
    port = free_ports()
    server = start_server(port, davis_file)
    stream = DVNetworkStream("127.0.0.1", port, reconnect_delay=0.05)
    try:
        assert stream.wait_connected(10)
        assert stream.geometry == DAVIS346_GEOMETRY
        packets = stream.packets(timeout=10)
        np.testing.assert_array_equal(receive(packets, file_events.size), file_events)
        assert server.stdout.readline().strip() == f"sent {file_events.size}"
        stop_server(server)  # the server goes away …
        server = start_server(port, davis_file)  # … and comes back on the same port
        np.testing.assert_array_equal(receive(packets, file_events.size), file_events)
        assert stream.stats.reconnects == 1
        assert stream.stats.events == 2 * file_events.size
        assert stream.stats.dropped == 0 and stream.stats.invalid == 0
    finally:
        stream.close()
        stop_server(server)


def test_open_source_dvstream_preprocesses(davis_file, file_events):
    from biograd.core.events import NMNIST_GEOMETRY, Geometry
    from biograd.sources import open_source
    from biograd.sources.config import SourceConfig
    from biograd.sources.preprocess import aspect_crop, crop, downsample

    port = free_ports()
    server = start_server(port, davis_file)
    stream = open_source(SourceConfig(kind="dvstream", address=f"127.0.0.1:{port}", resize=(34, 34)))
    try:
        assert stream.geometry == NMNIST_GEOMETRY
        packets = iter(stream)
        got = receive(packets, file_events.size)
        # resize keeps the aspect ratio: the centre 260x260 square, then down-sampled
        square, g = crop(file_events, DAVIS346_GEOMETRY, aspect_crop(DAVIS346_GEOMETRY, NMNIST_GEOMETRY))
        assert g == Geometry(260, 260)
        np.testing.assert_array_equal(got, downsample(square, g, NMNIST_GEOMETRY))
        t0 = time.monotonic()
        assert next(packets).size == 0  # silence: a heartbeat, not a blocked consumer
        assert time.monotonic() - t0 < 2
    finally:
        stream.close()
        stop_server(server)


def test_dvstream_without_server_is_a_clear_error():
    from biograd.core.errors import DataNotFoundError
    from biograd.sources import open_source
    from biograd.sources.config import SourceConfig

    with pytest.raises(
        DataNotFoundError,
        match=r"DV stream 127\.0\.0\.1:\d+: no server answered within 1 s "
        r"\(connect: Connection refused",
    ):
        open_source(SourceConfig(kind="dvstream", address=f"127.0.0.1:{free_ports()}"), connect_timeout=1.0)


def test_slow_consumer_drops_are_counted(davis_file, file_events):
    port = free_ports()
    server = start_server(port, davis_file)
    stream = DVNetworkStream("127.0.0.1", port, queue_size=3, reconnect=False)
    try:
        assert stream.wait_connected(10)
        assert server.stdout.readline().startswith("sent")
        deadline = time.monotonic() + 10
        while stream.stats.packets + stream.stats.dropped < 13 and time.monotonic() < deadline:
            time.sleep(0.01)
        got = list(stream.packets(timeout=0.5))
        assert len(got) == 3 and stream.stats.dropped == 10  # 13 event packets in the file
        np.testing.assert_array_equal(np.concatenate(got), file_events[: sum(p.size for p in got)])
    finally:
        stream.close()
        stop_server(server)


def test_bad_packets_and_gaps_are_counted_not_fatal():
    stream = DVNetworkStream("127.0.0.1", 1)
    stream.geometry = DAVIS346_GEOMETRY
    for k in range(10):  # 1 ms packets, back to back
        stream._accept(make_events(np.arange(k * 1000, k * 1000 + 1000, 100), [1] * 10, [2] * 10, [1] * 10))
    stream._accept(make_events([9_950], [400], [2], [1]))  # outside 346x260
    stream._accept(make_events([9_000, 9_500], [1, 1], [2, 2], [1, 1]))  # goes back in time
    stream._accept(make_events([500_000, 500_900], [1, 1], [2, 2], [0, 1]))  # 490 ms hole
    assert stream.stats.invalid == 2 and stream.stats.gaps == 1 and stream.stats.packets == 11
