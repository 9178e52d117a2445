"""The run folder: the settings a run was made with (``config.toml``) and what it holds.

A run writes into ``sinks.run_dir``; left empty (the default) that is a new folder
``runs/<date>-<time>`` and ``runs/latest`` points at it. A folder that holds another run is
refused unless the run resumes it (``--resume``) or ``--force`` clears it first.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

from biograd.core.config import to_dict
from biograd.core.errors import ConfigError, DataNotFoundError

CONFIG_FILE = "config.toml"
#: What a run leaves in its folder; a folder holding any of these holds a run.
RUN_FILES = (CONFIG_FILE, "metrics.jsonl", "metrics.csv", "checkpoints", "plots")
RUNS_ROOT = Path("runs")


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"cannot write {value!r} to TOML")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ConfigError(f"cannot write {type(value).__name__} to TOML")


def config_to_toml(cfg) -> str:
    """The whole RunConfig as TOML (top-level keys, then one table per section)."""
    data = to_dict(cfg)
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for section, values in data.items():
        if isinstance(values, dict):
            lines.append(f"\n[{section}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def resolve_run_dir(cfg):
    """``cfg`` with a concrete ``sinks.run_dir``: ``~`` expanded, or a new ``runs/<time>`` if empty."""
    run_dir = cfg.sinks.run_dir
    if not run_dir:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path, n = RUNS_ROOT / stamp, 1
        while path.exists():
            n += 1
            path = RUNS_ROOT / f"{stamp}-{n}"
        run_dir = str(path)
    return replace(cfg, sinks=replace(cfg.sinks, run_dir=str(Path(run_dir).expanduser())))


def run_contents(run_dir) -> list[str]:
    """The run files in ``run_dir`` (empty: no run there)."""
    path = Path(run_dir)
    return [name for name in RUN_FILES if (path / name).exists()] if path.is_dir() else []


def prepare_run_dir(cfg, resume: bool, force: bool = False) -> Path:
    """Create the run folder and write ``config.toml``; refuse one holding another run.

    ``resume``: the run goes on in its own folder. ``force``: the run files of the earlier run
    (config, metrics, checkpoints, plots) are deleted first.
    """
    run_dir = Path(cfg.sinks.run_dir).expanduser()
    found = run_contents(run_dir)
    if found and not resume:
        if not force:
            raise ConfigError(
                f"{run_dir} holds another run ({', '.join(found)}): give --resume {run_dir} to go on with it, "
                f"--force to delete it and start over, or --run-dir NEW for a new folder"
            )
        for name in found:
            target = run_dir / name
            shutil.rmtree(target) if target.is_dir() else target.unlink()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG_FILE).write_text(config_to_toml(cfg))
    if run_dir.parent == RUNS_ROOT and run_dir.name != "latest":
        _point_latest(run_dir)
    return run_dir


def _point_latest(run_dir: Path) -> None:
    """``runs/latest`` -> the newest run (a symlink; left alone if a real folder has that name)."""
    latest = run_dir.parent / "latest"
    if latest.exists() and not latest.is_symlink():
        return
    tmp = run_dir.parent / f".latest-{os.getpid()}"
    try:
        if tmp.is_symlink():
            tmp.unlink()
        tmp.symlink_to(run_dir.name)
        os.replace(tmp, latest)
    except OSError:
        pass


def run_dir_of(checkpoint) -> Path | None:
    """The run folder a checkpoint form belongs to: a run folder itself, the folder above a
    ``checkpoints/ckpt-*`` folder or its ``learner.npz``; None for a bare ``.npz``."""
    path = Path(checkpoint).expanduser()
    if not path.exists():
        raise DataNotFoundError(f"checkpoint {path} does not exist")
    if path.is_file():  # learner.npz of a checkpoint folder, or a bare .npz
        path = path.parent
        if not path.name.startswith("ckpt-"):
            return None
    if path.name.startswith("ckpt-"):
        path = path.parent
    if path.name == "checkpoints":
        path = path.parent
    return path if (path / CONFIG_FILE).is_file() else None


def saved_config(checkpoint) -> Path | None:
    """The ``config.toml`` of the run a checkpoint belongs to, if it has one."""
    run_dir = run_dir_of(checkpoint)
    return run_dir / CONFIG_FILE if run_dir is not None else None
