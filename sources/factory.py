"""``open_source(cfg, data_root)``: the dataset or stream a ``SourceConfig`` asks for."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from biograd.core.errors import ConfigError, DataNotFoundError
from biograd.sources.config import SourceConfig


class PacketStream:
    """A live or recorded stream with its preprocessing: iterate preprocessed event packets.

    ``geometry`` is the geometry after preprocessing; ``stats`` the raw stream's
    counters (packets, invalid, dropped, gaps …). Packets emptied by filtering
    are not handed on, but live streams (camera, dvstream) hand on an empty
    packet after every ``heartbeat`` s of silence so the consumer can check
    whether to stop.
    """

    heartbeat = 0.25

    def __init__(self, raw, cfg: SourceConfig, name: str):
        from biograd.sources.preprocess import Preprocessor

        self.raw, self.name = raw, name
        self.preprocess = Preprocessor(
            raw.geometry,
            roi=cfg.roi,
            resize=cfg.resize,
            resize_mode=cfg.resize_mode,
            polarity=cfg.polarity,
            noise_filter=cfg.noise_filter,
            noise_window_us=cfg.noise_window_us,
            refractory_us=cfg.refractory_us,
        )

    @property
    def geometry(self):
        return self.preprocess.geometry

    @property
    def stats(self):
        return self.raw.stats

    def __iter__(self) -> Iterator[np.ndarray]:
        from biograd.sources.live import _PolledStream

        live = isinstance(self.raw, _PolledStream)
        for packet in self.raw.packets(heartbeat=self.heartbeat) if live else self.raw.packets():
            if packet.size == 0:
                yield packet  # heartbeat
                continue
            out = self.preprocess(packet)
            if out.size:
                yield out

    def close(self) -> None:
        self.raw.close()


def open_source(
    cfg: SourceConfig,
    data_root: str | os.PathLike | None = None,
    *,
    epoch: int | None = None,
    skip: int | None = None,
    connect_timeout: float = 5.0,
):
    """The dataset (iterates ``Sample``s, has ``len``) or :class:`PacketStream` for ``cfg``.

    Datasets: with ``epoch`` given, one pass over that epoch's seeded order from
    position ``skip``; without, ``cfg.epochs`` epochs skipping the first ``skip``
    (default ``cfg.skip``) samples of the run.
    """
    skip = cfg.skip if skip is None else skip
    epochs = cfg.epochs if epoch is None else None
    if cfg.kind == "nmnist":
        from biograd.sources.nmnist import NMNISTDataset, locate_nmnist

        root = locate_nmnist(cfg.path, data_root)
        split = "train" if cfg.split == "train_full" else cfg.split
        return NMNISTDataset(
            root, split, seed=cfg.seed, shuffle=cfg.shuffle, limit=cfg.limit, epochs=epochs or 1, skip=skip, epoch=epoch
        )
    if cfg.kind == "mnist":
        from biograd.sources.mnist import MNISTDataset, locate_mnist

        return MNISTDataset(
            locate_mnist(cfg.path, data_root),
            cfg.split,
            seed=cfg.seed,
            shuffle=cfg.shuffle,
            limit=cfg.limit,
            epochs=epochs or 1,
            skip=skip,
            epoch=epoch,
            timesteps=cfg.mnist_timesteps,
        )
    if cfg.kind in ("aedat", "file"):
        from biograd.core.events import Geometry
        from biograd.sources.formats import EventFile

        path = Path(cfg.path).expanduser() if cfg.path else None
        if path is None:
            raise ConfigError(f"source.path = '': source.kind = {cfg.kind!r} needs an event file")
        if not path.is_absolute() and not path.exists() and data_root:
            path = Path(data_root) / path
        if path.is_dir():  # labelled recordings in class folders: a replay dataset
            from biograd.sources.recordings import RecordingFolder

            return RecordingFolder(path, cfg.split, cfg, epochs=epochs or 1, skip=skip, epoch=epoch)
        if not path.is_file():
            raise DataNotFoundError(f"source.path = {cfg.path!r}: no such event file or folder")
        geometry = Geometry(*cfg.geometry) if cfg.geometry else None
        recording = EventFile(path, backend=cfg.backend, speed=cfg.speed, geometry=geometry)
        return PacketStream(recording, cfg, path.name)
    if cfg.kind == "udp":
        from biograd.core.events import Geometry
        from biograd.sources.udp import UdpStream

        host, port = parse_udp_address(cfg.address)
        stream = UdpStream(host, port, Geometry(*cfg.geometry), format=cfg.udp_format)
        return PacketStream(stream, cfg, stream.name)
    if cfg.kind == "tonic":
        from biograd.sources.tonic_source import open_tonic

        return open_tonic(cfg, data_root, epoch=epoch, skip=skip, epochs=epochs or 1)
    if cfg.kind == "camera":
        if cfg.camera_backend == "faery":
            from biograd.sources.live import FaeryCameraStream

            return PacketStream(FaeryCameraStream(cfg.camera), cfg, "faery-camera")
        from biograd.sources.live import CameraStream

        return PacketStream(CameraStream(cfg.camera), cfg, f"camera:{cfg.camera or 'first'}")
    if cfg.kind == "dvstream":
        from biograd.sources.live import DVNetworkStream, parse_address

        host, port = parse_address(cfg.address)
        stream = DVNetworkStream(host, port)
        if not stream.wait_connected(connect_timeout):
            error = stream.stats.last_error
            stream.close()
            raise DataNotFoundError(
                f"DV stream {host}:{port}: no server answered within {connect_timeout:g} s"
                + (f" ({error})" if error else "")
            )
        return PacketStream(stream, cfg, f"dv://{host}:{port}")
    raise ConfigError(f"source.kind = {cfg.kind!r}: unknown")


def has_test_split(cfg: SourceConfig, data_root: str | os.PathLike | None = None) -> bool:
    """Whether the replay source has a test split to evaluate on (datasets, Tonic, recording folders)."""
    if cfg.kind in ("nmnist", "mnist", "tonic"):
        return True
    if cfg.kind in ("file", "aedat") and cfg.path:
        path = Path(cfg.path).expanduser()
        if not path.is_absolute() and not path.exists() and data_root:
            path = Path(data_root) / path
        return any((path / name).is_dir() for name in ("Test", "test"))
    return False


def parse_udp_address(text: str) -> tuple[str, int]:
    """``"host:port"`` or ``"port"`` to bind; host defaults to 127.0.0.1 (loopback only)."""
    host, _, port = (text or "127.0.0.1:3333").rpartition(":")
    try:
        return host or "127.0.0.1", int(port)
    except ValueError:
        raise ConfigError(f"source.address = {text!r}: expected HOST:PORT for udp") from None


def make_windower(cfg: SourceConfig, stream):
    """The :class:`~sources.windowing.Windower` that cuts ``stream`` into samples per ``cfg``."""
    from biograd.sources.windowing import Windower

    if cfg.window_events:
        return Windower(stream.geometry, count=cfg.window_events, source=getattr(stream, "name", cfg.kind))
    return Windower(stream.geometry, duration_us=cfg.window_us, source=getattr(stream, "name", cfg.kind))
