"""Labels and controls in the order sent, answered by the learner (issue 12 items 1-3)."""

from __future__ import annotations

import secrets
import threading

import numpy as np
import pytest
import zmq
from free_ports import free_ports

from biograd.core import protocol
from biograd.core.events import NMNIST_GEOMETRY, make_events
from biograd.core.protocol import Message, MsgType, Phase
from biograd.core.transport import Receiver, Sender, WireSample, send_control
from biograd.pipeline.cli import main
from biograd.pipeline.learner_stage import LearnerStage
from biograd.pipeline.run_config import build_run_config

SMALL = [
    "learner.layer_sizes=[2312, 16, 10]",
    "learner.batch_size=1",
    "learner.sleep_every=0",
    "pipeline.progress=false",
    "pipeline.metrics_every=1000",
    "sinks.plots=false",
]


class Collect:
    def __init__(self):
        self.records = []

    def handle(self, record):
        self.records.append(record)

    def close(self):
        pass

    def of(self, kind):
        return [r for r in self.records if r["type"] == kind]


class Replies:
    """Stands in for Receiver.reply: what the stage answered, in order."""

    counters = None

    def __init__(self):
        self.answers = []

    def reply(self, request_id, payload, final=True):
        self.answers.append((request_id, payload))


def _window(i, label=None):
    rng = np.random.default_rng(i)
    n = 600
    events = make_events(
        np.sort(rng.integers(0, 300_000, n)), rng.integers(0, 34, n), rng.integers(0, 34, n), rng.integers(0, 2, n)
    )
    return WireSample(f"w{i}", label, NMNIST_GEOMETRY, events, Phase.LIVE, 0, i, 1)


def _label(k, rid):
    return Message(MsgType.CONTROL, payload={"command": "label", "label": k, "id": rid})


def _stage(tmp_path, extra=()):
    from biograd.learner.network import BioGradLearner

    cfg = build_run_config(None, SMALL + [f"sinks.run_dir={tmp_path}", *extra])
    sinks = Collect()
    stage = LearnerStage(cfg, BioGradLearner(cfg.learner), sinks)
    stage.receiver = Replies()
    return stage, sinks


def test_a_burst_of_labels_is_a_fifo_each_label_going_to_the_next_window(tmp_path):
    stage, sinks = _stage(tmp_path)
    for k, rid in ((3, "a"), (5, "b"), (7, "c")):  # six labels during a slow start lost five of them
        stage.process(_label(k, rid))
    for i in range(4):
        stage.process(_window(i))
    preds = sinks.of("prediction")
    assert [(p["sample_id"], p["label"]) for p in preds] == [("w0", 3), ("w1", 5), ("w2", 7), ("w3", None)]
    answers = stage.receiver.answers
    queued = [(rid, a["depth"]) for rid, a in answers if a["status"] == "queued"]
    assert queued == [("a", 1), ("b", 2), ("c", 3)]
    applied = [(rid, a["window"], a["label"]) for rid, a in answers if a["status"] == "applied"]
    assert applied == [("a", "w0", 3), ("b", "w1", 5), ("c", "w2", 7)]
    assert "applied to window w0" in answers[3][1]["message"]
    assert stage.learner.samples_seen == 3


def test_a_label_that_would_replace_a_pending_one_says_so(tmp_path):
    stage, sinks = _stage(tmp_path, ["pipeline.label_queue=2"])
    for k, rid in ((1, "a"), (2, "b"), (4, "c")):
        stage.process(_label(k, rid))
    answers = dict((rid, a) for rid, a in stage.receiver.answers if a["status"] != "queued")
    assert answers["a"]["status"] == "dropped"
    last = stage.receiver.answers[-1][1]
    assert last["status"] == "queued" and last["replaced"] == 1 and "the oldest label 1 was dropped" in last["message"]
    stage.process(_window(0))
    stage.process(_window(1))
    assert [p["label"] for p in sinks.of("prediction")] == [2, 4]


def test_a_label_outside_the_classes_is_refused_not_queued(tmp_path):
    stage, sinks = _stage(tmp_path)
    stage.process(_label(12, "x"))
    assert stage.receiver.answers[-1][1]["status"] == "refused" and not stage.labels
    stage.process(_window(0))
    assert sinks.of("prediction")[0]["label"] is None


@pytest.fixture
def running(tmp_path):
    """A learner stage on a real Receiver: input inproc, control on loopback TCP."""
    from biograd.learner.network import BioGradLearner
    from biograd.sinks.checkpoints import CheckpointManager

    cfg = build_run_config(None, SMALL + [f"sinks.run_dir={tmp_path}"])
    ctx = zmq.Context()
    control = f"tcp://127.0.0.1:{free_ports()}"
    receiver = Receiver("inproc://live-input", control, ctx)
    sinks = Collect()
    stage = LearnerStage(cfg, BioGradLearner(cfg.learner), sinks, CheckpointManager(tmp_path))
    stop = threading.Event()
    thread = threading.Thread(target=lambda: stage.run(receiver, stop, exit_on_end=False))
    thread.start()
    try:
        yield stage, sinks, ctx, control
    finally:
        stop.set()
        thread.join(10)
        receiver.close()
        ctx.destroy(linger=0)


