"""Crash-consistent resume (issue 13.5): a learner killed at a random point and resumed from its
last checkpoint, while the source keeps running, ends with every sample of every epoch trained
exactly once in the final model's lineage; the source continues from the position the learner
acknowledges.

The learner is the real learner stage (receiver, publisher, checkpoints, positions) around a
recording learner (no Numba network: the test is about the stream, and must be fast). "kill -9"
is the learner's loop dying mid-sample and its sockets vanishing with whatever they held
(``ctx.destroy(linger=0)``), with no final checkpoint and no end record. The source is the real
replay source stage in a thread with its own ZeroMQ context, as ``biograd source`` runs it.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import zmq
from free_ports import free_ports

from biograd.core.transport import Receiver, RecordPublisher
from biograd.pipeline.learner_stage import LearnerStage
from biograd.pipeline.run_config import build_run_config
from biograd.sinks.checkpoints import CheckpointManager, list_checkpoints, load_checkpoint
from biograd.sinks.fanout import SinkSet
from biograd.sources.stage import run_replay_source

TRAIN = 24  # samples per split (source.limit)
EPOCHS = 2
TRIALS = 20


class Killed(Exception):
    pass


@dataclass
class _Result:
    prediction: int
    counts: np.ndarray
    loss: float = 0.0
    slept: bool = False


@dataclass
class _Config:
    layer_sizes: tuple = (2312, 4, 10)
    batch_size: int = 1
    guard_silent: int = 0
    guard_stalled: int = 0
    guard_check_every: int = 0


@dataclass
class RecordingLearner:
    """What the learner stage needs of a learner; it records which sample it trained on."""

    config: _Config = field(default_factory=_Config)
    samples_seen: int = 0
    sleeps: int = 0
    last_alignment: list = field(default_factory=list)
    trained: list = field(default_factory=list)  # (epoch, index) in training order
    current: tuple = (-1, -1)
    die_at: int = -1  # "kill -9" when this many samples have been seen
    last_change: int = 0
    weights: list = field(default_factory=list)  # the health guard finds nothing to check
    biases: list = field(default_factory=list)
    feedback: list = field(default_factory=list)

    def train_sample(self, raster, label):
        if self.samples_seen == self.die_at:
            raise Killed
        self.trained.append(self.current)
        self.samples_seen += 1
        return _Result(label, np.zeros(10, np.int64))

    def predict(self, raster):
        return 0, np.zeros(10, np.int64)

    def flush(self):
        return None

    def state_arrays(self):
        return {"trained": np.array(self.trained, np.int64).reshape(-1, 2), "counters": np.array([self.samples_seen])}

    def save(self, path):
        with open(path, "wb") as f:
            np.savez(f, **self.state_arrays())
        return Path(path)

    @classmethod
    def load(cls, path):
        with np.load(path) as z:
            trained = [tuple(int(v) for v in row) for row in z["trained"]]
        return cls(samples_seen=len(trained), trained=trained)


class RecordingStage(LearnerStage):
    def _sample(self, sample):
        self.learner.current = (int(sample.epoch), int(sample.index))
        super()._sample(sample)


def _learner_run(cfg, learner, position, run_dir, ports, result):
    """One learner process: bind, learn until the end (or die), return via ``result``."""
    ctx = zmq.Context()
    receiver = None
    try:
        receiver = Receiver(f"tcp://127.0.0.1:{ports}", f"tcp://127.0.0.1:{ports + 1}", ctx, hwm=cfg.pipeline.hwm)
        publisher = RecordPublisher(f"tcp://127.0.0.1:{ports + 2}", ctx)
        checkpoints = CheckpointManager(run_dir, every_samples=5, keep=2, start_samples=learner.samples_seen)
        stage = RecordingStage(cfg, learner, SinkSet([]), checkpoints, publisher, resume_state=position)
        result["reason"] = stage.run(receiver, threading.Event())
        stage.finish(result["reason"])
    except Killed:
        result["reason"] = "killed"
    except BaseException as exc:  # shown by the test's assertion
        result["reason"] = repr(exc)
    finally:
        result["counters"] = receiver.counters if receiver else None
        ctx.destroy(linger=0)  # whatever the sockets held is gone, as with kill -9


@pytest.mark.parametrize("trial", range(TRIALS))
def test_kill_and_resume_trains_every_sample_exactly_once(nmnist_dir, tmp_path, trial):
    rng = random.Random(trial)
    hwm = rng.choice([4, 1000])  # the source blocked mid-epoch, or everything already sent
    cfg = build_run_config(
        None,
        [
            f"source.limit={TRAIN}",
            f"source.epochs={EPOCHS}",
            "pipeline.progress=false",
            f"pipeline.hwm={hwm}",
            "learner.layer_sizes=[2312, 4, 10]",
            f"sinks.run_dir={tmp_path}",
        ],
    )
    port = free_ports(3)
    stop = threading.Event()
    sent = {}
    source = threading.Thread(
        target=lambda: sent.setdefault(
            "n",
            run_replay_source(
                cfg,
                nmnist_dir.parent,
                f"tcp://127.0.0.1:{port}",
                stop,
                None,
                name="replay",
                ack_address=f"tcp://127.0.0.1:{port + 2}",
            ),
        ),
        daemon=True,
    )
    first = RecordingLearner(die_at=rng.randrange(1, TRAIN * EPOCHS))
    result1: dict = {}
    learner1 = threading.Thread(target=_learner_run, args=(cfg, first, None, tmp_path, port, result1))
    learner1.start()
    source.start()
    learner1.join(60)
    assert result1.get("reason") == "killed", result1
    time.sleep(rng.uniform(0, 0.3))  # the source keeps going (or blocks) meanwhile
    if list_checkpoints(tmp_path):
        ckpt = load_checkpoint(tmp_path, RecordingLearner.load)
        second, position = ckpt.learner, ckpt.extra_state["position"]
    else:  # killed before its first checkpoint: the new learner starts afresh
        second, position = RecordingLearner(), None
    result2: dict = {}
    learner2 = threading.Thread(target=_learner_run, args=(cfg, second, position, tmp_path, port, result2))
    learner2.start()
    learner2.join(60)
    source.join(10)
    stop.set()
    assert result2.get("reason") == "end", result2
    expected = [(e, i) for e in range(EPOCHS) for i in range(TRAIN)]
    assert second.trained == expected  # each sample once per epoch, in order: nothing lost, nothing twice
    assert result2["counters"].dropped == 0 and result2["counters"].gaps == 0
