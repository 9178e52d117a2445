"""MNIST from the standard IDX files (gzip-compressed or not), rate-coded into spike events.

Each image becomes ON events by :func:`mnist_to_events` (one
Bernoulli draw per step and pixel, 1 ms per step), so MNIST flows through the
same pipeline as event-camera data. The draws of sample ``i`` in epoch ``e``
come from ``np.random.default_rng([seed, e, i])``: a sample's events do not
depend on the order it is visited in, and a resumed run sees the same spikes.

Splits: ``train`` = the first 50 000 training images, ``val`` = the last 10 000,
``train_full`` = all 60 000, ``test`` = the 10 000 test images.

Uncompressed IDX files are memory-mapped (read image by image from disk);
gzip files cannot be read at random offsets, so they are decompressed into
memory once (47 MB for the training images) — unzip them to stream from disk.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from biograd.core.errors import ConfigError, DataFormatError, DataNotFoundError
from biograd.core.events import Geometry, empty_events
from biograd.sources.base import Sample, SeededDataset, seeded_subset

MNIST_GEOMETRY = Geometry(28, 28)
VAL_SIZE = 10_000
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
#: IDX type code → dtype (only unsigned bytes are used by MNIST, the rest for completeness).
IDX_TYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """An IDX array: memory-mapped when uncompressed, in memory when gzip-compressed.

    Header: two zero bytes, a type code, the number of dimensions ``d``, then
    ``d`` big-endian uint32 sizes. Raises DataFormatError naming the file and offset.
    """
    path = Path(path)
    gz = path.suffix == ".gz"
    try:
        if gz:
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            with open(path, "rb") as f:
                raw = f.read(4 + 4 * 255)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataFormatError(path, f"cannot read ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES:
        raise DataFormatError(path, f"not an IDX file (magic bytes {raw[:4].hex()})", 0)
    dtype, ndim = IDX_TYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataFormatError(path, f"IDX header with {ndim} dimensions is truncated", 4)
    shape = tuple(int(v) for v in np.frombuffer(raw, ">u4", ndim, 4))
    need = header + int(np.prod(shape)) * dtype.itemsize
    size = len(raw) if gz else path.stat().st_size
    if size != need:
        raise DataFormatError(
            path,
            f"shape {shape} needs {need} bytes{' uncompressed' if gz else ''}, the file has {size}",
            min(size, need),
        )
    if gz:
        return np.frombuffer(raw, dtype, offset=header).reshape(shape)
    return np.memmap(path, dtype=dtype, mode="r", offset=header, shape=shape)


def find_idx(root: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (root / name).is_file():
            return root / name
    raise DataNotFoundError(f"{root}: neither {stem} nor {stem}.gz found (MNIST IDX files)")


def locate_mnist(path, data_root) -> Path:
    """The MNIST folder: ``path`` > ``data_root``/mnist."""
    if path:
        p = Path(path).expanduser()
        if not p.is_dir():
            raise DataNotFoundError(f"source.path = {str(p)!r}: no such MNIST folder")
        return p
    if data_root and (Path(data_root) / "mnist").is_dir():
        return Path(data_root) / "mnist"
    raise DataNotFoundError(
        f"MNIST not found (looked for {Path(data_root or '.') / 'mnist'}); point --data "
        f"or $BIOGRAD_DATA at the folder holding mnist/ with the four IDX files"
    )


class MNISTDataset(SeededDataset):
    """Iterate rate-coded MNIST ``Sample``s (28x28 ON events, ``timesteps`` ms each)."""

    geometry = MNIST_GEOMETRY

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        *,
        seed: int = 0,
        shuffle: bool = True,
        limit: int = 0,
        epochs: int = 1,
        skip: int = 0,
        epoch: int | None = None,
        timesteps: int = 20,
        step_us: int = 1000,
    ):
        if split not in ("train", "val", "train_full", "test"):
            raise ConfigError(
                f"source.split = {split!r}: MNIST has splits train (first 50 000), "
                f"val (last 10 000 training images), train_full (all 60 000), test"
            )
        self.root, self.split = Path(root), split
        self.seed, self.shuffle, self.epochs, self.skip, self.epoch = seed, shuffle, epochs, skip, epoch
        self.timesteps, self.step_us = timesteps, step_us
        img_path, lab_path = (find_idx(self.root, s) for s in FILES["test" if split == "test" else "train"])
        self.images, self.labels = read_idx(img_path), read_idx(lab_path)
        if self.images.ndim != 3 or self.images.shape[1:] != (28, 28):
            raise DataFormatError(img_path, f"expected N x 28 x 28 images, got shape {self.images.shape}")
        if self.labels.ndim != 1 or self.labels.shape[0] != self.images.shape[0]:
            raise DataFormatError(lab_path, f"{self.labels.shape[0]} labels for {self.images.shape[0]} images")
        n = self.images.shape[0]
        if split == "train":
            self.indices = np.arange(0, n - VAL_SIZE)
        elif split == "val":
            self.indices = np.arange(n - VAL_SIZE, n)
        else:
            self.indices = np.arange(n)
        self.indices = self.indices[seeded_subset(self.indices.size, limit, seed)]
        bad = np.flatnonzero(np.asarray(self.labels[self.indices]) > 9)
        if bad.size:
            raise DataFormatError(
                lab_path,
                f"label {int(self.labels[self.indices[bad[0]]])} at index {int(self.indices[bad[0]])} is not a digit",
                8 + int(self.indices[bad[0]]),
            )

    def __len__(self) -> int:
        return int(self.indices.size)

    @property
    def classes(self) -> list[int]:
        return sorted(int(v) for v in np.unique(np.asarray(self.labels[self.indices])))

    def sample(self, i: int, epoch: int = 0) -> Sample:
        index = int(self.indices[i])
        rng = np.random.default_rng([self.seed, epoch, index])
        events = mnist_to_events(np.asarray(self.images[index]), self.timesteps, rng, self.step_us)
        name = "test" if self.split == "test" else "train"
        return Sample(f"mnist/{name}/{index:05d}", int(self.labels[index]), events, MNIST_GEOMETRY)


def mnist_to_events(image_u8, timesteps: int, rng: np.random.Generator, step_us: int = 1000) -> np.ndarray:
    """MNIST as ON events at ``step_us`` per step: a Bernoulli rate code, spike = [U(0,1) < pixel/255].

    The draws are those of :func:`biograd.learner.encoding.mnist_rate_raster` (one
    ``rng.random((timesteps, pixels))``), so ``encode_events(events, Geometry(28, 28),
    timesteps, bin_us=step_us, polarity_channels=1, round_us=step_us)`` gives the same raster.
    """
    image = np.asarray(image_u8)
    if image.ndim != 2 or image.dtype != np.uint8:
        raise DataFormatError(f"mnist_to_events needs a 2-D uint8 image, got {image.dtype} {image.shape}")
    prob = image.reshape(-1).astype(np.float64) / 255.0
    steps, pixels = np.nonzero(rng.random((timesteps, prob.shape[0])) < prob)
    width = image.shape[1]
    events = empty_events(len(pixels))
    events["t"] = steps.astype(np.int64) * step_us
    events["x"] = pixels % width
    events["y"] = pixels // width
    events["p"] = 1
    return events
