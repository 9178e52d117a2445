"""The whole run's configuration: one section per stage, with dataset presets."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from deploy.config import DeployConfig
from learner.config import MNIST_LEARNER, NMNIST_LEARNER, LearnerConfig
from pipeline.config import apply_overrides, from_dict, load_toml
from pipeline.errors import ConfigError
from sinks.config import SinkConfig
from sources.config import SourceConfig


@dataclass(frozen=True)
class PipelineConfig:
    """How stages talk: transport addresses and flow control (see docs/protocol.md)."""

    transport: str = "inproc"       # inproc | ipc | tcp
    bind_host: str = "127.0.0.1"


@dataclass(frozen=True)
class RunConfig:
    preset: str = "nmnist"
    source: SourceConfig = field(default_factory=SourceConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    sinks: SinkConfig = field(default_factory=SinkConfig)
    deploy: DeployConfig = field(default_factory=DeployConfig)


PRESETS = {
    "nmnist": {"source": SourceConfig(kind="nmnist"), "learner": NMNIST_LEARNER},
    "mnist": {"source": SourceConfig(kind="mnist"), "learner": MNIST_LEARNER},
}


def build_run_config(config_file: str | Path | None = None, overrides: list[str] = ()) -> RunConfig:
    """Preset defaults, then the TOML file, then ``section.key=value`` overrides.

    The preset is chosen by the top-level ``preset`` key (file or override);
    sections given in the file replace only the keys they name.
    """
    data = load_toml(config_file) if config_file else {}
    data = apply_overrides(data, list(overrides))
    preset = data.get("preset", "nmnist")
    if preset not in PRESETS:
        raise ConfigError(f"preset = {preset!r}: must be one of {', '.join(map(repr, PRESETS))}")
    base = from_dict(RunConfig, {"preset": preset})
    base = replace(base, **PRESETS[preset])
    merged = {}
    from pipeline.config import to_dict
    defaults = to_dict(base)
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(defaults.get(key), dict):
            merged[key] = {**defaults[key], **value}
        else:
            merged[key] = value
    for key, value in defaults.items():
        merged.setdefault(key, value)
    return from_dict(RunConfig, merged)
