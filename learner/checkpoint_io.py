"""Learner checkpoint files: named arrays in an ``.npz``, written atomically, never unpickled.

Layout (format ``biograd-learner-v1``): ``format``, ``config_json``, ``rng_json`` (PCG64 state),
``counters``, and per layer ``W{l}``, ``b{l}``, ``gW{l}``, ``gb{l}``, ``B{l}`` plus the optimizer's
arrays (``opt_*``). :meth:`BioGradLearner.state_arrays` builds the dict; this module only moves
it to and from disk and checks it.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from biograd.core.config import from_dict
from biograd.core.errors import ConfigError, DataFormatError, DataNotFoundError
from biograd.learner.config import LearnerConfig

CHECKPOINT_FORMAT = "biograd-learner-v1"


def write_arrays(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` to ``path`` (.npz) through a temp file in the same folder and os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def read_checkpoint(path: str | os.PathLike) -> tuple[LearnerConfig, dict[str, np.ndarray]]:
    """The stored config and every array of a learner checkpoint.

    Never unpickles. A missing file raises DataNotFoundError; an unreadable,
    foreign or config-less file a DataFormatError naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"checkpoint {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise DataFormatError(path, f"not a readable learner checkpoint (.npz): {exc}") from None
    if "format" not in data or str(data["format"]) != CHECKPOINT_FORMAT:
        raise DataFormatError(path, f"not a {CHECKPOINT_FORMAT} checkpoint (format={data.get('format', 'missing')!s})")
    try:
        stored = from_dict(LearnerConfig, json.loads(str(data["config_json"])), "learner.")
    except (ConfigError, json.JSONDecodeError, KeyError) as exc:
        raise DataFormatError(path, f"stored learner config is invalid: {exc}") from None
    return stored, data


def copy_checked(path: Path, key: str, data: dict[str, np.ndarray], target: np.ndarray) -> None:
    """target[...] = data[key], with a ConfigError naming the file if the shapes differ."""
    src = data[key]
    if src.shape != target.shape:
        raise ConfigError(
            f"checkpoint {path}: array {key} has shape {src.shape}, the configured network needs {target.shape}"
        )
    target[...] = src
