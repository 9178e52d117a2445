"""Source settings: which dataset or device, and the preprocessing between camera and learner."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from biograd.core.config import require


@dataclass(frozen=True)
class SourceConfig:
    # file = any event file faery reads (AEDAT4, EVT2/EVT3 .raw, .dat, .es, .csv; aedat = file);
    # udp = AEStream/SPIF UDP events; tonic = a Tonic dataset (source.tonic_dataset)
    kind: Literal["nmnist", "mnist", "aedat", "file", "camera", "dvstream", "udp", "tonic"] = "nmnist"
    path: str = ""  # dataset folder or event file; "" = look under the data root
    # N-MNIST: train | test (train_full = train). MNIST: train = first 50 000, val = last 10 000
    # training images, train_full = all 60 000, test.
    split: Literal["train", "val", "train_full", "test"] = "train"
    shuffle: bool = True
    seed: int = 0
    limit: int = 0  # 0 = every sample; else a fixed seeded subset of that size
    epochs: int = 1
    skip: int = 0  # samples of the run to skip (resume in the same seeded order)
    speed: float = 0.0  # real-time factor for recordings; 0 = as fast as possible
    backend: Literal["aedat", "dv", "faery"] = "aedat"  # AEDAT4 decoder (docs/sources.md: which and why)
    address: str = ""  # dvstream: HOST:PORT of a dv.io.NetworkWriter; udp: HOST:PORT to bind
    camera: str = ""  # camera: name (MODEL_SERIAL) or serial; "" = the first found
    camera_backend: Literal["dv", "faery"] = "dv"  # dv-processing (iniVation) or faery's camera input
    geometry: tuple[int, ...] = ()  # (width, height) for files/UDP whose header names none
    udp_format: Literal["t64_x16_y16_on8", "t32_x16_y15_on1"] = "t64_x16_y16_on8"  # AEStream / SPIF
    tonic_dataset: str = ""  # tonic: a class in tonic.datasets, e.g. NMNIST (path = Tonic's save_to)
    tonic_transforms: tuple[str, ...] = ()  # tonic.transforms, e.g. ["Denoise(filter_time=10000)"]
    mnist_timesteps: int = 20  # MNIST rate code: steps of 1 ms (= learner.timesteps of the preset)
    # Preprocessing of streams (aedat, camera, dvstream), in this order:
    roi: tuple[int, ...] = ()  # (x0, y0, width, height); () = whole sensor
    noise_filter: Literal["none", "background_activity", "knoise", "fast_decay"] = "none"
    noise_window_us: int = 2000  # the filter's time window / half-life
    refractory_us: int = 0  # 0 = off
    resize: tuple[int, ...] = ()  # (width, height) after down-sampling; () = keep
    resize_mode: Literal["crop", "stretch"] = "crop"  # crop = keep the aspect ratio (centre / roi)
    polarity: Literal["both", "on", "off", "merge"] = "both"
    # Windows that turn a stream into samples: window_events > 0 = that many events per
    # window, else window_us of time per window.
    window_us: int = 300_000
    window_events: int = 0

    def __post_init__(self):
        require(self.limit >= 0, "source.limit", self.limit, "must be >= 0")
        require(self.epochs >= 1, "source.epochs", self.epochs, "must be >= 1")
        require(self.skip >= 0, "source.skip", self.skip, "must be >= 0")
        require(self.speed >= 0, "source.speed", self.speed, "must be >= 0 (0 = as fast as possible)")
        require(self.mnist_timesteps >= 1, "source.mnist_timesteps", self.mnist_timesteps, "must be >= 1")
        require(
            len(self.roi) in (0, 4) and all(v >= 0 for v in self.roi),
            "source.roi",
            self.roi,
            "give [x0, y0, width, height] or []",
        )
        require(
            len(self.resize) in (0, 2) and all(v > 0 for v in self.resize),
            "source.resize",
            self.resize,
            "give [width, height] or []",
        )
        require(
            len(self.geometry) in (0, 2) and all(0 < v <= 65535 for v in self.geometry),
            "source.geometry",
            self.geometry,
            "give [width, height] or []",
        )
        require(
            self.kind != "udp" or bool(self.geometry),
            "source.geometry",
            self.geometry,
            "udp carries no sensor size: give [width, height]",
        )
        require(self.noise_window_us > 0, "source.noise_window_us", self.noise_window_us, "must be > 0")
        require(self.refractory_us >= 0, "source.refractory_us", self.refractory_us, "must be >= 0")
        require(self.window_events >= 0, "source.window_events", self.window_events, "must be >= 0")
        require(
            self.window_us > 0 or self.window_events > 0,
            "source.window_us",
            self.window_us,
            "must be > 0 unless source.window_events > 0",
        )
        require(
            self.kind != "dvstream" or bool(self.address),
            "source.address",
            self.address,
            "dvstream needs HOST:PORT of the dv.io.NetworkWriter",
        )
