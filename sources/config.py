"""Source settings: which dataset or device, and the preprocessing between camera and learner."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pipeline.config import require


@dataclass(frozen=True)
class SourceConfig:
    kind: Literal["nmnist", "mnist", "aedat", "camera", "dvstream"] = "nmnist"
    path: str = ""                 # dataset folder or file; "" = look under the data root
    split: Literal["train", "test"] = "train"
    shuffle: bool = True
    seed: int = 0
    limit: int = 0                 # 0 = every sample
    epochs: int = 1
    speed: float = 0.0             # real-time factor for recordings; 0 = as fast as possible

    def __post_init__(self):
        require(self.limit >= 0, "source.limit", self.limit, "must be >= 0")
        require(self.epochs >= 1, "source.epochs", self.epochs, "must be >= 1")
        require(self.speed >= 0, "source.speed", self.speed, "must be >= 0 (0 = as fast as possible)")
