"""`replay` trains from a folder of labelled recordings in mixed formats, through the whole pipeline."""

from __future__ import annotations

import json

import pytest

from biograd.core.events import to_faery
from biograd.pipeline.run_config import build_run_config
from biograd.pipeline.runner import replay
from biograd.sources.nmnist import read_nmnist

faery = pytest.importorskip("faery")


def test_replay_a_folder_of_recordings_in_every_format(tmp_path, nmnist_dir):
    suffixes = (".es", ".raw", ".dat", ".aedat4", ".csv")
    n = {"Train": 0, "Test": 0}
    for split in n:
        for digit in range(10):
            (tmp_path / "data" / split / str(digit)).mkdir(parents=True)
            for f in sorted((nmnist_dir / split / str(digit)).glob("*.bin"))[: 2 if split == "Train" else 1]:
                out = tmp_path / "data" / split / str(digit) / f"{f.stem}{suffixes[n[split] % 5]}"
                faery.events_stream_from_array(to_faery(read_nmnist(f)), (34, 34)).to_file(out)
                n[split] += 1
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
    assert summary["samples"] == n["Train"] == 20
    assert summary["processed"] == n["Train"] + n["Test"] == 30  # the Test/ folder is evaluated too
    assert (summary["dropped"], summary["invalid"]) == (0, 0)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("phase") == "test" for r in rows)
