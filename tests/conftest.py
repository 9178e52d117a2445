"""Shared fixtures: where the real data is (``$BIOGRAD_DATA``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import zmq

# A zmq.Context that a test leaks is otherwise terminated by the garbage collector, at
# whatever line of a later test the collection happens to run; zmq_ctx_term can then block
# for ever (a socket of another thread, libzmq#4660), which hung one CI run inside an
# unrelated test. The suite leaves leaked contexts to process exit instead.
zmq.Context.__del__ = lambda self: None  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real-data root (``../shared/data`` in CI), from $BIOGRAD_DATA.

    Without it, tests on real data skip with that reason locally and fail in CI,
    where skipping them would hide a broken setup.
    """
    root = os.environ.get("BIOGRAD_DATA")
    if not root or not Path(root).is_dir():
        message = f"real data not found: set BIOGRAD_DATA (now {root!r}) to the shared data folder"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return Path(root)


@pytest.fixture(scope="session")
def nmnist_dir(data_dir) -> Path:
    return data_dir / "nmnist-1k"


@pytest.fixture(scope="session")
def mnist_dir(data_dir) -> Path:
    return data_dir / "mnist"


@pytest.fixture(scope="session")
def davis_file(data_dir) -> Path:
    return data_dir / "aedat4" / "davis346.aedat4"
