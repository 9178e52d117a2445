"""Where datasets live: ``--data PATH``, else ``$BIOGRAD_DATA``, else the user cache folder."""

from __future__ import annotations

import os
from pathlib import Path

from biograd.core.errors import DataNotFoundError

ENV_VAR = "BIOGRAD_DATA"


def data_root(option: str | os.PathLike | None = None) -> Path:
    """The dataset root folder, by precedence: explicit option, $BIOGRAD_DATA, ~/.cache/biograd/data."""
    if option:
        return Path(option).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "biograd" / "data"


def find_dataset(root: Path, *names: str) -> Path:
    """The first existing ``root/name``; a clear error listing what was tried otherwise."""
    for name in names:
        if (root / name).exists():
            return root / name
    tried = ", ".join(str(root / n) for n in names)
    raise DataNotFoundError(
        f"dataset not found (tried {tried}). Point --data or ${ENV_VAR} at the folder holding it, "
        f"or fetch it with `biograd data download`."
    )
