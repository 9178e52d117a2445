"""Checkpoints: periodic and final snapshots of a learner, atomic, the last K kept.

A checkpoint is a directory ``<run_dir>/checkpoints/ckpt-<samples>[-final]/``
holding ``learner.npz`` (written by the learner's own ``save``: no pickle) and
``state.json`` (samples, time and the caller's ``extra_state``, e.g. where the
source is in its seeded order, so a resumed run continues with the same next
sample). It is built in a hidden temporary directory and renamed into place,
so a crash mid-save leaves the previous checkpoints untouched and never a
half-written one under a ``ckpt-`` name.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biograd.core.config import require
from biograd.core.errors import BioGradError, DataFormatError, DataNotFoundError

log = logging.getLogger(__name__)

LEARNER_FILE = "learner.npz"
STATE_FILE = "state.json"
STATE_FORMAT = 1
_NAME = re.compile(r"^ckpt-(\d{9,})(-final)?$")


@dataclass(frozen=True)
class CheckpointInfo:
    path: Path
    samples: int
    final: bool


@dataclass
class Checkpoint:
    """A loaded checkpoint: the learner, the caller's extra state and where it came from."""

    path: Path
    samples: int
    learner: object
    extra_state: dict
    time: float


def checkpoint_dir(run_dir) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir_or_checkpoints) -> list[CheckpointInfo]:
    """Complete checkpoints under a run dir (or its ``checkpoints/``), oldest first."""
    root = Path(run_dir_or_checkpoints)
    if (root / "checkpoints").is_dir():
        root = root / "checkpoints"
    found = []
    if root.is_dir():
        for child in root.iterdir():
            match = _NAME.match(child.name)
            if match and child.is_dir() and (child / STATE_FILE).exists() and (child / LEARNER_FILE).exists():
                found.append(CheckpointInfo(child, int(match.group(1)), bool(match.group(2))))
    return sorted(found, key=lambda c: (c.samples, c.final))


def latest_checkpoint(run_dir) -> CheckpointInfo | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


