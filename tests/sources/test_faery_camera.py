"""Cameras through faery's camera input: the one-line message without a driver, packets with one."""

from __future__ import annotations

import numpy as np
import pytest
from free_ports import free_ports

from biograd.core.errors import HardwareUnavailableError
from biograd.core.events import DAVIS346_GEOMETRY, to_faery
from biograd.pipeline.cli import main
from biograd.sources.aedat4 import AedatRecording
from biograd.sources.live import FaeryCameraStream, open_faery_camera

faery = pytest.importorskip("faery")


def test_no_driver_names_what_to_install(capsys):
    from faery.event_camera_input import has_event_camera_drivers, has_neuromorphic_drivers

    if has_event_camera_drivers() or has_neuromorphic_drivers():
        pytest.skip("a faery camera driver is installed")
    with pytest.raises(
        HardwareUnavailableError, match="pip install event-camera-drivers .* pip install neuromorphic-drivers"
    ):
        open_faery_camera()
    port = free_ports(3)
    argv = ["live", "--set", "source.kind=camera", "--set", "source.camera_backend=faery"]
    assert main(argv + ["--set", f"pipeline.port={port}"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("biograd: error:")]
    assert len(errors) == 1 and "pip install event-camera-drivers" in errors[0]  # one line says it all


def test_driver_without_camera_is_one_clear_line():
    def opener():
        raise ValueError("No Event Camera found:", RuntimeError("no camera found using libcaer"))

    with pytest.raises(HardwareUnavailableError, match=r"no event camera found through faery .*pip install"):
        open_faery_camera(opener=opener)


def test_faery_camera_stream_delivers_the_cameras_packets(data_dir):
    """A stand-in for faery's camera stream (the same interface: dimensions() and packets)."""
    events = AedatRecording(data_dir / "aedat4" / "davis346.aedat4").read_all()
    chunks = [to_faery(events[i : i + 5000]) for i in range(0, events.size, 5000)]

    class Camera:
        def dimensions(self):
            return (346, 260)

        def __iter__(self):
            return iter(chunks)

    stream = FaeryCameraStream(opener=Camera)
    assert stream.geometry == DAVIS346_GEOMETRY
    got = np.concatenate([p for p in stream.packets(timeout=5) if p.size])
    stream.close()
    np.testing.assert_array_equal(got, events)
    assert stream.stats.events == events.size and stream.stats.invalid == 0
