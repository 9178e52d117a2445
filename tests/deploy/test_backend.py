"""The hardware path: a clear HardwareUnavailableError, never Lava's NameError."""

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
