"""The live dashboard's JSON state over HTTP (the page in Chromium: test_replay.py)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from sink_helpers import synthetic_records

from biograd.core.errors import BioGradError
from biograd.core.events import make_events
from biograd.core.records import event_frame
from biograd.sinks.dashboard import Dashboard


def _get(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.headers.get("Content-Type"), response.read()


def test_state_endpoint_follows_the_records():
    clock = [0.0]
    dashboard = Dashboard(port=0, clock=lambda: clock[0])
    try:
        assert dashboard.url.startswith("http://127.0.0.1:")
        status, kind, body = _get(dashboard.url)
        assert status == 200 and kind.startswith("text/html") and b"state.json" in body
        state = json.loads(_get(dashboard.url + "state.json")[2])
        assert state["status"] == "waiting" and state["samples"] == 0
        records = list(synthetic_records(20, n_hidden=2, sleep_every=5))
        predictions = [r for r in records if r["type"] == "prediction"]
        for record in records[:-1]:
            if record["type"] == "prediction":
                clock[0] += 0.1
            dashboard.handle(record)
        state = json.loads(_get(dashboard.url + "state.json")[2])
        assert state["status"] == "running"
        assert state["samples"] == 20
        last = predictions[-1]
        assert (state["predicted"], state["label"], state["counts"]) == (
            last["predicted"],
            last["label"],
            last["counts"],
        )
        correct = sum(p["correct"] for p in predictions)
        assert state["accuracy"] == pytest.approx(correct / 20) and state["accuracy_phase"] == "train"
        # All 20 predictions (0.1 s apart) lie in the 2-s window: events after the first over 1.9 s.
        assert state["events_per_s"] == pytest.approx(sum(p["events"] for p in predictions[1:]) / 1.9)
        assert state["angle_deg"] == [29.0, 30.0] and state["evals"]["test"]["accuracy"] == 0.7
        dashboard.handle(records[-1])
        assert json.loads(_get(dashboard.url + "state.json")[2])["status"] == "ended"
        with pytest.raises(urllib.error.HTTPError) as err:
            _get(dashboard.url + "secrets")
        assert err.value.code == 404
    finally:
        dashboard.close()
    with pytest.raises(BioGradError, match="loopback only"):
        Dashboard(host="0.0.0.0")


def test_event_frame_counts_on_and_off_events_and_bins_large_sensors():
    events = make_events([0, 1, 2, 3], [0, 0, 33, 345], [0, 0, 10, 259], [1, 1, 0, 1])
    frame = event_frame(events[:3], 34, 34)
    assert (frame["width"], frame["height"]) == (34, 34) and "scale" not in frame
    assert frame["on"][0][0] == 2 and frame["off"][10][33] == 1
    assert np.asarray(frame["on"]).sum() == 2 and np.asarray(frame["off"]).sum() == 1
    big = event_frame(events, 346, 260)
    assert big["scale"] == 3 and (big["width"], big["height"]) == (116, 87)
    assert big["on"][86][115] == 1


def test_the_shown_class_belongs_to_the_sample_whose_frame_is_shown():
    dashboard = Dashboard(port=0)
    try:

        def prediction(i, predicted, label, frame=None):
            record = {
                "type": "prediction",
                "sample_id": f"train/{i}",
                "index": i,
                "phase": "train",
                "predicted": predicted,
                "label": label,
                "correct": predicted == label,
                "counts": [i] * 10,
                "events": 10,
                "time": 0.0,
            }
            if frame:
                record["frame"] = frame
            return record

        dashboard.handle(prediction(0, 1, 1))
        assert dashboard.state()["sample_id"] == "train/0"  # no frames yet: the latest sample
        frame = event_frame(make_events([0], [3], [4], [1]), 34, 34)
        dashboard.handle(prediction(1, 7, 2, frame))
        dashboard.handle(prediction(2, 5, 5))  # no frame: the picture stays sample 1's
        state = dashboard.state()
        assert (state["sample_id"], state["predicted"], state["label"], state["counts"]) == ("train/1", 7, 2, [1] * 10)
        assert state["frame"]["on"][4][3] == 1
        assert state["samples"] == 3 and state["accuracy"] == pytest.approx(2 / 3)
    finally:
        dashboard.close()


def test_sink_dashboard_command_serves_records_from_a_pub_socket():
    import socket

    from biograd.pipeline.cli import main
    from biograd.sinks.predictions import PredictionPublisher

    publisher = PredictionPublisher("tcp://127.0.0.1:0")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    records = [r for r in synthetic_records(5) if r["type"] == "prediction"]
    result = {}
    command = threading.Thread(
        target=lambda: result.setdefault(
            "code", main(["sink", "dashboard", "--connect", publisher.address, "--port", str(port), "--timeout", "1.5"])
        )
    )
    command.start()
    try:
        state = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for record in records:
                publisher.handle(record)
            try:
                state = json.loads(_get(f"http://127.0.0.1:{port}/state.json")[2])
                if state["samples"] > 0:
                    break
            except OSError:
                pass
            time.sleep(0.05)
    finally:
        publisher.close()
        command.join(timeout=20)
    assert state is not None and state["samples"] > 0 and state["sample_id"].startswith("train/")
    assert result["code"] == 0  # stopped after 1.5 s of silence
