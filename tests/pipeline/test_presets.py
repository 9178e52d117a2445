"""Learning presets: streaming by default, --set/--config change exactly the keys they name."""

from __future__ import annotations

from dataclasses import fields

import pytest

from biograd.learner.config import MNIST_STREAMING, NMNIST_STREAMING, LearnerConfig
from biograd.pipeline.run_config import PRESETS, build_run_config, describe_learning


def _diff(a: LearnerConfig, b: LearnerConfig) -> set[str]:
    return {f.name for f in fields(LearnerConfig) if getattr(a, f.name) != getattr(b, f.name)}


def test_default_presets_learn_in_streaming():
    assert build_run_config().learner == NMNIST_STREAMING
    assert build_run_config(overrides=["preset=mnist"]).learner == MNIST_STREAMING
    for cfg in (NMNIST_STREAMING, MNIST_STREAMING):
        assert cfg.batch_size == 1 and cfg.optimizer != "sgd" and cfg.sleep_every > 0


def test_paper_presets_keep_the_papers_settings():
    for name, sizes in (("nmnist-paper", (2312, 500, 100, 10)), ("mnist-paper", (784, 500, 100, 10))):
        cfg = build_run_config(overrides=[f"preset={name}"])
        lc = cfg.learner
        assert (lc.batch_size, lc.optimizer, lc.lr, lc.sleep, lc.sleep_every) == (128, "sgd", 1e-3, True, 0)
        assert lc.layer_sizes == sizes and cfg.source.kind == name.split("-")[0]


@pytest.mark.parametrize(
    "override",
    [
        "pipeline.transport=tcp",
        "pipeline.transport=ipc",
        "sinks.dashboard=true",
        "source.limit=300",
        "source.epochs=3",
        'sinks.run_dir="runs/elsewhere"',
        'source.path="/somewhere/nmnist"',
        "pipeline.metrics_every=7",
        "source.kind=aedat",  # biograd live: a recording or camera learns with the same preset
        "source.kind=camera",
    ],
)
def test_transport_dashboard_limits_and_paths_never_change_learning(override):
    assert build_run_config(overrides=[override]).learner == NMNIST_STREAMING


def test_set_changes_exactly_the_keys_it_names():
    cfg = build_run_config(overrides=["learner.lr=0.002", "source.limit=300"]).learner
    assert _diff(cfg, NMNIST_STREAMING) == {"lr"} and cfg.lr == 0.002
    cfg = build_run_config(overrides=["preset=mnist", "learner.optimizer=adam"]).learner
    assert _diff(cfg, MNIST_STREAMING) == {"optimizer"}


def test_config_file_then_set_on_top_of_the_preset(tmp_path):
    f = tmp_path / "run.toml"
    f.write_text('[learner]\nlr = 0.01\nsleep_every = 64\n[pipeline]\ntransport = "tcp"\n')
    cfg = build_run_config(f, ["learner.feedback_init=random"])
    assert _diff(cfg.learner, NMNIST_STREAMING) == {"lr", "sleep_every", "feedback_init"}
    assert (cfg.learner.lr, cfg.learner.sleep_every, cfg.learner.feedback_init) == (0.01, 64, "random")


def test_describe_learning_names_the_settings_and_the_changes():
    plain = describe_learning(build_run_config())
    assert "preset 'nmnist'" in plain and "batch_size=1" in plain and "preset unchanged" in plain
    assert f"optimizer={NMNIST_STREAMING.optimizer}" in plain and "config.toml" in plain
    changed = describe_learning(build_run_config(overrides=["learner.lr=0.5", "sinks.dashboard=true"]))
    assert "changed from the preset: lr=0.5" in changed and "dashboard" not in changed


def test_every_preset_is_a_valid_run_config():
    for name in PRESETS:
        assert build_run_config(overrides=[f"preset={name}"]).preset == name
