"""Deployment settings for Lava / Loihi."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class DeployConfig:
    backend: Literal["floating_pt", "fixed_pt", "loihi2-hw"] = "fixed_pt"
