"""Samples for deployment runs, through the project's event sources and the learner's encoders."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from biograd.core.errors import ConfigError


def load_rasters(
    dataset: str, split: str, root: str | Path, limit: int = 0, seed: int = 0, timesteps: int | None = None
):
    """(rasters, labels) of ``dataset`` (``nmnist`` | ``mnist``) ``split`` under data root ``root``.

    N-MNIST: ``sources.nmnist.NMNISTDataset`` events → ``encode_nmnist`` (60 × 5 ms, 2312 inputs).
    MNIST: ``sources.mnist.MNISTDataset`` ON events (1 ms per step) → ``encode_events`` (784 inputs).
    ``limit`` keeps a seeded subset (0 = all); samples come in file/index order.
    """
    from biograd.learner.encoding import encode_events, encode_nmnist
    from biograd.sources.mnist import MNISTDataset, locate_mnist
    from biograd.sources.nmnist import NMNISTDataset, locate_nmnist

    if dataset == "nmnist":
        ds = NMNISTDataset(locate_nmnist(None, root), split, seed=seed, shuffle=False, limit=limit)
        encode = lambda s: encode_nmnist(s.events, s.sample_id)  # noqa: E731
    elif dataset == "mnist":
        steps = timesteps or 20
        ds = MNISTDataset(locate_mnist(None, root), split, seed=seed, shuffle=False, limit=limit, timesteps=steps)
        encode = lambda s: encode_events(s.events, s.geometry, steps, 1000, polarity_channels=1)  # noqa: E731
    else:
        raise ConfigError(f"dataset = {dataset!r}: must be nmnist or mnist")
    rasters, labels = [], []
    for i in range(len(ds)):
        sample = ds.sample(i)
        rasters.append(encode(sample))
        labels.append(int(sample.label))
    return rasters, np.array(labels, dtype=np.int64)
