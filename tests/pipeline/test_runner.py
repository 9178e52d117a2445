"""The runner end to end on real N-MNIST: processes over ZeroMQ learn exactly what one process
learns; hostile input, a killed source and SIGTERM do not stop or corrupt the learner."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq
from free_ports import free_ports

from biograd.core import protocol
from biograd.core.events import DAVIS346_GEOMETRY, NMNIST_GEOMETRY, make_events
from biograd.core.protocol import Message, MsgType, Phase
from biograd.core.transport import RecordSubscriber, Sender, WireSample, send_control
from biograd.pipeline.encoder import Encoder
from biograd.pipeline.run_config import build_run_config
from biograd.pipeline.run_dir import config_to_toml
from biograd.pipeline.runner import replay, run_learner
from biograd.sources.stage import open_split

REPO = Path(__file__).resolve().parents[2]
LIMIT = 120  # train samples (and at most that many test samples)
SETTINGS = [
    f"source.limit={LIMIT}",
    "learner.batch_size=16",
    "learner.layer_sizes=[2312, 64, 10]",
    "pipeline.progress=false",
    "sinks.plots=false",
    "pipeline.metrics_every=10",
]


def _cfg(tmp_path, *extra):
    return build_run_config(None, SETTINGS + [f"sinks.run_dir={tmp_path}"] + list(extra))


def _weights(learner):
    return (
        [w.copy() for w in learner.weights] + [b.copy() for b in learner.biases] + [f.copy() for f in learner.feedback]
    )


@pytest.fixture(scope="module")
def direct_weights(data_dir, tmp_path_factory):
    """The learner trained by a plain loop over the dataset: no ZeroMQ, no runner."""
    from biograd.learner.network import BioGradLearner

    cfg = _cfg(tmp_path_factory.mktemp("direct"))
    learner = BioGradLearner(cfg.learner)
    encode = Encoder(cfg)
    dataset = open_split(cfg, data_dir, "train")
    n = 0
    for i, sample in enumerate(dataset.iter_epoch(0)):
        raster = encode(
            WireSample(sample.sample_id, sample.label, sample.geometry, sample.events, Phase.TRAIN, 0, i, 0)
        )
        learner.train_sample(raster, sample.label)
        n += 1
    learner.flush()  # the runner applies the epoch's partial batch too
    assert n == LIMIT
    return _weights(learner)


@pytest.mark.parametrize("transport", ["inproc", "ipc"])
def test_replay_over_zeromq_learns_the_same_weights(direct_weights, data_dir, tmp_path, transport):
    cfg = _cfg(tmp_path, f"pipeline.transport={transport}", f"pipeline.ipc_dir={tmp_path}")
    summary = replay(cfg, data_dir)
    assert summary["reason"] == "end"
    assert summary["samples"] == LIMIT and summary["processed"] == LIMIT + min(LIMIT, 100)
    assert (summary["dropped"], summary["invalid"], summary["gaps"]) == (0, 0, 0)
    got = _weights(summary["learner"])
    assert len(got) == len(direct_weights)
    for a, b in zip(got, direct_weights):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if r["type"] == "eval"]
    assert len(evals) == 1 and evals[0]["samples"] == min(LIMIT, 100)
    assert np.array(evals[0]["confusion"]).sum() == evals[0]["samples"]
    assert any(r["type"] == "checkpoint" and r["path"].endswith("-final") for r in rows)


def _learner_thread(cfg, **kw):
    result = {}

    def body():
        try:
            result["summary"] = run_learner(cfg, None, **kw)
        except BaseException as exc:  # reported by the test, not lost in the thread
            result["error"] = exc

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, result


def _events(n, seed, geometry=NMNIST_GEOMETRY):
    rng = np.random.default_rng(seed)
    return make_events(
        np.sort(rng.integers(0, 300_000, n)),
        rng.integers(0, geometry.width, n),
        rng.integers(0, geometry.height, n),
        rng.integers(0, 2, n),
    )


def test_learner_survives_hostile_input_and_counts_it(tmp_path):
    port = free_ports(3)
    cfg = _cfg(tmp_path, "pipeline.transport=tcp", f"pipeline.port={port}", "pipeline.max_events=50000")
    thread, result = _learner_thread(cfg)
    address = f"tcp://127.0.0.1:{port}"
    ctx = zmq.Context()
    try:
        good = Sender(address, ctx, name="good", packet_events=500)
        evil = ctx.socket(zmq.PUSH)
        evil.connect(address)
        valid = protocol.encode(Message(MsgType.EVENTS, 5, 0, NMNIST_GEOMETRY, sample_id="x", events=_events(30, 0)))
        head, body = bytes(valid[0]), bytes(valid[1])
        hostile = [
            [head[:2] + bytes([7]) + head[3:], body],  # wrong protocol version
            [head, body[:-6]],  # truncated payload
            [head[:50]],  # truncated header
            [b"\x00" * 102, b"junk"],  # garbage
            protocol.encode(Message(MsgType.EVENTS, 6, 0, NMNIST_GEOMETRY, events=_events(60_000, 1))),  # oversized
            [head, body, body],  # extra frame
            protocol.encode(Message(MsgType.SAMPLE_START, 8, 0, NMNIST_GEOMETRY, label=1)) + [b"x"],  # extra frame
        ]
        labels = []
        for i in range(20):
            good.send_sample(f"g{i}", i % 10, NMNIST_GEOMETRY, _events(400 + i, 10 + i), Phase.TRAIN, 0, i)
            labels.append(i % 10)
            if i < len(hostile):
                evil.send_multipart(hostile[i])
        # Valid messages the learner cannot use: wrong sensor size, a train sample without label.
        good.send_sample("big", 1, DAVIS346_GEOMETRY, _events(100, 99, DAVIS346_GEOMETRY), Phase.TRAIN, 0, 20)
        good.send_sample("nolabel", None, NMNIST_GEOMETRY, _events(100, 98), Phase.TRAIN, 0, 21)
        good.split_end(Phase.TRAIN, 0, 22)
        time.sleep(0.5)
        good.close()
        thread.join(60)
        evil.close(0)
    finally:
        ctx.destroy(0)
    assert not thread.is_alive() and "error" not in result, result.get("error")
    summary = result["summary"]
    assert summary["reason"] == "end"
    assert summary["samples"] == 20 and summary["processed"] == 20
    assert summary["invalid"] == len(hostile) + 2
    assert summary["learner"].updates == 2  # 16 + the flushed partial batch of 4
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    metrics = [r for r in rows if r["type"] == "metrics"]
    assert metrics[-1]["invalid"] == len(hostile) + 2 and rows[-1]["invalid"] == len(hostile) + 2


def test_killed_source_is_replaced_without_restarting_the_learner(data_dir, tmp_path):
    cfg = _cfg(
        tmp_path,
        "pipeline.transport=ipc",
        f"pipeline.ipc_dir={tmp_path}",
        "pipeline.hwm=2",
        "pipeline.packet_events=256",
        "source.limit=40",
    )
    thread, result = _learner_thread(cfg)
    from biograd.core.transport import endpoints

    ep = endpoints(cfg.pipeline, name=f"biograd-{os.getpid()}")  # what run_learner binds
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not Path(ep.input[len("ipc://") :]).exists():
        time.sleep(0.05)
    sub = RecordSubscriber(ep.output, types=("prediction",))
    source_cmd = [
        sys.executable,
        "-m",
        "biograd.pipeline.cli",
        "source",
        "--connect",
        ep.input,
        "--name",
        "nmnist",
        "--data",
        str(data_dir),
    ] + [a for s in SETTINGS + ["source.limit=40"] for a in ("--set", s)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # The first source replays at 10x real time (about 30 ms per sample): it is mid-stream when killed.
    first = subprocess.Popen(source_cmd + ["--set", "source.speed=10"], env=env, stderr=subprocess.DEVNULL)
    second = None
    try:
        assert sub.recv(60_000) is not None  # the learner is learning from the first source
        send_control(ep.control, "pause")
        while sub.recv(500) is not None:  # published before the pause took effect
            pass
        assert sub.recv(700) is None  # paused: nothing is processed
        assert first.poll() is None, "the first source finished before it could be killed"
        first.kill()  # SIGKILL: no STREAM_END
        first.wait(10)
        second = subprocess.Popen(source_cmd, env=env, stderr=subprocess.DEVNULL)
        send_control(ep.control, "resume")
        assert second.wait(60) == 0
        thread.join(60)
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.kill()
        sub.close()
    assert not thread.is_alive() and "error" not in result, result.get("error")
    summary = result["summary"]
    assert summary["reason"] == "end"
    # The second source continued where the learner was (issue 13.10): each of the 40 train
    # samples trained exactly once, then the 40 test samples.
    assert summary["samples"] == 40 and summary["processed"] == 80
    assert summary["dropped"] <= 1
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["samples"] for r in rows if r["type"] == "eval"] == [40]


def test_sigterm_finishes_the_sample_checkpoints_and_exits_0(data_dir, tmp_path):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "biograd.pipeline.cli", "replay", "--data", str(data_dir), "--run-dir", str(run_dir)]
    for s in SETTINGS + ["pipeline.metrics_every=5", "source.limit=400"]:
        cmd += ["--set", s]
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=subprocess.PIPE, text=True)
    metrics = run_dir / "metrics.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (metrics.exists() and '"metrics"' in metrics.read_text()):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    end = rows[-1]
    assert end["type"] == "end" and end["reason"] == "signal"
    assert 0 < end["samples"] < 400
    finals = list((run_dir / "checkpoints").glob("ckpt-*-final"))
    assert len(finals) == 1 and int(finals[0].name.split("-")[1]) == end["samples"]
    state = json.loads((finals[0] / "state.json").read_text())
    assert state["extra"]["position"] == {"epoch": 0, "next_index": end["samples"], "train_done": False}


def test_config_written_to_the_run_dir_reads_back_equal(tmp_path):
    cfg = build_run_config(
        None, ["preset=mnist", "learner.vth=[0.2, 0.3, 0.4]", 'sinks.run_dir="a \\"b\\""', "pipeline.flow=drop"]
    )
    path = tmp_path / "config.toml"
    path.write_text(config_to_toml(cfg))
    assert build_run_config(path) == cfg


def test_live_replays_a_recording_as_windows(davis_file, tmp_path, capsys):
    """`live` on the real DAVIS346 recording, down-sampled to the N-MNIST input, 20 ms windows:
    it compiles first and says "ready" with the control address, then the first window takes
    under 1 s, and each window is one terminal line."""
    from biograd.pipeline.runner import live

    port = free_ports(3)
    cfg = _cfg(
        tmp_path / "run",
        "source.kind=aedat",
        f"source.path={davis_file}",
        "source.resize=[34, 34]",
        "source.window_us=20000",
        f"pipeline.port={port}",
        f"sinks.predictions_file={tmp_path / 'predictions.jsonl'}",
    )
    summary = live(cfg, None)
    assert summary["reason"] == "end"
    assert summary["events"] > 0 and summary["samples"] == 0  # no labels: predicted, not trained
    windows = summary["processed"]
    assert 5 <= windows <= 8  # 0.13 s of events in 20 ms windows
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["type"] == "end" and rows[-1]["processed"] == windows
    assert all(r["phase"] == "live" for r in rows if r["type"] == "metrics")
    out = capsys.readouterr().out.splitlines()
    ready = [line for line in out if line.startswith("ready")]
    assert ready and f"biograd label 3 --connect tcp://127.0.0.1:{port + 1}" in ready[0]
    assert out.index(ready[0]) > next(i for i, line in enumerate(out) if line.startswith("compiling"))
    lines = [line for line in out if " window " in line]
    assert len(lines) == windows and all("predicted" in line and "confidence" in line for line in lines)
    first = json.loads((tmp_path / "predictions.jsonl").read_text().splitlines()[0])
    assert first["time"] - summary["ready_at"] < 1.0


def test_keys_command_creates_and_refuses_to_overwrite(tmp_path, capsys):
    from biograd.pipeline.cli import main

    assert main(["keys", str(tmp_path / "k")]) == 0
    names = sorted(p.name for p in (tmp_path / "k").iterdir())
    assert names == ["authorized_clients", "client.key", "client.key_secret", "server.key", "server.key_secret"]
    assert (tmp_path / "k" / "server.key_secret").stat().st_mode & 0o077 == 0
    assert main(["keys", str(tmp_path / "k")]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert (
        main(
            [
                "learner",
                "--set",
                "pipeline.bind_host=0.0.0.0",
                "--set",
                "pipeline.port=47350",
                "--run-dir",
                str(tmp_path / "r"),
            ]
        )
        == 2
    )
    assert "refusing to bind tcp://0.0.0.0:47350 without encryption" in capsys.readouterr().err


def test_a_failure_before_the_stream_leaves_no_zeromq_context_and_closes_the_sinks(tmp_path, monkeypatch):
    """An error while setting up (here: the checkpoint folder) closes what was opened; no
    zmq.Context is left for the garbage collector to terminate at some later point."""
    from biograd.pipeline import runner

    made = []

    class TrackedContext(zmq.Context):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            made.append(self)

    closed = []
    real_build = runner.build_sinks

    def build_sinks(*a, **k):
        sinks = real_build(*a, **k)
        real_close = sinks.close
        sinks.close = lambda: closed.append(True) or real_close()
        return sinks

    def broken_checkpoints(*a, **k):
        raise OSError("checkpoint folder not writable")

    monkeypatch.setattr(runner.zmq, "Context", TrackedContext)
    monkeypatch.setattr(runner, "build_sinks", build_sinks)
    monkeypatch.setattr("biograd.sinks.checkpoints.CheckpointManager", broken_checkpoints)
    with pytest.raises(OSError, match="not writable"):
        replay(_cfg(tmp_path), str(tmp_path))
    assert closed == [True]
    assert all(c.closed for c in made), "a zmq.Context was left open"
