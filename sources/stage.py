"""The source stages: a dataset replayed (train split, then test split, per epoch) or a live
packet stream cut into windows, sent to a learner over :mod:`biograd.core.transport`.

They run in a thread of ``biograd replay`` / ``biograd live`` or on their own as
``biograd source``. ``cfg`` is the whole run configuration (``cfg.source`` says what to
open, ``cfg.pipeline`` how to send).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace

import numpy as np
import zmq

from biograd.core.errors import BioGradError, ConfigError
from biograd.core.protocol import Phase
from biograd.core.transport import Resync, Sender
from biograd.sources.base import SeededDataset, epoch_order
from biograd.sources.factory import has_test_split, make_windower, open_source

log = logging.getLogger(__name__)


def flow_mode(cfg, live: bool) -> str:
    """``pipeline.flow``; ``auto`` drops the oldest windows live and blocks (loses nothing) in replay."""
    return cfg.pipeline.flow if cfg.pipeline.flow != "auto" else ("drop" if live else "block")


def _split_config(cfg, split: str):
    src = cfg.source
    return replace(src, split=split, shuffle=src.shuffle if split == "train" else False)


def open_split(cfg, data_root, split: str):
    """The dataset of ``split`` (``sources.open_source``); test splits are never shuffled."""
    dataset = open_source(_split_config(cfg, split), data_root)
    if not hasattr(dataset, "iter_epoch"):
        raise ConfigError(f"source.kind = {cfg.source.kind!r} is a stream, not a dataset: use `biograd live`")
    return dataset


def iter_split(cfg, data_root, split: str, epoch: int, skip: int = 0, bad: list | None = None):
    """(index, Sample) of one pass over ``split`` in the source's seeded order of ``epoch``.

    A sample that cannot be read (a damaged or vanished file) is skipped with a warning and
    appended to ``bad``; its index still counts, so positions stay those of the seeded order.
    """
    dataset = open_split(cfg, data_root, split)
    if not isinstance(dataset, SeededDataset) or type(dataset).iter_epoch is not SeededDataset.iter_epoch:
        for i, sample in enumerate(dataset.iter_epoch(epoch, skip)):
            yield skip + i, sample
        return
    order = epoch_order(len(dataset), dataset.seed, epoch, dataset.shuffle)
    for index in range(skip, len(order)):
        try:
            sample = dataset.sample(int(order[index]), epoch)
        except (BioGradError, OSError) as exc:
            log.warning("%s sample %d of epoch %d skipped: %s", split, index, epoch, exc)
            if bad is not None:
                bad.append(str(exc))
            continue
        yield index, sample


def split_length(cfg, data_root, split: str) -> int:
    return len(open_split(cfg, data_root, split))


class Pacer:
    """``source.speed`` > 0 replays datasets in (scaled) real time: a sample is sent once the
    previous samples' durations (last minus first timestamp), divided by ``speed``, have passed."""

    def __init__(self, speed: float, stop: threading.Event):
        self.speed, self.stop = speed, stop
        self._start = time.monotonic()
        self._due = 0.0

    def wait(self, events: np.ndarray) -> None:
        if self.speed <= 0:
            return
        delay = self._start + self._due - time.monotonic()
        if delay > 0:
            self.stop.wait(delay)
        if events.size:
            self._due += (int(events["t"][-1]) - int(events["t"][0])) / 1e6 / self.speed


def has_test_pass(cfg, data_root=None) -> bool:
    """Whether each replay epoch ends with the test split (``pipeline.evaluate``, datasets with one:
    N-MNIST, MNIST, Tonic, a folder of recordings with a Test/ folder)."""
    return cfg.pipeline.evaluate and has_test_split(cfg.source, data_root)


def work_left(cfg, position: dict | None) -> bool:
    """Whether a replay from ``position`` (a checkpoint's) has anything left to send."""
    if not position:
        return True
    start = int(position.get("epoch", 0))
    for epoch in range(start, cfg.source.epochs):
        if not (epoch == start and position.get("train_done")) or has_test_pass(cfg):
            return True
    return False


#: How long a replay source waits for the learner to acknowledge its start before sending
#: from its own position (an older learner, or one paused, never acknowledges).
WELCOME_TIMEOUT_S = 30.0


def _position_key(position: dict) -> tuple:
    return (int(position["epoch"]), bool(position.get("train_done")), int(position["next_index"]))


def _valid_position(position) -> dict | None:
    """A position sent by a learner, checked (it decides what is sent next), or None."""
    try:
        epoch, index = position["epoch"], position["next_index"]
        ok = all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**31 for v in (epoch, index))
        return {"epoch": epoch, "next_index": index, "train_done": bool(position.get("train_done"))} if ok else None
    except (TypeError, KeyError):
        return None


