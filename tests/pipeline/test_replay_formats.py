"""`replay` trains from a folder of labelled recordings in mixed formats, through the whole pipeline."""

from __future__ import annotations

import pytest

from biograd.core.events import to_faery
from biograd.pipeline.run_config import build_run_config
from biograd.pipeline.runner import replay
from biograd.sources.nmnist import read_nmnist

faery = pytest.importorskip("faery")


def test_replay_a_folder_of_recordings_in_every_format(tmp_path, nmnist_dir):
    suffixes = (".es", ".raw", ".dat", ".aedat4", ".csv")
    n = 0
    for digit in range(10):
        (tmp_path / "data" / "Train" / str(digit)).mkdir(parents=True)
        for f in sorted((nmnist_dir / "Train" / str(digit)).glob("*.bin"))[:2]:
            out = tmp_path / "data" / "Train" / str(digit) / f"{f.stem}{suffixes[n % 5]}"
            faery.events_stream_from_array(to_faery(read_nmnist(f)), (34, 34)).to_file(out)
            n += 1
    cfg = build_run_config(
        None,
        [
            "source.kind=file",
            f"source.path={tmp_path / 'data'}",
            "learner.layer_sizes=[2312, 16, 10]",
            "learner.batch_size=4",
            "pipeline.progress=false",
            "sinks.plots=false",
            f"sinks.run_dir={tmp_path / 'run'}",
        ],
    )
    summary = replay(cfg, None)
    assert summary["reason"] == "end"
    assert summary["samples"] == n == 20
    assert (summary["dropped"], summary["invalid"]) == (0, 0)
