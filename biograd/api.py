"""The scripting API: what the CLI does, as a few functions for people who write Python.

    import biograd

    cfg = biograd.settings("source.limit=200")            # the preset, then overrides (as --set)
    learner = biograd.make_learner(cfg)
    for sample in biograd.open_dataset(cfg, split="train"):
        learner.train_sample(biograd.encode(sample, cfg), sample.label)
    hits = [learner.predict(biograd.encode(s, cfg))[0] == s.label
            for s in biograd.open_dataset(cfg, split="test")]

Each function is a thin shell over the module that owns the job, named in its docstring;
nothing here holds state. ``biograd.replay`` runs the same pipeline as ``biograd replay``
(source -> ZeroMQ -> learner -> sinks) and returns its summary.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from biograd.core.data import data_root
from biograd.core.errors import ConfigError
from biograd.core.events import Geometry
from biograd.learner.encoding import SpikeRaster, encode_events
from biograd.learner.network import BioGradLearner
from biograd.pipeline.run_config import RunConfig, build_run_config
from biograd.sources.base import Sample

PathLike = str | os.PathLike


def settings(*overrides: str, config_file: PathLike | None = None) -> RunConfig:
    """The run settings: the dataset preset, then ``config_file`` (TOML), then ``section.key=value``
    overrides exactly as ``--set`` takes them (:func:`biograd.pipeline.run_config.build_run_config`)."""
    return build_run_config(config_file, list(overrides))


def _config(cfg: RunConfig | Iterable[str] | None) -> RunConfig:
    if cfg is None:
        return settings()
    if isinstance(cfg, RunConfig):
        return cfg
    if isinstance(cfg, str):
        raise ConfigError(f"give settings as a RunConfig or a list of 'section.key=value' strings, not {cfg!r}")
    return settings(*cfg)


def open_dataset(
    cfg: RunConfig | Iterable[str] | None = None, split: str = "train", data: PathLike | None = None
) -> Iterable[Sample]:
    """The samples of a dataset split (``Sample(sample_id, label, events, geometry)``) in the run's
    seeded order, one pass (:func:`biograd.sources.open_source`). ``data`` defaults to $BIOGRAD_DATA."""
    from biograd.sources import open_source

    run = _config(cfg)
    source = replace(run.source, split=split, epochs=1)
    dataset = open_source(source, data_root(data), epoch=0)
    if not hasattr(dataset, "__len__"):
        raise ConfigError(f"source.kind = {run.source.kind!r} is a live stream, not a dataset: use open_events")
    return dataset


def open_events(cfg: RunConfig | Iterable[str], data: PathLike | None = None) -> Iterator[np.ndarray]:
    """Event packets (arrays of :data:`biograd.core.events.EVENT_DTYPE`) from a recording, camera
    or network stream, after the source's filters (``source.kind``/``source.path`` choose it)."""
    from biograd.sources import open_source

    stream = open_source(_config(cfg).source, data_root(data))
    if hasattr(stream, "__len__"):
        for sample in stream:
            yield sample.events
        return
    try:
        yield from stream
    finally:
        stream.close()


def encode(sample: Sample | np.ndarray, cfg: RunConfig | None = None, geometry: Geometry | None = None) -> SpikeRaster:
    """A sample's events as the learner's input raster (:func:`biograd.learner.encoding.encode_events`):
    the run's time steps and bin width, ON/OFF channels when the input layer has room for both."""
    run = _config(cfg)
    events = sample.events if isinstance(sample, Sample) else np.asarray(sample)
    geometry = sample.geometry if isinstance(sample, Sample) else geometry
    if geometry is None:
        raise ConfigError("encode: give the sensor geometry for a bare event array")
    n_inputs = run.learner.layer_sizes[0]
    channels = 2 if n_inputs == 2 * geometry.width * geometry.height else 1
    bin_us = run.pipeline.bin_us or (1000 if run.preset == "mnist" else 5000)
    return encode_events(events, geometry, run.learner.timesteps, bin_us, channels)


def make_learner(cfg: RunConfig | Iterable[str] | None = None) -> BioGradLearner:
    """A new learner with the run's learner settings (:class:`biograd.learner.network.BioGradLearner`):
    ``train_sample(raster, label)``, ``predict(raster)``, ``sleep()``, ``save(path)``."""
    return BioGradLearner(_config(cfg).learner)


def load_learner(path: PathLike) -> BioGradLearner:
    """A trained learner from a run folder (its newest checkpoint), a checkpoint folder or a ``.npz``."""
    from biograd.sinks.checkpoints import load_checkpoint

    path = Path(path).expanduser()
    if path.is_file() and path.suffix == ".npz":
        return BioGradLearner.load(path)
    return load_checkpoint(path, BioGradLearner.load).learner


def replay(
    cfg: RunConfig | Iterable[str] | None = None,
    data: PathLike | None = None,
    resume: PathLike | None = None,
    epochs: int | None = None,
) -> dict:
    """``biograd replay`` from Python: dataset -> ZeroMQ -> learner -> sinks, train then test split per
    epoch (:func:`biograd.pipeline.runner.replay`); returns the run summary (the learner under
    ``"learner"``)."""
    from biograd.pipeline.runner import replay as run_replay

    return run_replay(_config(cfg), data_root(data), str(resume) if resume else None, epochs=epochs)
