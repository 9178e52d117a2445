"""Sources and sinks that misbehave (issue 13.6, 13.7, 13.9, 13.10): forged SPLIT_END, a silent
source, SIGTERM while waiting for sinks, a sink that loses records."""

from __future__ import annotations

import io
import threading
import time

import zmq
from test_crash_resume import RecordingLearner, RecordingStage

from biograd.core import records
from biograd.core.protocol import Message, MsgType, Phase
from biograd.core.transport import Receiver, RecordPublisher
from biograd.pipeline.run_config import build_run_config
from biograd.pipeline.runner import run_learner
from biograd.sinks.fanout import SinkSet
from biograd.sinks.predictions import print_predictions


def test_a_split_end_for_another_epoch_does_not_move_the_position(tmp_path):
    cfg = build_run_config(None, ["learner.layer_sizes=[2312, 4, 10]", f"sinks.run_dir={tmp_path}"])
    stage = RecordingStage(cfg, RecordingLearner(), SinkSet([]), resume_state={"epoch": 2, "next_index": 7})
    before = dict(stage.position)
    for phase, epoch in ((Phase.TRAIN, 65535), (Phase.TEST, 2), (Phase.TRAIN, 1)):
        stage.process(Message(MsgType.SPLIT_END, phase=phase, epoch=epoch, count=10))
    assert stage.position == before and stage.counters()["invalid"] == 3
    stage.process(Message(MsgType.SPLIT_END, phase=Phase.TRAIN, epoch=2, count=10))  # the real one
    assert stage.position == {"epoch": 2, "next_index": 0, "train_done": True}


def test_a_source_silent_without_stream_end_is_given_up():
    now = [0.0]
    ctx = zmq.Context()
    receiver = Receiver("inproc://silent", ctx=ctx, stream_idle_s=30, clock=lambda: now[0])
    push = ctx.socket(zmq.PUSH)
    push.connect("inproc://silent")
    from biograd.core import protocol

    push.send_multipart(protocol.encode(Message(MsgType.STREAM_START, 5, 0, payload={"name": "gone"})))
    deadline = time.monotonic() + 5
    while receiver.live_streams() == 0 and time.monotonic() < deadline:
        receiver.poll(20)
    assert receiver.live_streams() == 1
    now[0] = 31.0
    receiver.poll(10)  # nothing waiting: the learner is idle, the stream silent for 31 s
    assert receiver.live_streams() == 0 and receiver.counters.lost_streams == 1
    push.close(0)
    receiver.close()
    ctx.destroy(0)


def test_sigterm_while_waiting_for_sinks_ends_the_run_at_once(tmp_path):
    cfg = build_run_config(
        None,
        [
            "learner.layer_sizes=[2312, 4, 10]",
            "pipeline.transport=ipc",
            f"pipeline.ipc_dir={tmp_path}",
            "pipeline.wait_for_sinks=1",
            "pipeline.wait_for_sinks_s=120",
            "pipeline.progress=false",
            "sinks.plots=false",
            f"sinks.run_dir={tmp_path / 'run'}",
        ],
    )
    stop = threading.Event()
    threading.Timer(1.0, stop.set).start()  # what the SIGTERM handler does
    started = time.monotonic()
    summary = run_learner(cfg, None, stop=stop)
    assert summary["reason"] == "signal" and time.monotonic() - started < 30
    assert (tmp_path / "run" / "checkpoints").is_dir()  # the final checkpoint was written


def test_the_predictions_sink_reports_lost_records(capfd):
    ctx = zmq.Context()
    pub = RecordPublisher("tcp://127.0.0.1:0", ctx)
    address = pub.sock.getsockopt(zmq.LAST_ENDPOINT).decode()
    out = io.StringIO()
    done = threading.Event()
    thread = threading.Thread(target=lambda: (print_predictions(address, idle_timeout=10, stream=out), done.set()))
    thread.start()
    pub.wait_for_sinks(1, 10)
    for i in range(10):
        if i == 5:
            pub._index["prediction"] += 3  # three records lost on the way
        pub.handle(records.prediction_record(f"p{i}", i, "test", 0, 1, 1, [0] * 10, 5, None))
    pub.handle(records.end_record("end", 10, 10, 50, {"dropped": 0, "invalid": 0, "gaps": 0}, None))
    thread.join(20)
    assert done.is_set() and out.getvalue().count("\n") == 10
    assert "biograd: 3 records lost on the way" in capfd.readouterr().err
    pub.close()
    ctx.destroy(0)
