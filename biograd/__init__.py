"""BioGrad streaming learner: online learning for event cameras.

The repository keeps one folder per stage at its root (``pipeline/``, ``sources/``,
``learner/``, ``sinks/``, ``deploy/``); they install as subpackages of this one
import name: ``biograd.pipeline``, ``biograd.sources``, ``biograd.learner``,
``biograd.sinks`` and ``biograd.deploy``, above ``biograd.core``.

The scripting API (:mod:`biograd.api`) is available here: ``biograd.settings``,
``biograd.open_dataset``, ``biograd.open_events``, ``biograd.encode``,
``biograd.make_learner``, ``biograd.load_learner``, ``biograd.replay``. It is loaded
on first use, so ``import biograd.core`` stays free of Numba and ZeroMQ start-up.
"""

from __future__ import annotations

from biograd.core import jit_cache as _jit_cache

_jit_cache.configure()  # before any kernel module is imported

__version__ = "0.1.0"

API = ("settings", "open_dataset", "open_events", "encode", "make_learner", "load_learner", "replay")
__all__ = ["__version__", *API]


def __getattr__(name: str):
    if name in API:
        from biograd import api

        return getattr(api, name)
    raise AttributeError(f"module 'biograd' has no attribute {name!r}")
