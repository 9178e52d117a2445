"""Data access for the experiments: N-MNIST and MNIST as spike rasters.

Readers come from ``sources/`` and the binning from ``learner.encoding`` when those
modules exist; the small private readers below are the stop-gap used before they
landed (and are checked against them in ``bench/experiments.py check-data``).
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from pipeline.errors import DataFormatError, DataNotFoundError
from pipeline.events import EVENT_DTYPE


def read_nmnist_bin(path: Path) -> np.ndarray:
    """Decode one N-MNIST .bin file (40-bit big-endian events) into EVENT_DTYPE."""
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % 5:
        raise DataFormatError(path, f"size {raw.size} is not a multiple of 5 bytes",
                              offset=raw.size - raw.size % 5)
    r = raw.reshape(-1, 5).astype(np.uint32)
    ev = np.empty(len(r), dtype=EVENT_DTYPE)
    ev["x"] = r[:, 0]
    ev["y"] = r[:, 1]
    ev["p"] = r[:, 2] >> 7
    ev["t"] = ((r[:, 2] & 0x7F) << 16) | (r[:, 3] << 8) | r[:, 4]
    return ev


def nmnist_files(root: Path, split: str) -> list[tuple[Path, int]]:
    """(file, label) for ``root/split/<digit>/*.bin``, sorted by path."""
    base = Path(root) / split
    if not base.is_dir():
        raise DataNotFoundError(f"N-MNIST split folder {base} does not exist")
    out = []
    for digit in range(10):
        for f in sorted((base / str(digit)).glob("*.bin")):
            out.append((f, digit))
    if not out:
        raise DataNotFoundError(f"no .bin files under {base}/<digit>/")
    return out


def encode_nmnist(events: np.ndarray):
    """Binning of learner.encoding (the project's one encoder)."""
    from learner.encoding import encode_nmnist as enc
    return enc(events)


def load_nmnist_rasters(root: Path, split: str, limit: int | None = None, seed: int | None = None):
    """All rasters and labels of a split; optionally a seeded random subset of ``limit``."""
    files = nmnist_files(root, split)
    if seed is not None:
        order = np.random.default_rng(seed).permutation(len(files))
        files = [files[i] for i in order]
    if limit is not None:
        files = files[:limit]
    rasters = [encode_nmnist(read_nmnist_bin(f)) for f, _ in files]
    labels = np.array([lab for _, lab in files], dtype=np.int64)
    return rasters, labels


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip or not) as a uint8 array."""
    path = Path(path)
    if not path.exists() and path.with_suffix(path.suffix + ".gz").exists():
        path = path.with_suffix(path.suffix + ".gz")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 8:
        raise DataFormatError(path, "not an unsigned-byte IDX file (bad magic)", offset=0)
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataFormatError(path, f"{body.size} data bytes, header says {dims}", offset=4 + 4 * ndim)
    return body.reshape(dims)


def load_mnist(root: Path):
    """(train_images, train_labels, test_images, test_labels) as uint8 arrays."""
    root = Path(root)
    names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    for n in names:
        if not (root / n).exists() and not (root / (n + ".gz")).exists():
            raise DataNotFoundError(f"MNIST file {root / n}[.gz] not found")
    return tuple(read_idx(root / n) for n in names)