def test_controls_from_successive_calls_apply_in_the_order_of_the_calls(running, capsys):
    stage, sinks, ctx, control = running
    # The order that once left the learner paused: sleep, checkpoint, pause, resume.
    for command in ("sleep", "checkpoint", "pause", "resume"):
        assert main(["control", command, "--connect", control]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[1] for line in lines] == ["slept", "checkpoint", "paused", "resumed"], lines
    assert "checkpoints/ckpt-000000000" in lines[1]
    assert not stage.paused
    assert [r["type"] for r in sinks.records] == ["sleep", "checkpoint"]


def test_a_burst_from_one_connection_is_applied_and_answered_in_the_order_sent(running):
    stage, sinks, ctx, control = running
    sock = ctx.socket(zmq.DEALER)
    sock.connect(control)
    sent, stream = [], secrets.randbits(32)  # one stream, seq + 1 per message, as the protocol asks
    commands = ["pause", "resume", "label", "pause", "label", "sleep", "resume", "label", "pause"]
    for n, command in enumerate(commands):
        rid = f"r{n}-" + secrets.token_hex(2)
        sent.append(rid)
        label = n % 10 if command == "label" else None
        sock.send_multipart(protocol.control_message(command, label, stream_id=stream, seq=n, request_id=rid))
    answers = []
    while len(answers) < len(commands) and sock.poll(5000):
        answers.append(protocol.decode(sock.recv_multipart()).payload)
    sock.close(0)
    assert [a["id"] for a in answers] == sent
    assert [a["status"] for a in answers] == ["queued" if c == "label" else "done" for c in commands]
    assert [a["depth"] for a in answers if a["status"] == "queued"] == [1, 2, 3]
    assert stage.paused  # the last command wins, as sent
    assert [label for label, _ in stage.labels] == [2, 4, 7]


def test_label_cli_prints_queued_then_the_window_it_was_applied_to(running, capsys):
    stage, sinks, ctx, control = running
    sender = Sender("inproc://live-input", ctx, name="camera", kind="test", flow="block")

    def window_later():
        import time

        deadline = time.monotonic() + 30
        while not stage.labels and time.monotonic() < deadline:  # the window comes after the label
            time.sleep(0.05)
        w = _window(9)
        sender.send_sample(w.sample_id, None, w.geometry, w.events, Phase.LIVE, 0, 9)

    threading.Thread(target=window_later).start()
    assert main(["label", "4", "--connect", control, "--wait", "60"]) == 0  # a cold Numba cache compiles first
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0] == "learner: label 4 queued for the next live window (1 waiting)"
    assert out[1].startswith("learner: label 4 applied to window w9 (#9;")
    assert sinks.of("prediction")[-1]["label"] == 4
    sender.close("done")


def test_control_without_a_learner_says_so_quickly():
    from biograd.core.errors import BioGradError

    with pytest.raises(BioGradError, match="no answer from a learner at tcp://127.0.0.1:"):
        send_control(f"tcp://127.0.0.1:{free_ports()}", "pause", timeout_s=0.5)


def test_label_keyboard_helper_queues_each_typed_digit_and_skips_typos(running, monkeypatch, capsys):
    import io

    stage, sinks, ctx, control = running
    monkeypatch.setattr("sys.stdin", io.StringIO("4\nx\n\n7\nq\n9\n"))
    assert main(["label", "--connect", control]) == 0
    assert [label for label, _ in stage.labels] == [4, 7]  # "x" is refused, nothing after "q" is sent
    captured = capsys.readouterr()
    assert "ignored: label 'x': must be a digit 0..9" in captured.err
    assert "learner: label 7 queued for the next live window (2 waiting)" in captured.out


def test_biograd_port_moves_every_default_address(monkeypatch):
    from biograd.core.errors import ConfigError
    from biograd.pipeline.run_config import default_control_address

    monkeypatch.setenv("BIOGRAD_PORT", "6000")
    assert build_run_config(None).pipeline.port == 6000
    assert build_run_config(None, ["pipeline.port=7000"]).pipeline.port == 7000  # an explicit setting wins
    assert default_control_address() == "tcp://127.0.0.1:6001"
    monkeypatch.setenv("BIOGRAD_PORT", "70000")
    with pytest.raises(ConfigError, match="BIOGRAD_PORT = '70000'"):
        build_run_config(None)


def test_the_last_metrics_record_carries_counts_that_moved_after_the_last_sample(tmp_path):
    """A message refused after the last sample (no further metrics on the sample schedule) is
    still in the final metrics record, not only in the end record."""
    stage, sinks = _stage(tmp_path, ["pipeline.metrics_every=1"])
    stage.process(_window(0, label=3))
    assert sinks.of("metrics")[-1]["invalid"] == 0
    stage._reject("a refused message after the last sample")
    stage.finish("end", save=False)
    assert sinks.of("metrics")[-1]["invalid"] == 1 and sinks.of("end")[-1]["invalid"] == 1
    quiet, quiet_sinks = _stage(tmp_path / "b", ["pipeline.metrics_every=1"])
    quiet.process(_window(1, label=2))
    quiet.finish("end", save=False)
    assert len(quiet_sinks.of("metrics")) == 1  # nothing moved: no extra record
