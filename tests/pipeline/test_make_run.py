"""`make run` without any data: the bundled N-MNIST sample, the default preset, visible learning."""

from __future__ import annotations

import numpy as np

from biograd.pipeline.cli import main
from biograd.sources.nmnist import BUNDLED_ROOT


def test_plain_replay_on_the_bundled_sample_learns_visibly(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("BIOGRAD_DATA", raising=False)
    empty = tmp_path / "no-data"
    empty.mkdir()
    run = tmp_path / "run"
    # `make run` is `biograd replay`; only where it writes and the plots (slow to draw) differ here
    code = main(["replay", "--data", str(empty), "--run-dir", str(run), "--set", "sinks.plots=false"])
    out = capsys.readouterr().out
    assert code == 0
    assert "learning: preset 'nmnist'" in out and "batch_size=1" in out and "preset unchanged" in out
    assert "learning curve" in out
    windows = [float(line.split()[2]) for line in out.splitlines() if line.strip().startswith("samples ")]
    assert len(windows) == 10  # 200 training samples in 10 windows of 20
    line = next(line for line in out.splitlines() if "test accuracy after epoch 1" in line)
    accuracy = float(line.split(":")[1].split("%")[0])
    n_test = len(list((BUNDLED_ROOT / "Test").glob("*/*.bin")))
    assert f"on {n_test} samples" in line and n_test == 100
    assert accuracy >= 40.0, out  # chance is 10 %
    assert np.mean(windows[5:]) > np.mean(windows[:3]) + 15, windows  # the curve rises
    assert "batch_size = 1" in (run / "config.toml").read_text()
