"""A folder of labelled recordings, any format, as a replay dataset (``source.kind = "file"``, a folder).

Layout, as N-MNIST and Tonic's datasets keep theirs::

    ROOT/Train/<class>/<recording>      (or train/; without split folders ROOT itself is the train split)
    ROOT/Test/<class>/<recording>       (or test/)

A class folder named by an integer gives that label, otherwise classes are
numbered in sorted order. Each recording is one sample: every event of the
file (any format of :mod:`sources.formats`, recognised from its content),
through the same crop / filters / resize / polarity as live streams. A file
that cannot be read raises DataFormatError from ``sample``; the replay stage
(``sources.stage.iter_split``) skips it with a warning and counts it, keeping
the positions of the seeded order: one bad recording does not end a replay.
"""

from __future__ import annotations

import logging
from pathlib import Path

from biograd.core.errors import DataNotFoundError
from biograd.sources.base import Sample, SeededDataset, StreamStats, seeded_subset

log = logging.getLogger(__name__)

SPLIT_NAMES = {"train": ("Train", "train"), "train_full": ("Train", "train"), "test": ("Test", "test")}


def list_recordings(root: Path, split: str) -> tuple[list[tuple[Path, int]], list[str]]:
    """([(file, label)], class names) of ``split`` under ``root``."""
    folder = next((root / n for n in SPLIT_NAMES.get(split, ()) if (root / n).is_dir()), None)
    if folder is None:
        has_splits = any((root / n).is_dir() for names in SPLIT_NAMES.values() for n in names)
        if split in ("train", "train_full") and not has_splits:
            folder = root
        else:
            raise DataNotFoundError(f"{root}: no {'/'.join(SPLIT_NAMES.get(split, (split,)))} folder of recordings")
    classes = sorted((d.name for d in folder.iterdir() if d.is_dir()), key=lambda n: (not n.isdigit(), n.zfill(9)))
    if not classes:
        raise DataNotFoundError(f"{folder}: expected one sub-folder of recordings per class")
    numeric = all(c.isdigit() for c in classes)
    items = []
    for k, name in enumerate(classes):
        label = int(name) if numeric else k
        items += [(f, label) for f in sorted((folder / name).iterdir()) if f.is_file() and not f.name.startswith(".")]
    if not items:
        raise DataNotFoundError(f"{folder}: the class folders hold no files")
    return items, classes


class RecordingFolder(SeededDataset):
    """Labelled recordings of one split; one sample per file, preprocessed like a live stream."""

    def __init__(self, root, split: str, cfg, *, epochs: int = 1, skip: int = 0, epoch: int | None = None):
        from biograd.core.events import Geometry

        self.root, self.cfg = Path(root), cfg
        items, self.class_names = list_recordings(self.root, split)
        keep = seeded_subset(len(items), cfg.limit, cfg.seed)
        self.items = [items[i] for i in keep]
        self.seed, self.shuffle, self.epochs, self.skip, self.epoch = cfg.seed, cfg.shuffle, epochs, skip, epoch
        self.stats = StreamStats()
        self._fixed = Geometry(*cfg.geometry) if cfg.geometry else None
        self._preprocessors: dict = {}
        self.geometry = self._preprocessor(self._open(self.items[0][0])).geometry

    def __len__(self) -> int:
        return len(self.items)

    def _open(self, path: Path):
        from biograd.sources.formats import EventFile

        return EventFile(path, backend=self.cfg.backend, geometry=self._fixed)

    def _preprocessor(self, recording):
        from biograd.sources.preprocess import Preprocessor

        g = recording.geometry
        if g not in self._preprocessors:
            c = self.cfg
            self._preprocessors[g] = Preprocessor(
                g,
                roi=c.roi,
                resize=c.resize,
                resize_mode=c.resize_mode,
                polarity=c.polarity,
                noise_filter=c.noise_filter,
                noise_window_us=c.noise_window_us,
                refractory_us=c.refractory_us,
            )
        return self._preprocessors[g]

    def sample(self, i: int, epoch: int = 0) -> Sample:
        path, label = self.items[i]
        recording = self._open(path)
        events = recording.read_all()
        self.stats.bad_events += recording.stats.bad_events
        self.stats.skipped_bytes += recording.stats.skipped_bytes
        prep = self._preprocessor(recording)
        prep._last = None  # the refractory state belongs to one recording
        return Sample(str(path.relative_to(self.root)), label, prep(events), prep.geometry)
