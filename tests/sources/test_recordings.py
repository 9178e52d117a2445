"""A folder of labelled recordings in mixed formats as a replay dataset (source.kind=file, a folder)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from biograd.core.events import NMNIST_GEOMETRY, to_faery
from biograd.sources import open_source
from biograd.sources.config import SourceConfig
from biograd.sources.nmnist import read_nmnist

faery = pytest.importorskip("faery")

SUFFIXES = (".es", ".raw", ".dat", ".aedat4", ".csv")


@pytest.fixture(scope="module")
def mixed_root(tmp_path_factory, nmnist_dir):
    """Real N-MNIST samples re-written by faery, a different format per file: Train/<digit>/, Test/<digit>/."""
    root = tmp_path_factory.mktemp("recordings")
    originals, n = {}, 0
    for split in ("Train", "Test"):
        for digit in (1, 4, 9):
            folder = root / split / str(digit)
            folder.mkdir(parents=True)
            for f in sorted((nmnist_dir / split / str(digit)).glob("*.bin"))[:2]:
                events = read_nmnist(f)
                out = folder / f"{f.stem}{SUFFIXES[n % len(SUFFIXES)]}"
                n += 1
                faery.events_stream_from_array(to_faery(events), (34, 34)).to_file(out)
                originals[str(out.relative_to(root))] = events
    return root, originals


def test_folder_of_recordings_replays_in_every_format(mixed_root):
    root, originals = mixed_root
    for split in ("train", "test"):
        dataset = open_source(SourceConfig(kind="file", path=str(root), split=split, shuffle=False), epoch=0)
        assert len(dataset) == 6 and dataset.geometry == NMNIST_GEOMETRY
        samples = list(dataset)
        assert {s.sample_id.rsplit(".", 1)[1] for s in samples} == {"es", "raw", "dat", "aedat4", "csv"}
        for s in samples:
            want = originals[s.sample_id]
            assert s.label == int(s.sample_id.split("/")[1])
            np.testing.assert_array_equal(s.events[["x", "y", "p"]], want[["x", "y", "p"]])
            # ES keeps time from 0, the others the original microseconds
            np.testing.assert_array_equal(s.events["t"] - s.events["t"][0], want["t"] - want["t"][0])


def test_a_bad_recording_is_skipped_and_counted(mixed_root, tmp_path, caplog):
    import shutil

    from biograd.pipeline.run_config import build_run_config
    from biograd.sources.stage import iter_split

    root, _ = mixed_root
    shutil.copytree(root / "Train", tmp_path / "Train")
    (tmp_path / "Train" / "4" / "broken.raw").write_bytes(b"\x00\x01not an event file")
    cfg = build_run_config(None, ["source.kind=file", f"source.path={tmp_path}", "source.shuffle=false"])
    bad: list = []
    with caplog.at_level(logging.WARNING):
        samples = list(iter_split(cfg, None, "train", 0, bad=bad))
    assert len(samples) == 6 and len(bad) == 1 and "broken.raw" in bad[0]
    assert "broken.raw" in caplog.text
    assert [i for i, _ in samples] == [0, 1, 2, 3, 5, 6]  # broken.raw (after 4/ own files) keeps its place