def run_replay_source(
    cfg,
    data_root,
    address: str,
    stop: threading.Event,
    position: dict | None = None,
    ctx: zmq.Context | None = None,
    name: str = "replay",
    keys: str = "",
    epochs: int | None = None,
    ack_address: str | None = None,
) -> int:
    """Send every epoch (train split, then test split) from ``position`` on; returns samples sent.

    With ``ack_address`` the learner acknowledges the stream's start with its own position:
    a learner that is further (this source restarted) is followed, so nothing is trained
    twice. A learner that restarted and lost this stream asks for a resync
    (:class:`~biograd.core.transport.Resync`): the source starts a new stream from the
    learner's position, so every sample is trained once per epoch in the final model.
    """
    epochs = epochs or cfg.source.epochs
    if position is None:
        # source.skip counts samples of the whole run, as the datasets do.
        epoch, index = divmod(cfg.source.skip, max(1, split_length(cfg, data_root, "train")))
        position = {"epoch": epoch, "next_index": index, "train_done": False}
    p = cfg.pipeline
    has_test = has_test_pass(cfg, data_root)
    train_len = split_length(cfg, data_root, "train")
    test_len = split_length(cfg, data_root, "test") if has_test else 0

    def total_from(position) -> int:
        start_epoch, total = int(position["epoch"]), 0
        for e in range(start_epoch, epochs):
            if not (e == start_epoch and position.get("train_done")):
                total += max(0, train_len - (int(position["next_index"]) if e == start_epoch else 0))
            total += test_len
        return total

    sender = Sender(
        address,
        ctx,
        flow=flow_mode(cfg, live=False),
        hwm=p.hwm,
        queue=p.queue,
        keys=keys,
        name=name,
        kind=cfg.source.kind,
        packet_events=p.packet_events,
        stop=stop,
        total=total_from(position),
        ack_address=ack_address,
        position=position,
    )
    sent = 0
    bad: list[str] = []  # unreadable samples skipped (reported in STREAM_END)
    pacer = Pacer(cfg.source.speed, stop)
    if ack_address:
        acknowledged = _valid_position(sender.wait_welcome(WELCOME_TIMEOUT_S))
        if acknowledged is not None and _position_key(acknowledged) > _position_key(position):
            log.info("the learner is at %s: continuing there, not at %s", acknowledged, position)
            position = acknowledged
            sender.restart(position, total_from(position))

    def send_split(split: str, phase, epoch: int, skip: int = 0) -> bool:
        """Send one split of one epoch; False when asked to stop part-way."""
        nonlocal sent
        n = 0
        sender.skipped = len(bad)
        for index, sample in iter_split(cfg, data_root, split, epoch, skip, bad):
            pacer.wait(sample.events)
            if stop.is_set():
                return False
            sender.check()  # a restarted learner asks for a resync
            sender.send_sample(sample.sample_id, sample.label, sample.geometry, sample.events, phase, epoch, index)
            n += 1
        sender.skipped = len(bad)
        sender.split_end(phase, epoch, n)
        sent += n
        return True

    def send_all(position) -> bool:
        start_epoch = int(position["epoch"])
        for epoch in range(start_epoch, epochs):
            if not (epoch == start_epoch and position.get("train_done")):
                skip = int(position["next_index"]) if epoch == start_epoch else 0
                if not send_split("train", Phase.TRAIN, epoch, skip):
                    return False
            if has_test and not send_split("test", Phase.TEST, epoch):
                return False
        return True

    finished = False
    try:
        while True:
            try:
                if send_all(position):
                    sender.finish("done")  # waits for the learner's ack; may raise Resync
                    finished = True
                return sent
            except Resync as again:
                position = _valid_position(again.position) or position
                log.warning("the learner restarted and lost this stream: resending from %s", position)
                sender.restart(position, total_from(position))
    except InterruptedError:
        return sent
    finally:
        sender.close(None if finished else ("stopped" if stop.is_set() else "done"))


def run_live_source(
    cfg,
    data_root,
    address: str,
    stop: threading.Event,
    ctx: zmq.Context | None = None,
    name: str = "live",
    keys: str = "",
    window=None,
    ack_address: str | None = None,
) -> int:
    """Packets from a camera / DV stream / recording, cut into windows, sent as live samples."""
    p = cfg.pipeline
    stream = open_source(cfg.source, data_root)
    windower = window if window is not None else make_windower(cfg.source, stream)
    sender = Sender(
        address,
        ctx,
        flow=flow_mode(cfg, live=True),
        hwm=p.hwm,
        queue=p.queue,
        keys=keys,
        name=name,
        kind=cfg.source.kind,
        packet_events=p.packet_events,
        stop=stop,
        ack_address=ack_address,
    )
    sent = 0
    try:

        def send(samples):
            nonlocal sent
            for sample in samples:
                try:
                    sender.check()
                except Resync:
                    # The learner restarted and lost this stream: a live stream has no position
                    # to go back to, so it just starts again (the windows in between are gone).
                    log.warning("the learner restarted: live stream started again")
                    sender.restart()
                sender.send_sample(sample.sample_id, sample.label, sample.geometry, sample.events, Phase.LIVE, 0, sent)
                sent += 1

        for packet in stream:
            if stop.is_set():
                break
            send(windower.push(packet))
        else:
            send(windower.flush())  # a recording ended: its last, partial window too
        return sent
    except InterruptedError:
        return sent
    finally:
        close = getattr(stream, "close", None)
        if close:
            close()
        log.info("live source: %d windows sent, %d dropped (learner behind)", sent, sender.dropped)
        sender.close("stopped" if stop.is_set() else "done")
