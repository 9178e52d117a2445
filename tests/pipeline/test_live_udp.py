"""`live` with source.kind=udp: faery sends the real recording to loopback, the learner sees its windows."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from free_ports import free_ports

from biograd.core.events import to_faery
from biograd.pipeline.run_config import build_run_config
from biograd.pipeline.runner import live
from biograd.sources.aedat4 import AedatRecording

faery = pytest.importorskip("faery")


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_live_udp_windows_reach_the_learner(tmp_path, davis_file):
    events = AedatRecording(davis_file).read_all()
    port = _free_udp_port()
    cfg = build_run_config(
        None,
        [
            "source.kind=udp",
            f"source.address=127.0.0.1:{port}",
            "source.geometry=[346, 260]",
            "source.resize=[34, 34]",
            "source.window_events=10000",
            "learner.layer_sizes=[2312, 16, 10]",
            "pipeline.progress=false",
            f"pipeline.port={free_ports(3)}",
            "sinks.plots=false",
            f"sinks.run_dir={tmp_path}",
        ],
    )
    stop = threading.Event()
    result = {}
    runner = threading.Thread(target=lambda: result.update(live(cfg, None, stop=stop, outlive=False)))
    runner.start()
    deadline = time.monotonic() + 120
    while _port_free(port):  # the source has bound it when we no longer can (UDP has no handshake)
        assert time.monotonic() < deadline and runner.is_alive()
        time.sleep(0.05)
    inside = ((events["x"] >= 43) & (events["x"] < 303)).sum()  # the centre square kept by resize
    for i in range(0, events.size, 4000):
        part = to_faery(events[i : i + 4000])
        faery.events_stream_from_array(part, (346, 260)).to_udp(("127.0.0.1", port), events_per_packet=400)
        time.sleep(0.003)
    time.sleep(3)  # let the last datagrams through the pipeline
    stop.set()
    runner.join(60)
    assert not runner.is_alive()
    assert result["reason"] in ("stopped", "end", "signal")
    assert result["processed"] == inside // 10_000  # every full window of what arrived reached the learner
    assert result["events"] == (inside // 10_000) * 10_000
