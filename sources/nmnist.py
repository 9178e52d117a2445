"""N-MNIST in the official layout: ``Train/<digit>/<id>.bin`` and ``Test/<digit>/<id>.bin``.

File format (Orchard et al. 2015): 5 bytes per event, big-endian 40-bit word::

    byte 0      x (0..33)
    byte 1      y (0..33)
    byte 2..4   bit 23 = polarity (1 = ON), bits 22..0 = timestamp in µs

Decoding is vectorised over the whole file (one ``np.frombuffer`` and a few
shifts). The dataset keeps only the file list in memory and reads one file per
sample as it iterates.

Order: epoch ``e`` visits the samples in the permutation drawn from
``np.random.default_rng([seed, e])``, so every epoch differs, the run is
reproducible, and a resumed run that skips the first ``n`` samples continues
exactly where the interrupted one stopped.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from biograd.core.data import ENV_VAR
from biograd.core.errors import ConfigError, DataFormatError, DataNotFoundError
from biograd.core.events import NMNIST_GEOMETRY, empty_events
from biograd.sources.base import Sample, SeededDataset, seeded_subset

log = logging.getLogger(__name__)

BYTES_PER_EVENT = 5
SPLIT_FOLDERS = {"train": "Train", "train_full": "Train", "test": "Test"}
#: Looked for under the data root, in this order; ``NMNIST`` is Tonic's layout
#: (``tonic.datasets.NMNIST(save_to=ROOT)`` unpacks to ``ROOT/NMNIST/Train/<digit>/*.bin``).
DATASET_NAMES = ("nmnist-1k", "nmnist", "NMNIST")
#: Ten Train and three Test samples per digit from nmnist-1k, shipped in the package.
BUNDLED_ROOT = Path(__file__).resolve().parent / "sample_data" / "nmnist"
_bundled_notice_given = False


def decode_nmnist(raw, path: str | os.PathLike = "<bytes>") -> np.ndarray:
    """Decode the bytes of one N-MNIST ``.bin`` file into an EVENT_DTYPE array.

    Raises :class:`DataFormatError` naming ``path`` and the byte offset when the
    size is not a multiple of 5, a coordinate is outside 34x34, or time goes backwards.
    """
    buf = np.frombuffer(raw, dtype=np.uint8)
    if buf.size % BYTES_PER_EVENT:
        whole = buf.size - buf.size % BYTES_PER_EVENT
        raise DataFormatError(
            path,
            f"size {buf.size} bytes is not a multiple of {BYTES_PER_EVENT} "
            f"(truncated file? the last event starts at byte {whole})",
            whole,
        )
    words = buf.reshape(-1, BYTES_PER_EVENT)
    out = empty_events(words.shape[0])
    out["x"] = words[:, 0]
    out["y"] = words[:, 1]
    out["p"] = words[:, 2] >> 7
    out["t"] = ((words[:, 2].astype(np.int64) & 0x7F) << 16) | (words[:, 3].astype(np.int64) << 8) | words[:, 4]
    for field, limit in (("x", NMNIST_GEOMETRY.width), ("y", NMNIST_GEOMETRY.height)):
        bad = np.flatnonzero(out[field] >= limit)
        if bad.size:
            i = int(bad[0])
            raise DataFormatError(
                path,
                f"event {i} has {field}={int(out[field][i])} outside the 34x34 sensor ({bad.size} such events)",
                i * BYTES_PER_EVENT,
            )
    back = np.flatnonzero(np.diff(out["t"]) < 0)
    if back.size:
        i = int(back[0]) + 1
        raise DataFormatError(
            path,
            f"timestamps go backwards at event {i} ({int(out['t'][i - 1])} us -> {int(out['t'][i])} us)",
            i * BYTES_PER_EVENT,
        )
    return out


def read_nmnist(path: str | os.PathLike) -> np.ndarray:
    """Read and decode one N-MNIST ``.bin`` file."""
    with open(path, "rb") as f:
        return decode_nmnist(f.read(), path)


def list_split(root: Path, split: str) -> list[tuple[Path, int]]:
    """Every ``(file, label)`` of a split, sorted by digit then id."""
    if split not in SPLIT_FOLDERS:
        raise ConfigError(
            f"source.split = {split!r}: N-MNIST has splits "
            f"{', '.join(SPLIT_FOLDERS)} (no val split; use MNIST for that)"
        )
    folder = root / SPLIT_FOLDERS[split]
    if not folder.is_dir():
        raise DataNotFoundError(
            f"{folder} does not exist: an N-MNIST folder holds Train/<digit>/*.bin and Test/<digit>/*.bin"
        )
    items: list[tuple[Path, int]] = []
    unreadable: list[Path] = []
    for digit in range(10):
        sub = folder / str(digit)
        if sub.is_dir():
            for f in sorted(sub.glob("*.bin")):
                if f.is_file():  # follows symlinks: a dangling one or a directory named *.bin is not
                    items.append((f, digit))
                else:
                    unreadable.append(f)
    if unreadable:
        log.warning(
            "%s: %d *.bin entries are not readable files (dangling links or directories), skipped: %s",
            folder,
            len(unreadable),
            ", ".join(str(p) for p in unreadable[:3]) + (" ..." if len(unreadable) > 3 else ""),
        )
    if not items:
        raise DataNotFoundError(f"{folder} holds no <digit>/*.bin files")
    return items


def _has_split(folder: Path) -> bool:
    return any((folder / split).is_dir() for split in ("Train", "Test"))


def locate_nmnist(path: str | os.PathLike | None, data_root: str | os.PathLike | None) -> Path:
    """The N-MNIST folder: ``path`` > ``data_root`` itself or its nmnist-1k / nmnist / NMNIST > the bundled sample.

    Using the bundled sample (200 train / 100 test samples) is logged as a warning, never silent.
    """
    if path:
        p = Path(path).expanduser()
        if not p.is_dir():
            raise DataNotFoundError(f"source.path = {str(p)!r}: no such N-MNIST folder")
        if not _has_split(p) and _has_split(p / "NMNIST"):
            return p / "NMNIST"  # Tonic's save_to folder
        return p
    if data_root:
        if _has_split(Path(data_root)):  # --data given the dataset folder itself, not its parent
            return Path(data_root)
        for name in DATASET_NAMES:
            if _has_split(Path(data_root) / name):  # an empty or half-made folder is not a dataset
                return Path(data_root) / name
    global _bundled_notice_given
    # A run opens the source several times (length, each split, each epoch): say it once.
    level = logging.DEBUG if _bundled_notice_given else logging.WARNING
    _bundled_notice_given = True
    log.log(
        level,
        "N-MNIST not found under %s (looked for %s; set --data or $%s): using the bundled "
        "sample (20 train samples per digit, 100 test samples) in %s",
        data_root,
        " or ".join(DATASET_NAMES),
        ENV_VAR,
        BUNDLED_ROOT,
    )
    return BUNDLED_ROOT


class NMNISTDataset(SeededDataset):
    """Iterate ``Sample``s of one N-MNIST split, reading one file per sample.

    ``limit`` keeps a fixed seeded subset of that many samples (the same in
    every epoch); ``skip`` drops the first ``skip`` samples of the whole run
    (across epochs) so a resumed run continues the interrupted order.
    """

    geometry = NMNIST_GEOMETRY

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
    ):
        self.root = Path(root)
        self.split = split
        self.seed, self.shuffle, self.epochs, self.skip, self.epoch = seed, shuffle, epochs, skip, epoch
        items = list_split(self.root, split)
        self.items = [items[i] for i in seeded_subset(len(items), limit, seed)]

    def __len__(self) -> int:
        """Samples per epoch."""
        return len(self.items)

    @property
    def classes(self) -> list[int]:
        return sorted({label for _, label in self.items})

    def sample(self, i: int, epoch: int = 0) -> Sample:
        path, label = self.items[i]
        rel = path.relative_to(self.root).with_suffix("")
        return Sample(rel.as_posix(), label, read_nmnist(path), NMNIST_GEOMETRY)
