"""A Tonic dataset object (Tonic's own N-MNIST reader on the real files) feeding replay."""

from __future__ import annotations

import numpy as np
import pytest

from biograd.core.errors import ConfigError
from biograd.core.events import Geometry
from biograd.sources import open_source
from biograd.sources.config import SourceConfig
from biograd.sources.nmnist import read_nmnist
from biograd.sources.tonic_source import TonicDataset, parse_transform

tonic = pytest.importorskip("tonic")


@pytest.fixture
def tonic_root(tmp_path, nmnist_dir):
    """Tonic's layout, save_to/NMNIST/{Train,Test}/<digit>/*.bin, over the real nmnist-1k files."""
    (tmp_path / "NMNIST").mkdir()
    for split in ("Train", "Test"):
        (tmp_path / "NMNIST" / split).symlink_to(nmnist_dir / split)
    return tmp_path


# Tonic's NMNIST without its archive check (the archive is not kept here; the files are). The
# class keeps the name NMNIST because Tonic derives the folder (save_to/NMNIST) from it.
LocalNMNIST = type("NMNIST", (tonic.datasets.NMNIST,), {"_check_exists": lambda self: True})


def test_tonic_dataset_object_feeds_samples(tonic_root):
    ds = LocalNMNIST(save_to=str(tonic_root), train=False)
    src = TonicDataset(ds, limit=12, shuffle=False)
    assert src.geometry == Geometry(34, 34) and len(src) == 12
    for sample in src.iter_epoch(0):
        index = int(sample.sample_id.rsplit(":", 1)[1])
        want = read_nmnist(ds.data[index])  # the project's own reader on the same file
        np.testing.assert_array_equal(sample.events, want)
        assert sample.label == ds.targets[index]


def test_tonic_transforms_apply(tonic_root):
    ds = LocalNMNIST(save_to=str(tonic_root), train=False, transform=parse_transform("Downsample(spatial_factor=0.5)"))
    src = TonicDataset(ds, geometry=Geometry(17, 17), limit=5, shuffle=False)
    for sample in src.iter_epoch(0):
        assert sample.events.size and sample.events["x"].max() < 17 and sample.events["y"].max() < 17


def test_source_kind_tonic_from_config(tonic_root, monkeypatch):
    monkeypatch.setattr(tonic.datasets, "NMNIST", LocalNMNIST)
    cfg = SourceConfig(
        kind="tonic",
        tonic_dataset="NMNIST",
        path=str(tonic_root),
        split="train",
        limit=20,
        tonic_transforms=("Denoise(filter_time=10000)",),
    )
    dataset = open_source(cfg, epoch=0)
    samples = list(dataset)
    assert len(samples) == 20 and {s.label for s in samples} <= set(range(10))
    raw = LocalNMNIST(save_to=str(tonic_root), train=True)
    index = int(samples[0].sample_id.rsplit(":", 1)[1])
    assert 0 < samples[0].events.size < raw[index][0].size  # Denoise removed some events


def test_bad_tonic_settings_are_clear():
    with pytest.raises(ConfigError, match="tonic.transforms has no 'Nope'"):
        parse_transform("Nope(x=1)")
    with pytest.raises(ConfigError, match="arguments must be literals"):
        parse_transform("Denoise(filter_time=__import__('os'))")
    with pytest.raises(ConfigError, match="not a dataset of tonic"):
        open_source(SourceConfig(kind="tonic", tonic_dataset="Nothing", path="/tmp"))
