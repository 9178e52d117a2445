"""The learner stage on its own: live labels, control commands, eval of a checkpoint."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from biograd.core.events import NMNIST_GEOMETRY, make_events
from biograd.core.protocol import Message, MsgType, Phase
from biograd.core.transport import WireSample
from biograd.pipeline.cli import main
from biograd.pipeline.encoder import Encoder
from biograd.pipeline.learner_stage import LearnerStage
from biograd.pipeline.run_config import build_run_config
from biograd.sources.stage import open_split

SMALL = [
    "learner.layer_sizes=[2312, 16, 10]",
    "learner.batch_size=1",
    "learner.sleep_every=0",  # a sleep after every update, as the tests below count them
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


class FakeReceiver:
    """Hands the stage a fixed list of items, as Receiver.poll would."""

    def __init__(self, items):
        self.items = list(items)
        self.counters = None
        self.data_polls = 0

    def poll(self, timeout_ms=100, data=True, max_messages=256):
        if not data:  # paused: only the control socket is read, so a control may overtake data
            for k, item in enumerate(self.items):
                if isinstance(item, Message) and item.type == MsgType.CONTROL:
                    return [self.items.pop(k)]
            return []
        self.data_polls += 1
        return self._take(lambda i: True)

    def _take(self, ok):
        out = []
        while self.items and ok(self.items[0]):
            out.append(self.items.pop(0))
            if isinstance(out[-1], Message) and out[-1].type == MsgType.CONTROL:
                break  # one control at a time, as it would arrive
        return out

    def live_streams(self):
        return 0


def _window(i, label=None, phase=Phase.LIVE):
    rng = np.random.default_rng(i)
    n = 800
    events = make_events(
        1_000_000 + np.sort(rng.integers(0, 300_000, n)),
        rng.integers(0, 34, n),
        rng.integers(0, 34, n),
        rng.integers(0, 2, n),
    )
    return WireSample(f"w{i}", label, NMNIST_GEOMETRY, events, phase, 0, i, 1)


def _control(command, **kw):
    return Message(MsgType.CONTROL, payload={"command": command, **kw})


@pytest.fixture
def stage(tmp_path):
    from biograd.learner.network import BioGradLearner
    from biograd.sinks.checkpoints import CheckpointManager

    cfg = build_run_config(None, SMALL + [f"sinks.run_dir={tmp_path}"])
    sinks = Collect()
    return LearnerStage(cfg, BioGradLearner(cfg.learner), sinks, CheckpointManager(tmp_path)), sinks


def test_label_control_trains_the_next_live_window_only(stage):
    stage, sinks = stage
    before = [w.copy() for w in stage.learner.weights]
    for item in (_window(0), _control("label", label=3), _window(1), _window(2)):
        stage.process(item)
    preds = sinks.of("prediction")
    assert [(p["sample_id"], p["label"], p["phase"]) for p in preds] == [
        ("w0", None, "live"),
        ("w1", 3, "live"),
        ("w2", None, "live"),
    ]
    assert preds[1]["correct"] == (preds[1]["predicted"] == 3) and preds[0]["correct"] is None
    assert stage.learner.samples_seen == 1  # only the labelled window trained
    assert any(not np.array_equal(a, b) for a, b in zip(before, stage.learner.weights))


def test_live_windows_are_binned_from_their_own_start(stage):
    stage, _ = stage
    encode = stage.encode
    late = _window(5)  # events at 1.0-1.3 s absolute
    raster = encode(late)
    assert raster.indptr[-1] > 0  # binned from the window's first event
    as_dataset = WireSample(**{**late.__dict__, "phase": Phase.TRAIN})
    assert encode(as_dataset).indptr[-1] == 0  # a dataset sample is binned from t = 0


def test_controls_sleep_checkpoint_pause_shutdown(stage, tmp_path):
    stage, sinks = stage
    receiver = FakeReceiver(
        [
            _control("sleep"),
            _control("checkpoint"),
            _control("pause"),
            _window(0, 1, Phase.TRAIN),
            _control("resume"),
            _control("shutdown"),
            _window(1, 2, Phase.TRAIN),
        ]
    )
    stop = threading.Event()
    # pause: the data item waits until resume; shutdown stops before the last window.
    assert stage.run(receiver, stop) == "shutdown"
    # The commanded sleep before any sample, then the scheduled one after the batch-1 update.
    assert [r["samples"] for r in sinks.of("sleep")] == [0, 1]
    assert len(sinks.of("sleep")[0]["angle_deg"]) == 1
    ckpt = sinks.of("checkpoint")
    assert len(ckpt) == 1 and (tmp_path / "checkpoints").is_dir()
    assert [p["sample_id"] for p in sinks.of("prediction")] == ["w0"]
    stage.finish("shutdown")
    end = sinks.of("end")[-1]
    assert end["reason"] == "shutdown" and end["checkpoint"].endswith("-final")


def test_eval_command_matches_the_learner_on_the_test_split(data_dir, tmp_path, capsys):
    from biograd.learner.network import BioGradLearner
    from biograd.sinks.checkpoints import CheckpointManager

    settings = SMALL + ["source.limit=30"]
    cfg = build_run_config(None, settings)
    learner = BioGradLearner(cfg.learner)
    encode = Encoder(cfg)
    train = open_split(cfg, data_dir, "train")
    for i, s in enumerate(train.iter_epoch(0)):
        learner.train_sample(
            encode(WireSample(s.sample_id, s.label, s.geometry, s.events, Phase.TRAIN, 0, i, 0)), s.label
        )
    path = CheckpointManager(tmp_path).save_final(
        learner, {"position": {"epoch": 1, "next_index": 0, "train_done": False}}
    )
    correct = total = 0
    for i, s in enumerate(open_split(cfg, data_dir, "test").iter_epoch(0)):
        predicted, _ = learner.predict(
            encode(WireSample(s.sample_id, s.label, s.geometry, s.events, Phase.TEST, 0, i, 0))
        )
        correct += int(predicted == s.label)
        total += 1
    argv = ["eval", "--checkpoint", str(path), "--data", str(data_dir), "--json"]
    for s in settings:
        argv += ["--set", s]
    assert main(argv) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["samples"] == total == 30
    assert record["accuracy"] == pytest.approx(correct / total)
    assert np.array(record["confusion"]).trace() == correct
