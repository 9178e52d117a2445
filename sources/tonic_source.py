"""Tonic datasets as a replay source (``source.kind = "tonic"``).

Any Tonic dataset object whose samples are ``(events, target)`` with an event
dtype holding ``x``, ``y``, ``t`` and ``p`` can feed replay through
:class:`TonicDataset`, with the dataset's own transforms applied by Tonic. From
the configuration::

    [source]
    kind = "tonic"
    tonic_dataset = "NMNIST"          # a class in tonic.datasets
    path = "~/data"                   # Tonic's save_to (default: the data root)
    tonic_transforms = ["Denoise(filter_time=10000)"]   # tonic.transforms, literal arguments only

Tonic's layout is ``save_to/<ClassName>/…``; a missing dataset is downloaded by
Tonic itself when the object is made. Events are converted to the project's
record with one copy (:func:`biograd.core.events.from_tonic`; Tonic's int64
fields do not line up with it). Samples keep Tonic's order of time; events a
transform moved outside the sensor or before 0 are dropped and counted in
``stats.bad_events``.
"""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import numpy as np

from biograd.core.errors import ConfigError
from biograd.core.events import Geometry, from_tonic
from biograd.sources.base import Sample, SeededDataset, StreamStats, sanitize_packet, seeded_subset

log = logging.getLogger(__name__)


def parse_transform(text: str):
    """``"Name(key=literal, …)"`` → ``tonic.transforms.Name(key=literal, …)``; nothing is evaluated."""
    import tonic.transforms as transforms

    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise ConfigError(f"source.tonic_transforms: {text!r} is not Name(key=value, ...)") from None
    if isinstance(node, ast.Name):
        node = ast.Call(func=node, args=[], keywords=[])
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.args):
        raise ConfigError(f"source.tonic_transforms: {text!r} is not Name(key=value, ...)")
    cls = getattr(transforms, node.func.id, None)
    if not isinstance(cls, type):
        raise ConfigError(f"source.tonic_transforms: tonic.transforms has no {node.func.id!r}")
    try:
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
    except ValueError:
        raise ConfigError(f"source.tonic_transforms: {text!r}: arguments must be literals") from None
    return cls(**kwargs)


class TonicDataset(SeededDataset):
    """A Tonic dataset object as a seeded, epoch-aware source of :class:`Sample`s."""

    def __init__(
        self,
        dataset,
        *,
        geometry: Geometry | None = None,
        name: str = "",
        seed: int = 0,
        shuffle: bool = True,
        limit: int = 0,
        epochs: int = 1,
        skip: int = 0,
        epoch: int | None = None,
    ):
        names = set(getattr(getattr(dataset, "dtype", None), "names", None) or ())
        if names and not {"x", "y", "t", "p"} <= names:
            raise ConfigError(f"Tonic dataset {dataset!r} has events {sorted(names)}, not x, y, t, p (2-D polarity)")
        if geometry is None:
            size = getattr(dataset, "sensor_size", None)
            if not size:
                raise ConfigError(f"Tonic dataset {dataset!r} has no sensor_size: give source.geometry")
            geometry = Geometry(int(size[0]), int(size[1]))
        self.dataset, self.geometry, self.name = dataset, geometry, name or repr(dataset)
        self.seed, self.shuffle, self.epochs, self.skip, self.epoch = seed, shuffle, epochs, skip, epoch
        self.indices = seeded_subset(len(dataset), limit, seed)
        self.stats = StreamStats()

    def __len__(self) -> int:
        return len(self.indices)

    def sample(self, i: int, epoch: int = 0) -> Sample:
        index = int(self.indices[i])
        raw, target = self.dataset[index]
        events = from_tonic(np.asarray(raw))
        if events.size and not np.all(events["t"][1:] >= events["t"][:-1]):
            events = events[np.argsort(events["t"], kind="stable")]
        events, bad, reason = sanitize_packet(events, self.geometry, None)
        if bad:
            self.stats.bad_events += bad
            log.debug("%s sample %d: dropped %d events (%s)", self.name, index, bad, reason)
        label = int(np.asarray(target).item()) if target is not None else None
        return Sample(f"tonic:{self.name}:{index}", label, events, self.geometry)


def open_tonic(cfg, data_root, *, epoch: int | None, skip: int, epochs: int) -> TonicDataset:
    """The Tonic dataset ``cfg.tonic_dataset`` under ``cfg.path`` (or the data root), as a TonicDataset."""
    import tonic
    import tonic.datasets

    name = cfg.tonic_dataset
    cls = getattr(tonic.datasets, name, None) if name else None
    if not isinstance(cls, type):
        raise ConfigError(f"source.tonic_dataset = {name!r}: not a dataset of tonic {tonic.__version__}")
    save_to = Path(cfg.path).expanduser() if cfg.path else Path(data_root) if data_root else None
    if save_to is None:
        raise ConfigError("source.kind = 'tonic' needs source.path (Tonic's save_to) or a data root")
    transforms = [parse_transform(t) for t in cfg.tonic_transforms]
    kwargs = {"save_to": str(save_to), "train": cfg.split != "test"}
    if transforms:
        kwargs["transform"] = transforms[0] if len(transforms) == 1 else tonic.transforms.Compose(transforms)
    dataset = cls(**kwargs)
    return TonicDataset(
        dataset,
        geometry=Geometry(*cfg.geometry) if cfg.geometry else None,
        name=name,
        seed=cfg.seed,
        shuffle=cfg.shuffle,
        limit=cfg.limit,
        epochs=epochs,
        skip=skip,
        epoch=epoch,
    )
