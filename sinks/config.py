"""Sink settings: where a run writes metrics, checkpoints and plots, and what it serves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from biograd.core.config import require


@dataclass(frozen=True)
class SinkConfig:
    """Outputs of a run.

    Everything a run writes lives under ``run_dir``: ``metrics.jsonl`` (or
    ``metrics.csv``), ``checkpoints/ckpt-<samples>/`` and ``plots/*.png``.
    """

    run_dir: str = ""  # "" = a new runs/<date>-<time> (runs/latest points at the newest)
    metrics_format: Literal["jsonl", "csv"] = "jsonl"
    checkpoint_every: int = 0  # samples between checkpoints; 0 = not by count
    checkpoint_minutes: float = 0.0  # minutes between checkpoints; 0 = not by time
    keep_checkpoints: int = 3
    plots: bool = True  # write the PNGs when the run ends
    predictions: str = ""  # ZeroMQ address to PUB prediction records on ("" = off)
    predictions_file: str = ""  # also write prediction records as JSON lines here ("" = off)
    dashboard: bool = False  # serve the live dashboard on 127.0.0.1
    dashboard_port: int = 8765  # 0 = any free port (logged at start)
    dashboard_hold: bool = True  # after a run ends the dashboard stays up until Ctrl-C
    frame_interval_s: float = 0.2  # at most one input frame per this many seconds goes to the dashboard

    def __post_init__(self):
        require(self.checkpoint_every >= 0, "sinks.checkpoint_every", self.checkpoint_every, "must be >= 0")
        require(
            self.checkpoint_minutes >= 0,
            "sinks.checkpoint_minutes",
            self.checkpoint_minutes,
            "must be >= 0 (0 = not by time)",
        )
        require(self.keep_checkpoints >= 1, "sinks.keep_checkpoints", self.keep_checkpoints, "must be >= 1")
        require(
            0 <= self.dashboard_port <= 65535,
            "sinks.dashboard_port",
            self.dashboard_port,
            "must be a TCP port in 0..65535 (0 = any free port)",
        )
        require(self.frame_interval_s >= 0, "sinks.frame_interval_s", self.frame_interval_s, "must be >= 0")
        if self.predictions:
            require(
                "://" in self.predictions,
                "sinks.predictions",
                self.predictions,
                "must be a ZeroMQ address such as tcp://127.0.0.1:5560 or ipc:///tmp/biograd-pred",
            )
