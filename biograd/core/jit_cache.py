"""Where Numba keeps compiled kernels: one folder per version of the kernel sources.

Numba's on-disk cache checks only the source file of the function it compiled. A kernel that
calls (or inlines) a kernel of another module keeps the old callee after that module changes,
silently (it happened here: ``learner/parallel.py`` ran a stale ``kernels.py`` at a quarter
of the speed). So the cache goes to ``biograd/__pycache__/numba/<hash>`` (beside the sources,
where Numba keeps it by default; ``<user cache>/biograd/numba/<hash>`` when that is read-only),
the hash covering every project source file that uses Numba: any change to one of them starts
a fresh cache. Set ``NUMBA_CACHE_DIR`` yourself to choose another place (it is then left alone).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

_KEEP = 3  # cache folders of earlier source versions kept (switching branches back and forth)


def cache_dir(roots: list[Path], base: Path) -> Path:
    """``base/<16 hex digits>`` for the source files under ``roots`` that use Numba."""
    digest = hashlib.sha1()
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            text = path.read_bytes()
            if b"numba" in text:
                digest.update(path.name.encode())
                digest.update(text)
    return base / digest.hexdigest()[:16]


def writable_base(package: Path) -> Path:
    """``package/__pycache__/numba`` if it can be written, else the user's cache folder."""
    base = package / "__pycache__" / "numba"
    try:
        base.mkdir(parents=True, exist_ok=True)
        if os.access(base, os.W_OK):
            return base
    except OSError:
        pass
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "biograd" / "numba"


def _prune(base: Path, current: Path) -> None:
    try:
        others = [p for p in base.iterdir() if p.is_dir() and p != current]
    except OSError:
        return
    others.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    for old in others[_KEEP:]:
        shutil.rmtree(old, ignore_errors=True)


def configure() -> None:
    """Point Numba's cache at the folder of the current kernel sources (unless the user chose one)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    package = Path(__file__).resolve().parents[1]  # biograd/
    roots = sorted({package} | _subpackage_roots())
    target = cache_dir(roots, writable_base(package))
    os.environ["NUMBA_CACHE_DIR"] = str(target)
    config = sys.modules.get("numba.core.config")
    if config is not None:  # Numba imported before biograd: set its live setting too
        config.CACHE_DIR = str(target)  # type: ignore[attr-defined]
    if not target.exists():
        _prune(target.parent, target)


def _subpackage_roots() -> set[Path]:
    """The folders of biograd's subpackages (mapped from the repository root by package-dir)."""
    import importlib.util

    roots: set[Path] = set()
    for name in ("learner", "deploy", "sources"):  # the stages with kernels
        spec = importlib.util.find_spec(f"biograd.{name}")
        if spec is not None and spec.submodule_search_locations:
            roots.update(Path(p).resolve() for p in spec.submodule_search_locations)
    return roots
