"""Predictions over ZeroMQ: the publisher sink, the subscriber, and `biograd sink predictions`."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import zmq
from sink_helpers import synthetic_records

from biograd.core.errors import BioGradError
from biograd.core.protocol import MsgType, record_message, topic
from biograd.sinks.predictions import PredictionPublisher, PredictionWriter, RecordSubscriber, print_predictions

REPO = Path(__file__).resolve().parents[2]


def _predictions(n):
    return [r for r in synthetic_records(n) if r["type"] == "prediction"]


def _publish_until(publisher, records, done, period=0.02, limit_s=20.0):
    """PUB drops messages sent before a subscriber has joined: repeat until ``done()``."""
    deadline = time.monotonic() + limit_s
    while not done() and time.monotonic() < deadline:
        for record in records:
            publisher.handle(record)
        time.sleep(period)


def test_publisher_sends_only_predictions_which_a_subscriber_receives_intact():
    publisher = PredictionPublisher("tcp://127.0.0.1:0")
    assert publisher.address.startswith("tcp://127.0.0.1:") and not publisher.address.endswith(":0")
    subscriber = RecordSubscriber(publisher.address, ("prediction",))
    stream = list(synthetic_records(5))
    got = []
    feeder = threading.Thread(target=_publish_until, args=(publisher, stream, lambda: len(got) >= 5))
    feeder.start()
    try:
        for record in subscriber.records(idle_timeout=10):
            got.append(record)
            if len(got) >= 5:
                break
    finally:
        feeder.join()
        subscriber.close()
        publisher.close()
    assert {r["type"] for r in got} == {"prediction"}
    wanted = {r["sample_id"]: r for r in _predictions(5)}
    for record in got:
        assert record == wanted[record["sample_id"]]
    assert publisher.published >= 5


def test_subscriber_drops_and_counts_messages_that_break_the_protocol():
    context = zmq.Context.instance()
    pub = context.socket(zmq.PUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    subscriber = RecordSubscriber(f"tcp://127.0.0.1:{port}", ("prediction", "end"))
    good = _predictions(1)[0]
    bad_header = topic(MsgType.PREDICTION) + b"\x00" * 10  # right topic, truncated header
    wrong_payload = record_message(
        {"type": "metrics", "samples": 1, "phase": "train", "accuracy_running": 0.5, "time": 0}
    )
    wrong_payload[0] = topic(MsgType.PREDICTION) + bytes(wrong_payload[0])[4:]  # a metrics record labelled PREDICTION
    got = []

    def feed():
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            pub.send_multipart([bad_header, b"{}"])
            pub.send_multipart(wrong_payload)
            pub.send_multipart(record_message(good))
            time.sleep(0.02)

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        for record in subscriber.records(idle_timeout=10):
            got.append(record)
            break
    finally:
        feeder.join()
        subscriber.close()
        pub.close(0)
    assert got == [good]
    assert subscriber.invalid >= 2


def test_print_predictions_writes_json_lines_and_stops_at_the_end_record():
    publisher = PredictionPublisher("tcp://127.0.0.1:0")
    out = io.StringIO()
    stream = [*_predictions(3), {"type": "end", "samples": 3, "time": 0.0}]
    finished = threading.Event()

    def feed():
        deadline = time.monotonic() + 15
        while not finished.is_set() and time.monotonic() < deadline:
            for record in stream:
                if record["type"] == "end":
                    # In a run the end record comes on the runner's socket; here on the same PUB.
                    publisher._socket.send_multipart(record_message(record))
                else:
                    publisher.handle(record)
            time.sleep(0.02)

    feeder = threading.Thread(target=feed)
    feeder.start()
    started = time.monotonic()
    try:
        assert print_predictions(publisher.address, idle_timeout=10, stream=out) == 0
        assert time.monotonic() - started < 5, "did not stop at the end record"
    finally:
        finished.set()
        feeder.join()
        publisher.close()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines, "nothing printed"
    assert all(r["type"] == "prediction" for r in lines)
    assert {r["sample_id"] for r in lines} <= {"train/00000", "train/00001", "train/00002"}


def test_cli_prints_predictions_as_json_lines():
    publisher = PredictionPublisher("tcp://127.0.0.1:0")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "biograd.pipeline.cli",
            "sink",
            "predictions",
            "--connect",
            publisher.address,
            "--count",
            "4",
            "--timeout",
            "20",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    feeder = threading.Thread(
        target=_publish_until,
        args=(publisher, _predictions(2), lambda: proc.poll() is not None),
        kwargs={"period": 0.05, "limit_s": 30},
    )
    feeder.start()
    try:
        out, err = proc.communicate(timeout=40)
    finally:
        feeder.join()
        publisher.close()
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 4
    for record in lines:
        assert record["type"] == "prediction"
        assert record["predicted"] in range(10) and len(record["counts"]) == 10
        assert "label" in record


def test_writer_and_addresses(tmp_path):
    path = tmp_path / "predictions.jsonl"
    writer = PredictionWriter(path)
    for record in synthetic_records(3):
        writer.handle(record)
        assert len(path.read_text().splitlines()) == writer.written  # flushed per line
    writer.close()
    assert writer.written == 3
    with pytest.raises(BioGradError, match="without encryption"):
        PredictionPublisher("tcp://0.0.0.0:5599")
    with pytest.raises(BioGradError, match="expected a ZeroMQ address"):
        RecordSubscriber("localhost:5599")
    with pytest.raises(BioGradError, match="unknown record type"):
        RecordSubscriber("tcp://127.0.0.1:5599", ("predictions",))


def test_curve_keys_let_only_a_keyed_subscriber_read_predictions(tmp_path):
    from biograd.core.security import generate_keys, stop_authenticator

    generate_keys(tmp_path / "keys")
    ctx = zmq.Context()
    publisher = PredictionPublisher("tcp://127.0.0.1:0", context=ctx, keys=str(tmp_path / "keys"))
    keyed = RecordSubscriber(publisher.address, ("prediction",), context=ctx, keys=str(tmp_path / "keys"))
    plain = RecordSubscriber(publisher.address, ("prediction",), context=ctx)
    got = []
    feeder = threading.Thread(
        target=_publish_until, args=(publisher, _predictions(2), lambda: len(got) >= 2), kwargs={"limit_s": 10}
    )
    feeder.start()
    try:
        got.extend(keyed.records(count=2, idle_timeout=10))
        feeder.join()
        assert list(plain.records(idle_timeout=0.3)) == []  # no handshake without the client key
    finally:
        feeder.join()
        for closable in (keyed, plain, publisher):
            closable.close()
        stop_authenticator(ctx)
        ctx.term()
    assert [r["type"] for r in got] == ["prediction", "prediction"]


def test_run_sinks_take_the_pipeline_keys_for_a_non_loopback_predictions_socket(tmp_path):
    from biograd.core.errors import ConfigError
    from biograd.core.security import generate_keys, stop_authenticator
    from biograd.pipeline.run_config import build_run_config
    from biograd.pipeline.runner import build_sinks

    outside = ['sinks.predictions="tcp://0.0.0.0:0"', f'sinks.run_dir="{tmp_path / "run"}"']
    with pytest.raises(ConfigError, match="refusing to bind tcp://0.0.0.0:0 without encryption"):
        build_sinks(build_run_config(overrides=outside))
    generate_keys(tmp_path / "keys")
    sinks = build_sinks(build_run_config(overrides=outside + [f'pipeline.keys="{tmp_path / "keys"}"']))
    try:
        publisher = next(s for s in sinks.sinks if isinstance(s, PredictionPublisher))
        assert publisher._socket.getsockopt(zmq.CURVE_SERVER) == 1
    finally:
        sinks.close()
        stop_authenticator(zmq.Context.instance())
