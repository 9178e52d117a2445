import logging

import numpy as np
import pytest

from biograd.core.errors import ConfigError, DataFormatError, DataNotFoundError
from biograd.core.events import EVENT_DTYPE, NMNIST_GEOMETRY, validate_events
from biograd.sources.base import epoch_order
from biograd.sources.nmnist import BUNDLED_ROOT, NMNISTDataset, decode_nmnist, locate_nmnist, read_nmnist


def reference_decode(raw: bytes):
    """Event-by-event decode straight from the format description (Orchard et al. 2015)."""
    out = []
    for i in range(0, len(raw), 5):
        word = int.from_bytes(raw[i : i + 5], "big")
        out.append(((word & 0x7FFFFF), word >> 32, (word >> 24) & 0xFF, (word >> 23) & 1))
    return np.array(out, dtype=np.int64)


def test_vectorised_decoder_matches_reference(nmnist_dir):
    for path in [nmnist_dir / "Train" / "3" / "00008.bin", nmnist_dir / "Test" / "0" / "00004.bin"]:
        raw = path.read_bytes()
        ev = decode_nmnist(raw, path)
        assert ev.dtype == EVENT_DTYPE and ev.size == len(raw) // 5
        ref = reference_decode(raw)
        np.testing.assert_array_equal(np.stack([ev["t"], ev["x"], ev["y"], ev["p"]], 1), ref)
        validate_events(ev, NMNIST_GEOMETRY, str(path))
        # about 300 ms, three saccades, both polarities (data README)
        assert 250_000 < ev["t"][-1] < 400_000
        assert 0.3 < ev["p"].mean() < 0.7


def test_dataset_counts_labels_and_ids(nmnist_dir):
    train = NMNISTDataset(nmnist_dir, "train", shuffle=False)
    test = NMNISTDataset(nmnist_dir, "test")
    assert len(train) == 1000 and len(test) == 100
    counts = np.bincount([label for _, label in train.items], minlength=10)
    assert counts.tolist() == [97, 116, 99, 93, 105, 92, 94, 117, 87, 100]
    first = next(iter(train))
    assert first.label == 0 and first.sample_id.startswith("Train/0/")
    assert first.geometry == NMNIST_GEOMETRY
    np.testing.assert_array_equal(first.events, read_nmnist(nmnist_dir / (first.sample_id + ".bin")))


def test_seeded_epoch_aware_order_and_resume(nmnist_dir):
    ds = NMNISTDataset(nmnist_dir, "train", seed=7, limit=40, epochs=3)
    ids = [s.sample_id for s in ds]
    assert len(ids) == 120
    again = [s.sample_id for s in NMNISTDataset(nmnist_dir, "train", seed=7, limit=40, epochs=3)]
    assert ids == again  # reproducible
    assert ids[:40] != ids[40:80] and sorted(ids[:40]) == sorted(ids[40:80])  # same subset, new order
    other = [s.sample_id for s in NMNISTDataset(nmnist_dir, "train", seed=8, limit=40, epochs=1)]
    assert other != ids[:40]
    # resume after 53 samples (inside epoch 1) continues the same order
    resumed = [s.sample_id for s in NMNISTDataset(nmnist_dir, "train", seed=7, limit=40, epochs=3, skip=53)]
    assert resumed == ids[53:]
    # one explicit epoch from a position, as the pipeline runner asks for it
    one = [s.sample_id for s in NMNISTDataset(nmnist_dir, "train", seed=7, limit=40, epoch=2, skip=5)]
    assert one == ids[85:]
    order = epoch_order(40, 7, 1)
    assert sorted(order.tolist()) == list(range(40))


def test_lookup_order_and_bundled_notice(tmp_path, data_dir, caplog, monkeypatch):
    assert locate_nmnist(data_dir / "nmnist-1k", None) == data_dir / "nmnist-1k"
    assert locate_nmnist("", data_dir) == data_dir / "nmnist-1k"
    assert locate_nmnist(None, data_dir / "nmnist-1k") == data_dir / "nmnist-1k"  # --data at the dataset itself
    (tmp_path / "nmnist").mkdir()
    monkeypatch.setattr("biograd.sources.nmnist._bundled_notice_given", True)
    assert locate_nmnist(None, tmp_path) == BUNDLED_ROOT  # an empty folder (a failed download) is no dataset
    (tmp_path / "nmnist" / "Train").mkdir()
    assert locate_nmnist(None, tmp_path) == tmp_path / "nmnist"
    with pytest.raises(DataNotFoundError, match="no such N-MNIST folder"):
        locate_nmnist(tmp_path / "missing", data_dir)
    monkeypatch.setattr("biograd.sources.nmnist._bundled_notice_given", False)
    with caplog.at_level(logging.WARNING, logger="biograd.sources.nmnist"):
        root = locate_nmnist(None, tmp_path / "empty")
        assert locate_nmnist(None, tmp_path / "empty") == root
    assert root == BUNDLED_ROOT
    assert caplog.text.count("using the bundled sample") == 1  # once per process, not per open
    bundled = NMNISTDataset(root, "train")
    assert len(bundled) == 200 and bundled.classes == list(range(10))
    assert len(NMNISTDataset(root, "test")) == 100  # all of nmnist-1k's test files
    assert all(1000 < s.events.size < 8000 for s in bundled)  # README: 1 069-7 152 events
    with pytest.raises(ConfigError, match="no val split"):
        NMNISTDataset(root, "val")


def test_bundled_files_are_unchanged_copies(nmnist_dir):
    files = sorted(BUNDLED_ROOT.glob("*/*/*.bin"))
    assert len(files) == 300
    for f in files:
        assert f.read_bytes() == (nmnist_dir / f.relative_to(BUNDLED_ROOT)).read_bytes()


def test_truncated_file_names_file_and_offset(nmnist_dir, tmp_path):
    raw = (nmnist_dir / "Train" / "1" / "00004.bin").read_bytes()
    bad = tmp_path / "00004.bin"
    bad.write_bytes(raw[:-2])
    with pytest.raises(
        DataFormatError,
        match=r"00004\.bin at byte offset \d+: size \d+ bytes is not a "
        r"multiple of 5",
    ) as info:
        read_nmnist(bad)
    assert info.value.offset == (len(raw) - 2) // 5 * 5


def test_coordinate_outside_sensor_and_backwards_time(nmnist_dir, tmp_path):
    raw = bytearray((nmnist_dir / "Train" / "1" / "00004.bin").read_bytes())
    outside = bytearray(raw)
    outside[5 * 10] = 40  # x of event 10
    path = tmp_path / "outside.bin"
    path.write_bytes(outside)
    with pytest.raises(DataFormatError, match=r"outside\.bin at byte offset 50: event 10 has x=40 outside"):
        read_nmnist(path)
    back = bytearray(raw)
    back[5 * 20 + 2 : 5 * 20 + 5] = bytes([back[5 * 20 + 2] & 0x80, 0, 0])  # event 20 at t = 0
    path = tmp_path / "back.bin"
    path.write_bytes(back)
    with pytest.raises(DataFormatError, match=r"back\.bin at byte offset 100: timestamps go backwards at event 20"):
        read_nmnist(path)
