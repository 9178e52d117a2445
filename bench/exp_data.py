"""Data access for the experiments: N-MNIST and MNIST as spike rasters.

Files are read by ``sources/`` (the project's readers) and binned by
``learner.encoding`` (the project's one encoder), so the BioGrad learner and the
BPTT baseline see exactly the rasters the pipeline feeds the learner. (Before
``sources/`` landed, the first runs used private readers here; they were checked
byte-identical on every nmnist-1k file and all four MNIST arrays, then removed.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from biograd.learner.encoding import encode_nmnist
from biograd.sources.mnist import find_idx, read_idx
from biograd.sources.nmnist import list_split, read_nmnist

_SPLITS = {"Train": "train", "Test": "test", "train": "train", "test": "test"}


def load_nmnist_rasters(root: Path, split: str, limit: int | None = None, seed: int | None = None):
    """Rasters and labels of an N-MNIST split in file order (digit, id); optionally a
    seeded random subset of ``limit`` samples."""
    files = list_split(Path(root), _SPLITS.get(split, split))
    if seed is not None:
        order = np.random.default_rng(seed).permutation(len(files))
        files = [files[i] for i in order]
    if limit is not None:
        files = files[:limit]
    rasters = [encode_nmnist(read_nmnist(f), source=str(f)) for f, _ in files]
    labels = np.array([lab for _, lab in files], dtype=np.int64)
    return rasters, labels


def load_mnist(root: Path):
    """(train_images, train_labels, test_images, test_labels) as uint8 arrays."""
    root = Path(root)
    names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    return tuple(np.asarray(read_idx(find_idx(root, n))) for n in names)
