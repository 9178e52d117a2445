import pytest

from biograd.core.config import apply_overrides, parse_override
from biograd.core.errors import ConfigError
from biograd.pipeline.run_config import build_run_config


def test_defaults_match_algorithm_doc():
    nmnist = build_run_config(overrides=["preset=nmnist-paper"]).learner
    assert nmnist.layer_sizes == (2312, 500, 100, 10)
    assert (nmnist.timesteps, nmnist.error_start) == (60, 19)
    assert (nmnist.vdecay, nmnist.vth, nmnist.grad_win, nmnist.grad_amp) == ((0.3,), (0.3,), (0.3,), (1.0,))
    assert (nmnist.lr, nmnist.batch_size, nmnist.feedback_init) == (1e-3, 128, "mirror")
    assert (nmnist.optimizer, nmnist.sleep_every) == ("sgd", 0)  # the paper: plain SGD, sleep per batch
    assert (nmnist.sleep_noise_samples, nmnist.sleep_steps) == (128, 50)
    assert nmnist.sleep_lr == pytest.approx(1e-4 / 3)
    mnist = build_run_config(overrides=["preset=mnist-paper"]).learner
    assert mnist.layer_sizes == (784, 500, 100, 10)
    assert (mnist.timesteps, mnist.error_start) == (20, 5)


def test_toml_then_overrides(tmp_path):
    f = tmp_path / "run.toml"
    f.write_text('preset = "mnist"\n[learner]\nlr = 0.01\nbatch_size = 1\n[source]\nlimit = 5\n')
    cfg = build_run_config(f, ["learner.lr=0.5", "learner.feedback_init=random"])
    assert cfg.learner.lr == 0.5 and cfg.learner.batch_size == 1
    assert cfg.learner.feedback_init == "random"
    assert cfg.learner.timesteps == 20  # preset value kept where the file is silent
    assert cfg.source.limit == 5 and cfg.source.kind == "mnist"


def test_bad_key_is_named(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("[learner]\nlearning_rate = 0.1\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'learner.learning_rate' \(value 0.1\)"):
        build_run_config(f)
    with pytest.raises(ConfigError, match="unknown config key 'sourcee'"):
        build_run_config(overrides=["sourcee.limit=1"])


def test_bad_values_are_named():
    with pytest.raises(ConfigError, match=r"learner.batch_size = 'x': expected an integer"):
        build_run_config(overrides=['learner.batch_size="x"'])
    with pytest.raises(ConfigError, match=r"learner.engine = 'gpu': must be one of 'event', 'synapse'"):
        build_run_config(overrides=["learner.engine=gpu"])
    with pytest.raises(ConfigError, match=r"learner.error_start = 99"):
        build_run_config(overrides=["learner.error_start=99"])
    with pytest.raises(ConfigError, match="preset = 'cifar'"):
        build_run_config(overrides=["preset=cifar"])


def test_bad_toml_names_file(tmp_path):
    f = tmp_path / "broken.toml"
    f.write_text("[learner\n")
    with pytest.raises(ConfigError, match="broken.toml"):
        build_run_config(f)


def test_override_parsing():
    assert parse_override("learner.lr=1e-3") == (["learner", "lr"], 0.001)
    assert parse_override("learner.engine=synapse") == (["learner", "engine"], "synapse")
    assert apply_overrides({}, ["a.b=[1, 2]"]) == {"a": {"b": [1, 2]}}
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_override("learner.lr")
