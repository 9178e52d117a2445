"""A minimal N-MNIST .bin reader for the learner tests (independent of sources/)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from biograd.core.events import make_events


def read_nmnist_bin(path) -> np.ndarray:
    """Orchard et al. 2015 format: 5 bytes/event, x, y, then 24 bits: polarity bit 23, t bits 22-0."""
    raw = np.fromfile(path, dtype=np.uint8).reshape(-1, 5).astype(np.int64)
    word = (raw[:, 2] << 16) | (raw[:, 3] << 8) | raw[:, 4]
    return make_events(word & 0x7FFFFF, raw[:, 0], raw[:, 1], word >> 23)


def nmnist_files(root: Path, split: str = "Train") -> list[tuple[Path, int]]:
    """(file, label) pairs of a split, sorted by digit then name."""
    return [(p, int(p.parent.name)) for p in sorted((root / split).glob("[0-9]/*.bin"))]
