"""The health guard in the learner stage: a diverged learner stops, its last good checkpoint stays."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from biograd.core.events import NMNIST_GEOMETRY, make_events
from biograd.core.protocol import Phase
from biograd.core.transport import WireSample
from biograd.learner.health import LearningHalted
from biograd.learner.network import BioGradLearner
from biograd.pipeline.cli import main
from biograd.pipeline.learner_stage import LearnerStage
from biograd.pipeline.run_config import build_run_config
from biograd.sinks.checkpoints import CheckpointManager, load_checkpoint


def _sample(i):
    rng = np.random.default_rng(i)
    n = 800
    events = make_events(
        np.sort(rng.integers(0, 300_000, n)), rng.integers(0, 34, n), rng.integers(0, 34, n), rng.integers(0, 2, n)
    )
    return WireSample(f"s{i}", int(i % 10), NMNIST_GEOMETRY, events, Phase.TRAIN, 0, i, 1)


class _Items:
    def __init__(self, items):
        self.items, self.counters = list(items), None

    def poll(self, timeout_ms=100, data=True, max_messages=256):
        out, self.items = self.items, []
        return out

    def live_streams(self):
        return 0


class _Corrupting(_Items):
    """After the first batch of samples, a weight turns NaN (as a diverging update would)."""

    def __init__(self, first, then, learner):
        super().__init__(first)
        self.then, self.learner = then, learner

    def poll(self, timeout_ms=100, data=True, max_messages=256):
        if not self.items and self.then:
            self.learner.weights[0][0, 0] = np.nan
            self.items, self.then = self.then, []
        return super().poll()


class _Collect:
    def __init__(self):
        self.records = []

    def handle(self, record):
        self.records.append(record)

    def close(self):
        pass


def test_stage_halts_on_non_finite_weights_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = build_run_config(
        None,
        ["learner.layer_sizes=[2312, 16, 10]", "learner.guard_check_every=3", "pipeline.progress=false"],
    )
    learner = BioGradLearner(cfg.learner)
    manager = CheckpointManager(tmp_path, every_samples=4, every_minutes=0, keep=10)
    stage = LearnerStage(cfg, learner, _Collect(), manager)
    receiver = _Corrupting([_sample(i) for i in range(8)], [_sample(i) for i in range(8, 16)], learner)
    with pytest.raises(LearningHalted, match="W0 has .* non-finite"):
        stage.run(receiver, threading.Event())
    saved = sorted((tmp_path / "checkpoints").iterdir())
    assert [p.name for p in saved] == ["ckpt-000000004", "ckpt-000000008"]  # none after the corruption
    for p in saved:
        ck = load_checkpoint(p, BioGradLearner.load)
        assert all(np.isfinite(w).all() for w in ck.learner.weights)
    assert learner.samples_seen <= 8 + 3  # stopped at the first periodic check


def test_cli_exits_non_zero_with_the_reason_and_writes_no_final_checkpoint(tmp_path, capsys, nmnist_dir, monkeypatch):
    """Resume from a checkpoint whose weights went NaN: the run stops at the first check, exit != 0."""
    cfg = build_run_config(None, ["learner.layer_sizes=[2312, 16, 10]", "learner.guard_check_every=2"])
    bad = BioGradLearner(cfg.learner)
    bad.weights[1][3, 4] = np.nan
    ckpt = CheckpointManager(tmp_path / "old").save_now(bad, {"position": {"epoch": 0, "next_index": 0}})
    run = tmp_path / "run"
    argv = (
        ["replay", "--data", str(nmnist_dir.parent), "--run-dir", str(run), "--resume", str(ckpt)]
        + ["--set", "source.limit=12", "--set", "learner.layer_sizes=[2312, 16, 10]"]
        + ["--set", "pipeline.progress=false", "--set", "sinks.plots=false"]
    )
    # Loading refuses NaN weights with a clear error (issue 13.11) ...
    assert main(argv) != 0
    assert "W1 holds NaN or infinite values" in capsys.readouterr().err
    # ... so, to reach the guard inside the run, this test lets the NaN through the load check.
    monkeypatch.setattr("biograd.sinks.checkpoints.check_learner_state", lambda ckpt, learner: None)
    code = main(argv)
    err = capsys.readouterr().err
    assert code != 0
    assert "learning halted at sample 2: W1 has" in err and "non-finite" in err
    assert not (run / "checkpoints").exists() or not list((run / "checkpoints").iterdir())
    assert ckpt.exists()  # the checkpoint resumed from is untouched
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["type"] == "end" and rows[-1]["reason"] == "halted" and rows[-1]["checkpoint"] is None
