"""One reading of "a checkpoint" for every command (replay/live --resume, eval, predict, deploy).

Accepted forms: a run folder (its newest checkpoint), its ``checkpoints/`` folder, a
checkpoint folder ``ckpt-<samples>[-final]/``, that folder's ``learner.npz``, or a bare
learner ``.npz`` (``BioGradLearner.save``, ``deploy learn --out``), which carries no source
position. ``~`` is expanded.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from biograd.core.errors import DataNotFoundError


class Loaded(NamedTuple):
    learner: object
    extra_state: dict | None  # the run's state (source position, counters); None for a bare .npz
    path: Path  # the checkpoint folder, or the bare .npz
    samples: int


def _bare_npz(path: Path) -> bool:
    from biograd.sinks.checkpoints import STATE_FILE

    return path.is_file() and path.suffix == ".npz" and not (path.parent / STATE_FILE).exists()


def open_checkpoint(path) -> Loaded:
    """The learner (and run state) of any checkpoint form."""
    from biograd.learner.network import BioGradLearner
    from biograd.sinks.checkpoints import load_checkpoint

    path = Path(path).expanduser()
    if not path.exists():
        raise DataNotFoundError(f"checkpoint {path} does not exist")
    if _bare_npz(path):
        learner = BioGradLearner.load(path)
        return Loaded(learner, None, path, int(learner.samples_seen))
    ckpt = load_checkpoint(path, BioGradLearner.load)
    return Loaded(ckpt.learner, ckpt.extra_state, ckpt.path, ckpt.samples)


def checkpoint_npz(path) -> Path:
    """The learner ``.npz`` of any checkpoint form (what the deploy stage reads)."""
    from biograd.sinks.checkpoints import LEARNER_FILE, resolve_checkpoint

    path = Path(path).expanduser()
    if not path.exists():
        raise DataNotFoundError(f"checkpoint {path} does not exist")
    if _bare_npz(path):
        return path
    return resolve_checkpoint(path) / LEARNER_FILE
