"""Plots from a run directory, and `biograd report RUN_DIR`."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pytest
from sink_helpers import random_samples, small_learner, synthetic_records

from biograd.core.errors import DataFormatError
from biograd.learner.network import BioGradLearner
from biograd.pipeline.cli import main
from biograd.sinks.checkpoints import CheckpointManager
from biograd.sinks.metrics import MetricsLog
from biograd.sinks.plots import PLOT_NAMES, input_layout, make_plots


def _run_dir(tmp_path, fmt="jsonl", checkpoint=True, n_hidden=1):
    run = tmp_path / "run"
    log = MetricsLog(run / f"metrics.{fmt}", fmt, n_hidden=n_hidden)
    for record in synthetic_records(40, n_hidden=n_hidden):
        log.handle(record)
    log.close()
    if checkpoint:
        learner = small_learner(sizes=(2312, 16, 10), batch_size=2)
        for raster, label in random_samples(4, 2312, 12):
            learner.train_sample(raster, label)
        CheckpointManager(run, keep=1).save_final(learner)
    return run


def _check_png(path, min_h=250, min_w=350):
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[0] >= min_h and image.shape[1] >= min_w, image.shape
    # Not a blank canvas: many distinct colours were drawn.
    assert len(np.unique(image[..., :3].reshape(-1, 3), axis=0)) > 20


def test_every_plot_is_drawn_from_a_complete_run_dir(tmp_path):
    # CSV logs read back like JSON lines (test_metrics), so one format is enough here.
    run = _run_dir(tmp_path, "jsonl")
    made, skipped = make_plots(run, BioGradLearner.load)
    assert skipped == {}
    assert sorted(made) == sorted(PLOT_NAMES)
    for name, path in made.items():
        assert path == run / "plots" / f"{name}.png"
        _check_png(path)
    assert not list((run / "plots").glob(".*.tmp"))


def test_plots_without_their_data_are_skipped_with_the_reason(tmp_path):
    run = tmp_path / "run"
    log = MetricsLog(run / "metrics.jsonl")
    for record in synthetic_records(10):
        if record["type"] not in ("sleep", "eval"):
            log.handle(record)
    log.close()
    made, skipped = make_plots(run, BioGradLearner.load)
    assert set(made) == {"learning_curves", "event_rate", "confusion"}  # confusion from the run's predictions
    assert "no sleep records" in skipped["feedback_angle"]
    assert "no checkpoint" in skipped["weights"]


def test_weights_layout_follows_the_input_size():
    assert input_layout(2312) == (2, 34, 34)
    assert input_layout(784) == (1, 28, 28)
    assert input_layout(2 * 346 * 260) == (2, 260, 346)
    assert input_layout(2 * 60 * 40, sensor=(60, 40)) == (2, 40, 60)
    with pytest.raises(DataFormatError, match="1000 inputs"):
        input_layout(1000)


def test_report_cli_writes_pngs_and_names_a_missing_run_dir(tmp_path, capsys):
    run = _run_dir(tmp_path, checkpoint=False)
    out = tmp_path / "elsewhere"
    assert main(["report", str(run), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"learning_curves: {out / 'learning_curves.png'}" in printed
    assert "weights: not drawn (no checkpoint" in printed
    _check_png(out / "confusion.png")
    assert main(["report", str(tmp_path / "no-such-run")]) == 2
    assert "run directory" in capsys.readouterr().err


def test_report_and_sink_commands_name_bad_input(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"type": "metrics", "samples": 1}\n{oops\n{"type": "end"}\n')
    assert main(["report", str(run)]) == 2
    assert f"{run / 'metrics.jsonl'}: line 2 is not valid JSON" in capsys.readouterr().err
    assert main(["sink", "metrics", "--connect", "tcp://127.0.0.1:5999", "--out", str(tmp_path / "m.txt")]) == 2
    assert "name it .jsonl or .csv" in capsys.readouterr().err
    assert main(["sink", "metrics", "--connect", "tcp://127.0.0.1:5999", "--out", str(tmp_path / "m.csv")]) == 2
    assert "CSV needs the number of hidden layers" in capsys.readouterr().err
