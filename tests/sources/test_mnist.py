import gzip

import numpy as np
import pytest

from biograd.core.errors import ConfigError, DataFormatError
from biograd.learner.encoding import encode_events, mnist_rate_raster
from biograd.sources.mnist import MNIST_GEOMETRY, MNISTDataset, read_idx


@pytest.fixture(scope="module")
def train_labels(mnist_dir):
    return read_idx(mnist_dir / "train-labels-idx1-ubyte.gz")


def test_idx_files_read_with_documented_counts(mnist_dir, train_labels):
    assert train_labels.shape == (60_000,)
    assert np.bincount(train_labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    images = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8 and images.max() == 255


def test_splits(mnist_dir, train_labels):
    val = MNISTDataset(mnist_dir, "val", shuffle=False, limit=0)
    assert len(val) == 10_000 and val.indices[0] == 50_000
    assert len(MNISTDataset(mnist_dir, "train")) == 50_000
    assert len(MNISTDataset(mnist_dir, "train_full")) == 60_000
    assert len(MNISTDataset(mnist_dir, "test")) == 10_000
    s = next(iter(val))
    assert s.label == int(train_labels[50_000]) and s.sample_id == "mnist/train/50000"
    with pytest.raises(ConfigError, match="MNIST has splits"):
        MNISTDataset(mnist_dir, "validation")


def test_samples_are_the_learners_rate_code(mnist_dir):
    ds = MNISTDataset(mnist_dir, "test", seed=3, limit=20, epochs=2, timesteps=20)
    samples = list(ds)
    assert len(samples) == 40 and samples[0].geometry == MNIST_GEOMETRY
    s = samples[0]
    index = int(s.sample_id.rsplit("/", 1)[1])
    image = np.asarray(ds.images[index])
    raster = encode_events(s.events, MNIST_GEOMETRY, 20, bin_us=1000, polarity_channels=1)
    expected = mnist_rate_raster(image, 20, np.random.default_rng([3, 0, index]))
    np.testing.assert_array_equal(raster.indptr, expected.indptr)
    np.testing.assert_array_equal(raster.indices, expected.indices)
    assert (s.events["p"] == 1).all() and s.events["t"].max() < 20_000
    # bright pixels spike often, black ones never
    counts = np.bincount(s.events["y"].astype(int) * 28 + s.events["x"], minlength=784)
    assert counts[image.reshape(-1) == 0].sum() == 0
    # same sample in epoch 1 gets fresh draws; same (seed, epoch, index) gives the same events
    again = {x.sample_id: x for x in MNISTDataset(mnist_dir, "test", seed=3, limit=20, epoch=0)}
    np.testing.assert_array_equal(again[s.sample_id].events, s.events)
    later = [x for x in samples[20:] if x.sample_id == s.sample_id][0]
    assert not np.array_equal(later.events, s.events)


def test_uncompressed_idx_is_memory_mapped(mnist_dir, tmp_path):
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        with gzip.open(mnist_dir / (stem + ".gz")) as f:
            (tmp_path / stem).write_bytes(f.read())
    images = read_idx(tmp_path / "t10k-images-idx3-ubyte")
    assert isinstance(images, np.memmap)
    np.testing.assert_array_equal(images[123], read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")[123])
    ds = MNISTDataset(tmp_path, "test", limit=5)
    assert len(list(ds)) == 5


def test_truncated_and_corrupt_idx(mnist_dir, tmp_path):
    with gzip.open(mnist_dir / "t10k-labels-idx1-ubyte.gz") as f:
        raw = f.read()
    (tmp_path / "short-labels-idx1-ubyte").write_bytes(raw[:-7])
    with pytest.raises(
        DataFormatError,
        match=r"short-labels-idx1-ubyte at byte offset 10001: shape \(10000,\) "
        r"needs 10008 bytes, the file has 10001",
    ):
        read_idx(tmp_path / "short-labels-idx1-ubyte")
    (tmp_path / "bad-idx1-ubyte").write_bytes(b"\x01\x02" + raw[2:])
    with pytest.raises(DataFormatError, match="bad-idx1-ubyte at byte offset 0: not an IDX file"):
        read_idx(tmp_path / "bad-idx1-ubyte")
    (tmp_path / "broken-idx1-ubyte.gz").write_bytes((mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes()[:500])
    with pytest.raises(DataFormatError, match="broken-idx1-ubyte.gz: cannot read"):
        read_idx(tmp_path / "broken-idx1-ubyte.gz")