class CheckpointManager:
    """Decides when to checkpoint and writes checkpoints.

    ``every_samples`` > 0 saves each time the learner's ``samples_seen`` crosses
    a multiple of it; ``every_minutes`` > 0 saves when that long has passed since
    the last save (or since the manager started). ``keep`` newest are kept.
    ``start_samples`` is where counting starts (the checkpoint's sample count
    when resuming), so a resumed run saves at the same multiples as an
    uninterrupted one. ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        run_dir,
        every_samples: int = 0,
        every_minutes: float = 0.0,
        keep: int = 3,
        start_samples: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ):
        require(every_samples >= 0, "sinks.checkpoint_every", every_samples, "must be >= 0")
        require(every_minutes >= 0, "sinks.checkpoint_minutes", every_minutes, "must be >= 0")
        require(keep >= 1, "sinks.keep_checkpoints", keep, "must be >= 1")
        self.run_dir = Path(run_dir)
        self.root = checkpoint_dir(run_dir)
        self.every_samples = every_samples
        self.every_minutes = every_minutes
        self.keep = keep
        self._clock = clock
        self._last_samples = start_samples
        self._last_saved = start_samples if start_samples else None
        self._last_time = clock()
        self.saved: list[Path] = []

    @classmethod
    def from_config(cls, config, start_samples: int = 0) -> CheckpointManager:
        """Build from a :class:`sinks.config.SinkConfig`."""
        return cls(
            config.run_dir,
            config.checkpoint_every,
            config.checkpoint_minutes,
            config.keep_checkpoints,
            start_samples=start_samples,
        )

    def due(self, samples: int) -> bool:
        if self.every_samples and samples // self.every_samples > self._last_samples // self.every_samples:
            return True
        # By time only when something was learned since the last save (no identical copies).
        return (
            bool(self.every_minutes)
            and samples != self._last_saved
            and self._clock() - self._last_time >= self.every_minutes * 60.0
        )

    def maybe_save(self, learner, extra_state: dict | None = None) -> Path | None:
        """Save if a checkpoint is due; return its path, else None."""
        samples = int(learner.samples_seen)
        if not self.due(samples):
            self._last_samples = max(self._last_samples, samples)
            return None
        return self._save(learner, extra_state, final=False)

    def save_now(self, learner, extra_state: dict | None = None) -> Path:
        """Save at once, whatever the schedule (a ``checkpoint`` control); a regular checkpoint."""
        return self._save(learner, extra_state, final=False)

    def save_final(self, learner, extra_state: dict | None = None) -> Path:
        """Save unconditionally (end of run, shutdown); named ``ckpt-<samples>-final``."""
        return self._save(learner, extra_state, final=True)

    def _save(self, learner, extra_state, final: bool) -> Path:
        samples = int(learner.samples_seen)
        name = f"ckpt-{samples:09d}" + ("-final" if final else "")
        target = self.root / name
        self.root.mkdir(parents=True, exist_ok=True)
        state = {
            "format": STATE_FORMAT,
            "samples": samples,
            "time": time.time(),
            "final": final,
            "extra": extra_state or {},
        }
        try:
            state_text = json.dumps(state, indent=1, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise DataFormatError(target / STATE_FILE, f"extra_state is not JSON-serialisable: {exc}") from None
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=self.root))
        try:
            learner.save(tmp / LEARNER_FILE)
            with open(tmp / STATE_FILE, "w", encoding="utf-8") as f:
                f.write(state_text)
                f.flush()
                os.fsync(f.fileno())
            if target.exists():
                # Same sample count saved before (e.g. a periodic save then the final flush):
                # the newer one wins; only this rename pair is not atomic.
                old = target.with_name(f".old-{name}-{os.getpid()}")
                os.rename(target, old)
                os.rename(tmp, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(tmp, target)
            _fsync_dir(self.root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._last_samples = samples
        self._last_saved = samples
        self._last_time = self._clock()
        self.saved.append(target)
        self._prune()
        log.info("checkpoint %s (%d samples)", target, samples)
        return target

    def _prune(self) -> None:
        found = list_checkpoints(self.root)
        for old in found[: -self.keep]:
            shutil.rmtree(old.path, ignore_errors=True)
        clean_leftovers(self.root)


def clean_leftovers(root) -> list[Path]:
    """Remove what a crash left in ``root``: temporary and replaced-checkpoint dirs
    (``.tmp-ckpt-*``, ``.old-ckpt-*``) and half-pruned ``ckpt-*`` dirs missing a file.

    Only called by the writer of ``root`` (after its own save), so nothing in progress is
    touched: its own temporary dir has been renamed by then, and a ``ckpt-`` name only ever
    appears complete (rename), so a ``ckpt-`` dir lacking a file is one a prune left half-deleted.
    """
    removed = []
    root = Path(root)
    if not root.is_dir():
        return removed
    for child in root.iterdir():
        half_pruned = (
            _NAME.match(child.name)
            and child.is_dir()
            and not ((child / STATE_FILE).exists() and (child / LEARNER_FILE).exists())
        )
        if child.name.startswith((".tmp-ckpt-", ".old-ckpt-")) or half_pruned:
            shutil.rmtree(child, ignore_errors=True)
            removed.append(child)
    return removed


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def resolve_checkpoint(path) -> Path:
    """A checkpoint directory from a checkpoint dir, its ``learner.npz``, a run dir or ``checkpoints/``."""
    path = Path(path)
    if not path.exists():
        raise DataNotFoundError(f"checkpoint {path} does not exist")
    if path.is_file() and path.name == LEARNER_FILE:
        path = path.parent
    if (path / STATE_FILE).exists() and (path / LEARNER_FILE).exists():
        return path
    latest = latest_checkpoint(path)
    if latest is None:
        raise DataNotFoundError(
            f"{path} is neither a checkpoint (with {LEARNER_FILE} and {STATE_FILE}) "
            f"nor a run directory holding checkpoints"
        )
    return latest.path


def read_state(path) -> dict:
    """The ``state.json`` of a checkpoint, checked."""
    ckpt = resolve_checkpoint(path)
    state_file = ckpt / STATE_FILE
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataFormatError(state_file, f"not valid JSON ({exc})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise DataFormatError(state_file, f"not a checkpoint state of format {STATE_FORMAT}")
    for key, kind in (("samples", int), ("extra", dict)):
        if not isinstance(state.get(key), kind):
            raise DataFormatError(state_file, f"'{key}' missing or not {kind.__name__}")
    return state


def check_learner_file(npz: Path) -> None:
    """Refuse, before anything is allocated, a learner file whose stored config asks for
    layers its weight arrays do not hold (a forged config could make the loader allocate
    gigabytes). Reads only the zip directory, the config and the array headers."""
    try:
        with zipfile.ZipFile(npz) as z:
            names = set(z.namelist())
            if "config_json.npy" not in names:
                return  # the loader names what is missing
            with z.open("config_json.npy") as f:
                config = json.loads(str(np.lib.format.read_array(f, allow_pickle=False)))
            sizes = config.get("layer_sizes") if isinstance(config, dict) else None
            if not (isinstance(sizes, list) and len(sizes) >= 2 and all(isinstance(n, int) and n > 0 for n in sizes)):
                raise DataFormatError(npz, f"stored layer_sizes {sizes!r} are not positive integers")
            for layer in range(len(sizes) - 1):
                member = f"W{layer}.npy"
                if member not in names:
                    raise DataFormatError(npz, f"lacks array W{layer}")
                with z.open(member) as f:
                    major, _minor = np.lib.format.read_magic(f)
                    read_header = (
                        np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
                    )
                    shape, _, _ = read_header(f)  # the header only, not the data
                if math.prod(shape) != sizes[layer] * sizes[layer + 1]:
                    raise DataFormatError(
                        npz,
                        f"stored config asks for layers {sizes} but W{layer} holds {shape}: "
                        f"refusing to allocate a network its arrays do not describe",
                    )
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise DataFormatError(npz, f"not a readable learner checkpoint (.npz): {exc}") from None


def check_learner_state(ckpt: Path, learner) -> None:
    """Every float array finite and every counter >= 0 (``learner.state_arrays()``)."""
    arrays = learner.state_arrays() if hasattr(learner, "state_arrays") else {}
    for key, value in arrays.items():
        arr = np.asarray(value)
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise DataFormatError(ckpt / LEARNER_FILE, f"array {key} holds NaN or infinite values")
        if key == "counters" and arr.dtype.kind in "iu" and (arr < 0).any():
            raise DataFormatError(ckpt / LEARNER_FILE, f"negative counters {arr.tolist()}")


def _load_one(ckpt: Path, loader: Callable) -> Checkpoint:
    state = read_state(ckpt)
    check_learner_file(ckpt / LEARNER_FILE)
    learner = loader(ckpt / LEARNER_FILE)
    check_learner_state(ckpt, learner)
    if int(learner.samples_seen) != state["samples"]:
        raise DataFormatError(
            ckpt, f"{LEARNER_FILE} has seen {learner.samples_seen} samples but {STATE_FILE} says {state['samples']}"
        )
    return Checkpoint(ckpt, state["samples"], learner, state["extra"], float(state.get("time", 0.0)))


def load_checkpoint(path, loader: Callable) -> Checkpoint:
    """Load a checkpoint (see :func:`resolve_checkpoint` for what ``path`` may be).

    ``loader(npz_path)`` builds the learner (``BioGradLearner.load``; sinks do not import the
    learner). Given one checkpoint, a damaged one is an error naming the file and the problem;
    given a run directory, a damaged newest checkpoint is skipped with a warning and the
    newest good one is loaded.
    """
    path = Path(path)
    direct = path.is_file() or ((path / STATE_FILE).exists() and (path / LEARNER_FILE).exists())
    if direct:
        return _load_one(resolve_checkpoint(path), loader)
    candidates = list_checkpoints(path)
    if not candidates:
        resolve_checkpoint(path)  # raises the "no checkpoint here" error
    errors = []
    for info in reversed(candidates):
        try:
            loaded = _load_one(info.path, loader)
        except BioGradError as exc:
            errors.append(str(exc))
            log.warning("checkpoint %s is damaged, trying an older one: %s", info.path, exc)
            continue
        if errors:
            log.warning("resuming from %s, the newest good checkpoint (%d newer skipped)", info.path, len(errors))
        return loaded
    raise DataFormatError(path, "no loadable checkpoint: " + "; ".join(errors))
