"""The Numba cache folder follows the kernel sources (a stale cross-module kernel cannot be loaded)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from biograd.core import jit_cache


def _tree(root, kernels: str, other: str):
    (root / "pkg").mkdir(parents=True, exist_ok=True)
    (root / "pkg" / "kernels.py").write_text(kernels)
    (root / "pkg" / "cli.py").write_text(other)
    return [root / "pkg"]


def test_folder_changes_with_a_kernel_source_and_only_then(tmp_path):
    roots = _tree(tmp_path, "from numba import njit\nX = 1\n", "print('a')\n")
    first = jit_cache.cache_dir(roots, tmp_path / "cache")
    _tree(tmp_path, "from numba import njit\nX = 1\n", "print('b')\n")  # no Numba in it
    assert jit_cache.cache_dir(roots, tmp_path / "cache") == first
    _tree(tmp_path, "from numba import njit\nX = 2\n", "print('b')\n")
    assert jit_cache.cache_dir(roots, tmp_path / "cache") != first


def test_old_folders_are_pruned_to_the_last_few(tmp_path):
    base = tmp_path / "cache"
    for i in range(6):
        (base / f"old{i}").mkdir(parents=True)
        os.utime(base / f"old{i}", (1000 + i, 1000 + i))
    jit_cache._prune(base, base / "new")
    assert sorted(p.name for p in base.iterdir()) == ["old3", "old4", "old5"]


def _numba_cache_dir(env):
    code = "import biograd.learner.kernels, numba; print(numba.config.CACHE_DIR)"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_a_package_folder_that_cannot_hold_the_cache_falls_back_to_the_user_cache(tmp_path, monkeypatch):
    package = tmp_path / "site" / "biograd"
    package.mkdir(parents=True)
    assert jit_cache.writable_base(package) == package / "__pycache__" / "numba"
    other = tmp_path / "other" / "biograd"
    other.mkdir(parents=True)
    (other / "__pycache__").write_text("not a folder")  # mkdir fails, even for root
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert jit_cache.writable_base(other) == tmp_path / "xdg" / "biograd" / "numba"


def test_kernels_cache_under_the_source_hash_unless_the_user_chose(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    got = _numba_cache_dir(env)
    package = Path(jit_cache.__file__).resolve().parents[1]
    assert Path(got).parent == package / "__pycache__" / "numba", got
    assert len(Path(got).name) == 16
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "mine")
    assert _numba_cache_dir(env) == str(tmp_path / "mine")
