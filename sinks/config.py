"""Sink settings: where a run writes metrics, checkpoints and plots."""
from __future__ import annotations

from dataclasses import dataclass

from pipeline.config import require


@dataclass(frozen=True)
class SinkConfig:
    run_dir: str = "runs/latest"
    checkpoint_every: int = 0      # samples; 0 = only at the end
    keep_checkpoints: int = 3
    plots: bool = True

    def __post_init__(self):
        require(self.checkpoint_every >= 0, "sinks.checkpoint_every", self.checkpoint_every, "must be >= 0")
        require(self.keep_checkpoints >= 1, "sinks.keep_checkpoints", self.keep_checkpoints, "must be >= 1")
