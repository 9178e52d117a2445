"""The hardware path: a clear HardwareUnavailableError, never Lava's NameError."""

import subprocess
import sys

import pytest
from deploy_helpers import random_rasters

from biograd.core.errors import ConfigError, HardwareUnavailableError
from biograd.deploy.backend import missing_hw_modules, run_config
from biograd.deploy.inference import run_inference
from biograd.pipeline.cli import main

needs_no_chip = pytest.mark.skipif(not missing_hw_modules(), reason="lava-loihi is installed here")


@needs_no_chip
def test_loihi2_hw_without_lava_loihi_names_what_is_missing():
    with pytest.raises(HardwareUnavailableError, match="lava-loihi is not installed") as info:
        run_config("loihi2-hw")
    assert "INRC" in str(info.value) and "fixed_pt" in str(info.value)


@needs_no_chip
def test_inference_on_hardware_fails_before_lava_is_asked(params):
    with pytest.raises(HardwareUnavailableError):
        run_inference(params, random_rasters(1, params.timesteps, 40), "loihi2-hw")


@needs_no_chip
def test_cli_prints_one_line_and_exits_2(learner, tmp_path, capsys):
    ckpt = learner.save(tmp_path / "net.npz")
    assert main(["deploy", "run", str(ckpt), "--backend", "loihi2-hw"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("biograd: error: backend loihi2-hw: lava-loihi is not installed")
    assert "NameError" not in err
    assert main(["deploy", "learn", "--engine", "lava", "--backend", "loihi2-hw"]) == 2


def test_sim_configs_and_unknown_backend():
    assert run_config("fixed_pt").select_tag == "fixed_pt"
    assert run_config("floating_pt").select_tag == "floating_pt"
    with pytest.raises(ConfigError, match="deploy.backend = 'gpu'"):
        run_config("gpu")


_TRAIN_THEN = """
import multiprocessing
from biograd.learner.config import LearnerConfig
from biograd.learner.network import BioGradLearner

BioGradLearner(LearnerConfig(layer_sizes=(8, 6, 4), timesteps=5, error_start=1)).sleep()  # a parallel kernel
assert multiprocessing.get_start_method(allow_none=True) is not None  # Numba read (and so fixed) it
"""


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_lava_runs_after_a_parallel_kernel_in_the_same_process():
    """Train (Numba's parallel sleep fixes the multiprocessing start method), then deploy."""
    bare = _python(_TRAIN_THEN + "import lava.magma.runtime.message_infrastructure.multiprocessing\n")
    assert bare.returncode != 0 and "context has already been set" in bare.stderr  # the scenario is real
    fixed = _python(
        _TRAIN_THEN
        + "from biograd.deploy.backend import run_config\n"
        + "run_config('fixed_pt')\n"
        + "assert multiprocessing.get_start_method() == 'fork'\n"
    )
    assert fixed.returncode == 0, fixed.stderr[-2000:]
