"""Runs that resume correctly (issue 12 items 8-10): saved settings + only the given overrides, the
same data order, "run complete", run folders that hold a run, checkpoint forms, `~` in paths."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from biograd.learner.network import BioGradLearner
from biograd.pipeline.cli import main
from biograd.pipeline.run_config import build_run_config
from biograd.sinks.checkpoints import load_checkpoint

SETTINGS = [
    "source.limit=24",
    "learner.layer_sizes=[2312, 16, 10]",
    "learner.batch_size=4",
    "learner.sleep_every=8",
    "pipeline.progress=false",
    "pipeline.metrics_every=8",
    "sinks.checkpoint_every=8",
    "sinks.plots=false",
    "pipeline.evaluate=false",
]


def _replay(data_dir, *args, settings=SETTINGS):
    argv = ["replay", "--data", str(data_dir), *args]
    for s in settings:
        argv += ["--set", s]
    return main(argv)


def _learner(path):
    return load_checkpoint(path, BioGradLearner.load).learner


def _same(a, b):
    return all(
        np.array_equal(x, y) for name in ("weights", "biases") for x, y in zip(getattr(a, name), getattr(b, name))
    )


def test_resume_uses_the_runs_own_settings_same_order_and_says_when_complete(data_dir, tmp_path, capsys):
    straight, run = tmp_path / "straight", tmp_path / "a"
    assert _replay(data_dir, "--run-dir", str(straight), "--epochs", "2") == 0
    assert _replay(data_dir, "--run-dir", str(run), "--epochs", "1") == 0
    saved = (run / "config.toml").read_text()
    capsys.readouterr()
    # Nothing left to do: says so, touches nothing (no demo settings, no rewritten config).
    assert main(["replay", "--data", str(data_dir), "--resume", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"run complete: {run} has done its 1 epoch (24 samples trained); give --epochs N (N > 1) to go on" in out
    assert (run / "config.toml").read_text() == saved
    # --epochs 2 goes on with the saved settings (limit 24, batch 4, ...) in the same seeded order.
    assert main(["replay", "--data", str(data_dir), "--resume", str(run), "--epochs", "2"]) == 0
    assert f"settings of {run} (config.toml)" in capsys.readouterr().out
    resumed_cfg = build_run_config(run / "config.toml")
    assert resumed_cfg.source.limit == 24 and resumed_cfg.learner.batch_size == 4 and resumed_cfg.source.epochs == 2
    assert _learner(run).samples_seen == _learner(straight).samples_seen == 48
    assert _same(_learner(run), _learner(straight))
    # An override given with --resume is the only setting that changes.
    assert main(["replay", "--data", str(data_dir), "--resume", str(run), "--epochs", "3",
                 "--set", "sinks.checkpoint_every=24"]) == 0  # fmt: skip
    cfg = build_run_config(run / "config.toml")
    assert cfg.sinks.checkpoint_every == 24 and cfg.source.limit == 24 and cfg.source.epochs == 3


def test_a_run_folder_holding_another_run_is_refused_unless_resume_or_force(data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert _replay(data_dir, "--run-dir", str(run)) == 0
    (run / "plots").mkdir()
    (run / "plots" / "stale.png").write_bytes(b"old")
    capsys.readouterr()
    assert _replay(data_dir, "--run-dir", str(run)) == 2
    err = capsys.readouterr().err
    assert f"{run} holds another run (config.toml, metrics.jsonl, checkpoints, plots)" in err
    assert "--resume" in err and "--force" in err
    assert _replay(data_dir, "--run-dir", str(run), "--force", settings=[*SETTINGS[:-2], "sinks.plots=true"]) == 0
    assert not (run / "plots" / "stale.png").exists() and (run / "plots" / "learning_curves.png").exists()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert sum(r["type"] == "end" for r in rows) == 1  # the earlier run's log went with --force


def test_every_checkpoint_form_is_accepted_by_eval_resume_predict_and_deploy(data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert _replay(data_dir, "--run-dir", str(run)) == 0
    final = run / "checkpoints" / "ckpt-000000024-final"
    bare = tmp_path / "model.npz"
    shutil.copy(final / "learner.npz", bare)
    forms = [run, run / "checkpoints", final, final / "learner.npz", bare]
    capsys.readouterr()
    accuracies = []
    for form in forms:
        argv = ["eval", "--checkpoint", str(form), "--data", str(data_dir), "--json", "--set", "source.limit=20"]
        if form == bare:  # a bare .npz has no run: the settings come from --set
            argv += ["--set", "learner.layer_sizes=[2312, 16, 10]"]
        assert main(argv) == 0, form
        accuracies.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["accuracy"])
    assert len(set(accuracies)) == 1
    for form in forms:
        assert main(["deploy", "export", str(form)]) == 0, form
    capsys.readouterr()
    sample = next((data_dir / "nmnist-1k" / "Test" / "3").glob("*.bin"))
    for form in (run, bare):
        assert main(["predict", str(sample), "--checkpoint", str(form)]) == 0
    # Resuming from the bare .npz: its learner, a new run folder (no position: from the start).
    assert _replay(data_dir, "--resume", str(bare), "--run-dir", str(tmp_path / "from-npz")) == 0
    assert _learner(tmp_path / "from-npz").samples_seen == 48


def test_tilde_is_expanded_in_every_path_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = build_run_config(
        None,
        [
            "sinks.run_dir=~/runs/a",
            "sinks.predictions_file=~/p.jsonl",
            "pipeline.keys=~/.biograd/keys",
            "pipeline.ipc_dir=~/ipc",
            "source.path=~/data/x.aedat4",
        ],
    )
    assert cfg.sinks.run_dir == str(tmp_path / "runs/a")
    assert cfg.sinks.predictions_file == str(tmp_path / "p.jsonl")
    assert cfg.pipeline.keys == str(tmp_path / ".biograd/keys")
    assert cfg.pipeline.ipc_dir == str(tmp_path / "ipc")
    assert cfg.source.path == str(tmp_path / "data/x.aedat4")


def test_an_unnamed_run_gets_its_own_folder_and_runs_latest_points_at_it(data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert _replay(data_dir) == 0
    assert _replay(data_dir) == 0  # a second run does not collide with the first
    runs = sorted(p for p in (tmp_path / "runs").iterdir() if p.name != "latest")
    assert len(runs) == 2 and all((r / "config.toml").exists() for r in runs)
    assert (tmp_path / "runs" / "latest").resolve() == runs[-1].resolve()
    with pytest.raises(AssertionError):
        assert runs[0] == runs[1]
