"""The whole run's configuration: one section per stage, with dataset presets."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from biograd.core.config import apply_overrides, from_dict, load_toml, require
from biograd.core.errors import ConfigError
from biograd.deploy.config import DeployConfig
from biograd.learner.config import MNIST_PAPER, MNIST_STREAMING, NMNIST_PAPER, NMNIST_STREAMING, LearnerConfig
from biograd.sinks.config import SinkConfig
from biograd.sources.config import SourceConfig


@dataclass(frozen=True)
class PipelineConfig:
    """How stages talk: transport addresses and flow control (see docs/protocol.md)."""

    transport: Literal["inproc", "ipc", "tcp"] = "inproc"
    bind_host: str = "127.0.0.1"  # anything but loopback needs CURVE keys
    port: int = 5555  # tcp: input = port, control = port + 1, output = port + 2
    ipc_dir: str = ""  # ipc socket folder; "" = the system temp folder
    input: str = ""  # explicit addresses override the three derived ones
    control: str = ""
    output: str = ""
    flow: Literal["auto", "block", "drop"] = "auto"  # auto: replay blocks, live drops oldest
    hwm: int = 1000  # ZeroMQ high-water mark, messages per socket
    queue: int = 64  # drop mode: samples a source holds before dropping the oldest
    packet_events: int = 0  # split a sample into packets of at most this many events; 0 = one
    keys: str = ""  # CURVE key folder from `biograd keys DIR`; "" = no encryption
    max_events: int = 4_000_000  # larger EVENTS messages are rejected as invalid (and larger frames refused)
    sample_timeout_s: float = 60.0  # a sample half-received that long is discarded (counted in dropped)
    max_buffered_events: int = 16_000_000  # events of all half-received samples together (oldest discarded)
    max_streams: int = 1024  # sources remembered at once (least recently heard forgotten)
    stream_idle_s: float = 300.0  # a source silent that long without STREAM_END is given up; 0 = never
    metrics_every: int = 100  # samples between metrics records
    bin_us: int = 0  # encoder time bin; 0 = the preset's (N-MNIST 5000, MNIST 1000)
    progress: bool = True  # tqdm progress bar in replay
    evaluate: bool = True  # replay: the test split after every epoch (eval record)
    wait_for_sinks: int = 0  # sinks that must subscribe to the output before learning starts
    wait_for_sinks_s: float = 60.0  # ... and how long to wait for them
    label_queue: int = 16  # live: labels waiting for their window (FIFO); a full queue drops the oldest

    def __post_init__(self):
        require(0 < self.port < 65534, "pipeline.port", self.port, "must leave room for port + 2 below 65536")
        require(self.hwm >= 1, "pipeline.hwm", self.hwm, "must be >= 1")
        require(self.queue >= 1, "pipeline.queue", self.queue, "must be >= 1")
        require(self.packet_events >= 0, "pipeline.packet_events", self.packet_events, "must be >= 0")
        require(self.max_events >= 1, "pipeline.max_events", self.max_events, "must be >= 1")
        require(self.sample_timeout_s > 0, "pipeline.sample_timeout_s", self.sample_timeout_s, "must be > 0")
        require(
            self.max_buffered_events >= self.max_events,
            "pipeline.max_buffered_events",
            self.max_buffered_events,
            "must be >= pipeline.max_events",
        )
        require(self.max_streams >= 1, "pipeline.max_streams", self.max_streams, "must be >= 1")
        require(self.stream_idle_s >= 0, "pipeline.stream_idle_s", self.stream_idle_s, "must be >= 0")
        require(self.metrics_every >= 1, "pipeline.metrics_every", self.metrics_every, "must be >= 1")
        require(self.bin_us >= 0, "pipeline.bin_us", self.bin_us, "must be >= 0")
        require(self.wait_for_sinks >= 0, "pipeline.wait_for_sinks", self.wait_for_sinks, "must be >= 0")
        require(self.label_queue >= 1, "pipeline.label_queue", self.label_queue, "must be >= 1")
        require(self.wait_for_sinks_s > 0, "pipeline.wait_for_sinks_s", self.wait_for_sinks_s, "must be > 0")
        for key in ("input", "control", "output"):
            value = getattr(self, key)
            require(
                value == "" or value.split("://", 1)[0] in ("inproc", "ipc", "tcp"),
                f"pipeline.{key}",
                value,
                "must be an inproc://, ipc:// or tcp:// address",
            )


@dataclass(frozen=True)
class RunConfig:
    preset: str = "nmnist"
    source: SourceConfig = field(default_factory=SourceConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    sinks: SinkConfig = field(default_factory=SinkConfig)
    deploy: DeployConfig = field(default_factory=DeployConfig)


#: Dataset presets. ``nmnist`` / ``mnist`` learn in streaming (an update after every labelled
#: sample, settings chosen on validation: learner/config.py) and are the defaults of replay, live
#: and the stand-alone learner; ``*-paper`` are the paper's settings (batch 128, SGD η = 1e-3, a
#: sleep after every batch) for reproduction. ``--config``/``--set`` change only the keys they name.
PRESETS = {
    "nmnist": {"source": SourceConfig(kind="nmnist"), "learner": NMNIST_STREAMING},
    "mnist": {"source": SourceConfig(kind="mnist"), "learner": MNIST_STREAMING},
    "nmnist-paper": {"source": SourceConfig(kind="nmnist"), "learner": NMNIST_PAPER},
    "mnist-paper": {"source": SourceConfig(kind="mnist"), "learner": MNIST_PAPER},
}

#: The learner keys a person reads first to know how the network learns.
_LEARNING_KEYS = ("optimizer", "lr", "batch_size", "sleep", "sleep_every", "feedback_init", "engine", "layer_sizes")


def describe_learning(cfg: RunConfig) -> str:
    """One line of the effective learning settings and the keys that differ from the preset."""
    from dataclasses import fields

    preset = PRESETS[cfg.preset]["learner"]
    shown = ", ".join(f"{k}={getattr(cfg.learner, k)}" for k in _LEARNING_KEYS)
    changed = [
        f"{f.name}={getattr(cfg.learner, f.name)}"
        for f in fields(LearnerConfig)
        if getattr(cfg.learner, f.name) != getattr(preset, f.name)
    ]
    return (
        f"learning: preset {cfg.preset!r}: {shown}; "
        + (f"changed from the preset: {', '.join(changed)}" if changed else "preset unchanged")
        + f" (all settings: {cfg.sinks.run_dir}/config.toml)"
    )


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
    from biograd.core.config import to_dict

    defaults = to_dict(base)
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(defaults.get(key), dict):
            merged[key] = {**defaults[key], **value}
        else:
            merged[key] = value
    for key, value in defaults.items():
        merged.setdefault(key, value)
    if PORT_ENV in os.environ and "port" not in data.get("pipeline", {}):
        # several learners on one machine: each shell picks its ports once
        merged["pipeline"] = {**merged["pipeline"], "port": env_port()}
    for section, key in PATH_SETTINGS:  # `--set pipeline.keys=~/.biograd/keys` works as typed
        value = merged.get(section, {}).get(key)
        if isinstance(value, str) and value.startswith("~"):
            merged[section] = {**merged[section], key: str(Path(value).expanduser())}
    return from_dict(RunConfig, merged)


#: Environment variable with the default ``pipeline.port`` (input; control = +1, output = +2).
PORT_ENV = "BIOGRAD_PORT"


def env_port(default: int = 5555) -> int:
    """``$BIOGRAD_PORT`` (checked), else ``default``: the base port of the learner's sockets."""
    text = os.environ.get(PORT_ENV, "")
    if not text:
        return default
    if not text.isdigit() or not 0 < int(text) < 65534:
        raise ConfigError(f"${PORT_ENV} = {text!r}: must be a TCP port below 65534 (control and output use +1, +2)")
    return int(text)


def default_control_address() -> str:
    """Where ``biograd label`` / ``control`` find a learner started with the default settings."""
    return f"tcp://127.0.0.1:{env_port() + 1}"


#: Settings that name a file or folder; ``~`` is expanded in each.
PATH_SETTINGS = (
    ("source", "path"),
    ("sinks", "run_dir"),
    ("sinks", "predictions_file"),
    ("pipeline", "keys"),
    ("pipeline", "ipc_dir"),
)
