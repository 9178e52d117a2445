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
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from biograd.core.config import require
from biograd.core.errors import DataFormatError, DataNotFoundError

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
        for leftover in self.root.glob(".tmp-ckpt-*"):
            # Temporary dirs of a crashed earlier save; ours have been renamed by now.
            shutil.rmtree(leftover, ignore_errors=True)


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


def load_checkpoint(path, loader: Callable) -> Checkpoint:
    """Load a checkpoint (see :func:`resolve_checkpoint` for what ``path`` may be).

    ``loader(npz_path)`` builds the learner (``BioGradLearner.load``; sinks do not import the learner).
    """
    ckpt = resolve_checkpoint(path)
    state = read_state(ckpt)
    learner = loader(ckpt / LEARNER_FILE)
    if int(learner.samples_seen) != state["samples"]:
        raise DataFormatError(
            ckpt, f"{LEARNER_FILE} has seen {learner.samples_seen} samples but {STATE_FILE} says {state['samples']}"
        )
    return Checkpoint(ckpt, state["samples"], learner, state["extra"], float(state.get("time", 0.0)))
