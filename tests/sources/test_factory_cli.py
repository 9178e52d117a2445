import re

import pytest

from biograd.core.config import ConfigError
from biograd.core.errors import DataNotFoundError
from biograd.core.events import NMNIST_GEOMETRY
from biograd.pipeline.cli import main
from biograd.pipeline.run_config import build_run_config
from biograd.sources import make_windower, open_source
from biograd.sources.config import SourceConfig
from biograd.sources.mnist import MNISTDataset
from biograd.sources.nmnist import BUNDLED_ROOT, NMNISTDataset


def test_open_source_datasets(data_dir, tmp_path):
    ds = open_source(SourceConfig(kind="nmnist", limit=10, epochs=2), data_dir)
    assert isinstance(ds, NMNISTDataset) and ds.root == data_dir / "nmnist-1k"
    assert len(ds) == 10 and len(list(ds)) == 20
    one = open_source(SourceConfig(kind="nmnist", limit=10, epochs=2), data_dir, epoch=1, skip=4)
    assert [s.sample_id for s in one] == [s.sample_id for s in ds][14:]
    assert open_source(SourceConfig(kind="nmnist"), tmp_path).root == BUNDLED_ROOT
    mnist = open_source(SourceConfig(kind="mnist", split="val", limit=3), data_dir)
    assert isinstance(mnist, MNISTDataset) and len(list(mnist)) == 3
    with pytest.raises(DataNotFoundError, match="MNIST not found"):
        open_source(SourceConfig(kind="mnist"), tmp_path)


def test_open_source_recording_with_preprocessing(data_dir):
    cfg = SourceConfig(
        kind="aedat",
        path="aedat4/davis346.aedat4",
        roi=(43, 0, 260, 260),
        resize=(34, 34),
        polarity="merge",
        window_events=2000,
    )
    stream = open_source(cfg, data_dir)
    assert stream.geometry == NMNIST_GEOMETRY
    windower = make_windower(cfg, stream)
    samples = [s for p in stream for s in windower.push(p)]
    assert samples and all(s.events.size == 2000 and s.geometry == NMNIST_GEOMETRY for s in samples)
    assert all((s.events["p"] == 1).all() and s.events["x"].max() < 34 for s in samples)
    assert stream.stats.skipped == {"frame": 3, "imus": 13, "triggers": 11}
    with pytest.raises(DataNotFoundError, match="no such event file"):
        open_source(SourceConfig(kind="aedat", path="missing.aedat4"), data_dir)


def test_open_source_live_errors(data_dir):
    from biograd.sources.live import list_cameras

    if not list_cameras():
        from biograd.core.errors import HardwareUnavailableError

        with pytest.raises(HardwareUnavailableError, match="no DVS camera found"):
            open_source(SourceConfig(kind="camera"), data_dir)
    with pytest.raises(ConfigError, match="source.address"):
        SourceConfig(kind="dvstream")


def test_config_keys_from_toml_overrides():
    cfg = build_run_config(
        None,
        [
            "source.kind=aedat",
            "source.roi=[0, 0, 34, 34]",
            "source.polarity=on",
            "source.split=val",
            "source.noise_filter=knoise",
        ],
    )
    assert cfg.source.roi == (0, 0, 34, 34) and cfg.source.polarity == "on"
    with pytest.raises(ConfigError, match="source.resize"):
        build_run_config(None, ["source.resize=[34]"])
    with pytest.raises(ConfigError, match="source.polarity"):
        build_run_config(None, ["source.polarity=up"])


def test_data_info_cli(data_dir, capsys, tmp_path):
    assert main(["data", "info", str(data_dir / "aedat4" / "davis346.aedat4")]) == 0
    out = capsys.readouterr().out
    assert "AEDAT 4.0" in out and "346x260" in out and "117,667" in out and "0.6150" in out
    assert main(["data", "info", str(data_dir / "nmnist-1k")]) == 0
    out = capsys.readouterr().out
    assert "train_samples" in out and "1,000" in out and "97/116/99/93/105/92/94/117/87/100" in out
    assert main(["data", "info", str(data_dir / "mnist")]) == 0
    out = capsys.readouterr().out
    assert "val_samples" in out and "10,000" in out and "980/1135/1032/1010/982/892/958/1028/974/1009" in out
    cut = tmp_path / "cut.aedat4"
    cut.write_bytes((data_dir / "aedat4" / "davis346.aedat4").read_bytes()[:500_000])
    assert main(["data", "info", str(cut)]) == 0  # a damaged recording is described, its damage counted
    out = capsys.readouterr().out
    assert re.search(r"damage\s+2 problems, \d+ bytes and 0 events skipped \(first: truncated", out), out
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\0" * 7)
    assert main(["data", "info", str(bad)]) == 2
    assert "bad.bin at byte offset 5: size 7 bytes is not a multiple of 5" in capsys.readouterr().err
