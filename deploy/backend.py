"""Choosing where a Lava network runs: CPU simulation (floating / fixed point) or a Loihi 2 chip."""

from __future__ import annotations

import importlib.util
import multiprocessing
import sys

from biograd.core.errors import ConfigError, HardwareUnavailableError

BACKENDS = ("floating_pt", "fixed_pt", "loihi2-hw")

# lava-nc alone ships run_configs.Loihi2HwCfg, but its hardware ProcessModel classes
# (CLoihiProcessModel, NcProcessModel) and lava.utils.loihi2_profiler come only with
# Intel's lava-loihi extension; without them Loihi2HwCfg dies with a NameError.
_HW_MODULES = ("lava.magma.core.model.nc.model", "lava.magma.core.model.c.model", "lava.utils.loihi2_profiler")

HW_HELP = (
    "Loihi 2 hardware needs Intel's lava-loihi extension (not on PyPI): join the Intel "
    "Neuromorphic Research Community (INRC, intel.com/neuromorphic), install lava-loihi "
    "matching lava-nc 0.10.0 into this environment, and run on a host with a Loihi 2 "
    "system (Kapoho Point / Oheo Gulch, or the INRC cloud via SLURM). Use --backend "
    "fixed_pt to simulate the same integer network on this CPU."
)


def missing_hw_modules() -> list[str]:
    """The lava-loihi modules that cannot be imported here (empty when the chip path is usable)."""
    missing = []
    for name in _HW_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(name)
    return missing


def require_hardware() -> None:
    """Raise :class:`HardwareUnavailableError` naming what is missing unless lava-loihi is importable."""
    missing = missing_hw_modules()
    if missing:
        raise HardwareUnavailableError(
            f"backend loihi2-hw: lava-loihi is not installed (cannot import {', '.join(missing)}). " + HW_HELP
        )


_LAVA_MP = "lava.magma.runtime.message_infrastructure.multiprocessing"


def _import_lava_multiprocessing() -> None:
    """Import Lava's message infrastructure, which calls ``multiprocessing.set_start_method('fork')``
    when imported and so raises "context has already been set" once anything has read the start
    method. Numba does on its first parallel kernel (the sleep phase, ``train_batch``), so a
    script that trains and then deploys in one process would fail there. The context is reset
    first when it is unset or already 'fork' (Lava needs 'fork'); another method the user chose is
    left for Lava to refuse."""
    if _LAVA_MP in sys.modules:
        return
    if multiprocessing.get_start_method(allow_none=True) in (None, "fork"):
        multiprocessing.set_start_method(None, force=True)  # type: ignore[arg-type]
    importlib.import_module(_LAVA_MP)


def run_config(backend: str, exception_proc_model_map: dict | None = None):
    """The Lava RunCfg for ``backend``; checked before Lava is asked, so no Lava NameError escapes."""
    if backend not in BACKENDS:
        raise ConfigError(f"deploy.backend = {backend!r}: must be one of {', '.join(BACKENDS)}")
    _import_lava_multiprocessing()
    if backend == "loihi2-hw":
        require_hardware()
        from lava.magma.core.run_configs import Loihi2HwCfg

        return Loihi2HwCfg(exception_proc_model_map=exception_proc_model_map or {})
    from lava.magma.core.run_configs import Loihi2SimCfg

    return Loihi2SimCfg(select_tag=backend, exception_proc_model_map=exception_proc_model_map or {})
