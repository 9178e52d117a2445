"""Transport: lossless delivery, flow control, gap counting, restarts, CURVE, bind policy."""

import threading
import time

import numpy as np
import pytest
import zmq

from biograd.core import protocol
from biograd.core.errors import ConfigError
from biograd.core.events import NMNIST_GEOMETRY, make_events
from biograd.core.protocol import Message, MsgType, Phase
from biograd.core.security import check_bind, generate_keys, is_loopback
from biograd.core.transport import Receiver, RecordPublisher, RecordSubscriber, Sender, WireSample


def _events(n, seed):
    rng = np.random.default_rng(seed)
    return make_events(
        np.sort(rng.integers(0, 300_000, n)), rng.integers(0, 34, n), rng.integers(0, 34, n), rng.integers(0, 2, n)
    )


def _drain(receiver, until, timeout=10.0):
    out = []
    deadline = time.monotonic() + timeout
    while not until(out) and time.monotonic() < deadline:
        out += receiver.poll(50)
    return out


def _samples(items):
    return [i for i in items if isinstance(i, WireSample)]


@pytest.fixture
def ctx():
    c = zmq.Context()
    yield c
    c.destroy(linger=0)


@pytest.mark.parametrize("transport", ["inproc", "ipc", "tcp"])
def test_samples_arrive_exactly_in_packets(ctx, tmp_path, transport):
    address = {"inproc": "inproc://t-in", "ipc": f"ipc://{tmp_path}/in", "tcp": "tcp://127.0.0.1:0"}[transport]
    receiver = Receiver(address, ctx=ctx)
    if transport == "tcp":
        address = receiver.input.getsockopt(zmq.LAST_ENDPOINT).decode()
    sent = [(f"s{i}", i % 10, _events(500 + 37 * i, i)) for i in range(12)]
    sender = Sender(address, ctx, packet_events=100, name="a", total=12)
    for i, (sid, label, ev) in enumerate(sent):
        sender.send_sample(sid, label, NMNIST_GEOMETRY, ev, Phase.TRAIN, epoch=1, index=i)
    sender.split_end(Phase.TRAIN, 1, len(sent))
    sender.close()
    items = _drain(receiver, lambda out: any(getattr(i, "type", None) == MsgType.STREAM_END for i in out))
    got = _samples(items)
    assert [s.sample_id for s in got] == [s[0] for s in sent]
    for (_sid, label, ev), s in zip(sent, got):
        assert s.label == label and s.epoch == 1 and s.geometry == NMNIST_GEOMETRY
        assert np.array_equal(s.events, ev)
    kinds = [i.type for i in items if not isinstance(i, WireSample)]
    assert kinds == [MsgType.STREAM_START, MsgType.SPLIT_END, MsgType.STREAM_END]
    assert items[0].payload["total"] == 12
    c = receiver.counters
    assert (c.invalid, c.gaps, c.dropped, c.samples) == (0, 0, 0, 12)
    assert receiver.live_streams() == 0
    receiver.close()


def test_hostile_messages_are_dropped_counted_and_the_stream_goes_on(ctx):
    receiver = Receiver("inproc://hostile", ctx=ctx, max_events=10_000)
    sender = Sender("inproc://hostile", ctx, name="good")
    evil = ctx.socket(zmq.PUSH)
    evil.connect("inproc://hostile")
    good = protocol.encode(Message(MsgType.EVENTS, 1, 0, NMNIST_GEOMETRY, events=_events(20, 1)))
    header = bytes(good[0])
    hostile = [
        [b"hello"],  # not a header
        [header[:2] + bytes([9]) + header[3:], bytes(good[1])],  # wrong version
        [header, bytes(good[1])[:-3]],  # truncated payload
        [header],  # missing payload frame
        [b"XX" + header[2:], bytes(good[1])],  # bad magic
        protocol.encode(Message(MsgType.EVENTS, 2, 0, NMNIST_GEOMETRY, events=_events(20_000, 2))),  # oversized
        protocol.record_message({"type": "metrics", "samples": 1}),  # an output sent as input
        [header, bytes(good[1]), b"x" * 100],  # extra frame
    ]
    sender.send_sample("a", 1, NMNIST_GEOMETRY, _events(100, 3))
    for frames in hostile:
        evil.send_multipart(frames)
    sender.send_sample("b", 2, NMNIST_GEOMETRY, _events(100, 4))
    sender.close()
    items = _drain(receiver, lambda out: any(getattr(i, "type", None) == MsgType.STREAM_END for i in out))
    assert [s.sample_id for s in _samples(items)] == ["a", "b"]
    # 7 rejected by validation; the stray valid EVENTS (stream 1) has no open sample: also invalid.
    assert receiver.counters.invalid == len(hostile)
    evil.close()
    receiver.close()


def test_gap_inside_a_sample_discards_it_and_counts(ctx):
    receiver = Receiver("inproc://gap", ctx=ctx)
    sender = Sender("inproc://gap", ctx, packet_events=10, name="g")
    sender.send_sample("first", 0, NMNIST_GEOMETRY, _events(50, 0))
    sender.seq += 2  # two messages "lost on the way"
    sender.send_sample("second", 1, NMNIST_GEOMETRY, _events(50, 1))
    # Lose the middle of a sample: SAMPLE_START and one packet go out, then the seq jumps.
    sender.sock.send_multipart(
        protocol.encode(
            Message(MsgType.SAMPLE_START, sender.stream_id, sender.seq, NMNIST_GEOMETRY, label=2, sample_id="third")
        )
    )
    sender.seq += 3
    sender.send_sample("fourth", 3, NMNIST_GEOMETRY, _events(50, 3))
    sender.close()
    items = _drain(receiver, lambda out: any(getattr(i, "type", None) == MsgType.STREAM_END for i in out))
    assert [s.sample_id for s in _samples(items)] == ["first", "second", "fourth"]
    c = receiver.counters
    assert c.gaps == 4 and c.dropped == 1  # 2 + 2 missing messages; "third" incomplete
    receiver.close()


def test_drop_mode_never_blocks_and_every_drop_is_visible(ctx):
    receiver = Receiver("inproc://drop", ctx=ctx, hwm=2)
    sender = Sender("inproc://drop", ctx, flow="drop", hwm=2, queue=3, name="cam")
    t0 = time.monotonic()
    for i in range(50):  # the receiver does not read meanwhile
        sender.send_sample(f"w{i}", None, NMNIST_GEOMETRY, _events(30, i), Phase.LIVE, index=i)
    assert time.monotonic() - t0 < 2.0
    assert sender.dropped > 0
    closer = threading.Thread(target=sender.close, kwargs={"timeout_s": 5.0})
    closer.start()  # flushes the newest samples while we read
    items = _drain(receiver, lambda out: any(getattr(i, "type", None) == MsgType.STREAM_END for i in out))
    closer.join(5)
    got = _samples(items)
    assert len(got) + sender.dropped == 50
    assert receiver.counters.gaps == 3 * sender.dropped  # 3 messages per dropped sample
    assert receiver.counters.dropped == sender.dropped  # reported in STREAM_END
    assert [s.index for s in got] == sorted(s.index for s in got) and got[-1].index == 49  # newest kept
    receiver.close()


def test_block_mode_waits_for_the_learner_and_loses_nothing(ctx):
    receiver = Receiver("inproc://block", ctx=ctx, hwm=2)
    sender = Sender("inproc://block", ctx, flow="block", hwm=2, name="replay")
    done = threading.Event()

    def produce():
        for i in range(40):
            sender.send_sample(f"s{i}", i % 10, NMNIST_GEOMETRY, _events(30, i), index=i)
        sender.close()
        done.set()

    thread = threading.Thread(target=produce)
    thread.start()
    time.sleep(0.3)
    assert not done.is_set()  # blocked at the high-water mark
    items = _drain(receiver, lambda out: any(getattr(i, "type", None) == MsgType.STREAM_END for i in out))
    thread.join(5)
    assert [s.index for s in _samples(items)] == list(range(40))
    assert (receiver.counters.gaps, receiver.counters.dropped) == (0, 0)
    receiver.close()


def test_restarted_source_supersedes_its_dead_stream(ctx):
    receiver = Receiver("inproc://restart", ctx=ctx)
    dead = Sender("inproc://restart", ctx, packet_events=10, name="cam")
    dead.send_sample("ok", 1, NMNIST_GEOMETRY, _events(20, 0))
    dead.sock.send_multipart(
        protocol.encode(
            Message(MsgType.SAMPLE_START, dead.stream_id, dead.seq, NMNIST_GEOMETRY, label=2, sample_id="half")
        )
    )
    dead.sock.close()  # dies without STREAM_END
    items = _drain(receiver, lambda out: len(_samples(out)) == 1)
    assert receiver.live_streams() == 1
    new = Sender("inproc://restart", ctx, name="cam")
    new.send_sample("after", 3, NMNIST_GEOMETRY, _events(20, 1))
    new.close()
    items += _drain(receiver, lambda out: any(getattr(i, "type", None) == MsgType.STREAM_END for i in out))
    assert [s.sample_id for s in _samples(items)] == ["ok", "after"]
    assert receiver.counters.dropped == 1 and receiver.live_streams() == 0
    receiver.close()


def test_records_publish_and_subscribe_by_type(ctx):
    pub = RecordPublisher("inproc://records", ctx)
    all_sub = RecordSubscriber("inproc://records", ctx=ctx)
    pred_sub = RecordSubscriber("inproc://records", types=("prediction",), ctx=ctx)
    time.sleep(0.2)  # SUB join before the first PUB (slow joiner)
    pub.handle({"type": "metrics", "samples": 1, "phase": "train", "accuracy_running": 0.5, "time": 0})
    pub.handle({"type": "prediction", "sample_id": "x", "predicted": 3})
    assert all_sub.recv(2000)["type"] == "metrics"
    assert all_sub.recv(2000)["type"] == "prediction"
    assert pred_sub.recv(2000)["sample_id"] == "x"
    assert pred_sub.recv(100) is None
    for s in (pub, all_sub, pred_sub):
        s.close()


def test_records_are_encoded_only_once_a_sink_has_subscribed(ctx, monkeypatch):
    """With no record subscriber the publisher skips the encoding (they would be dropped
    unsent) but keeps numbering; a sink that joins gets the true per-type number."""
    from biograd.core import protocol

    encoded = []
    real = protocol.record_message
    monkeypatch.setattr(
        protocol, "record_message", lambda *a, **k: encoded.append((a[0]["type"], k["index"])) or real(*a, **k)
    )
    pub = RecordPublisher("inproc://records-lazy", ctx)
    for i in range(5):
        pub.handle({"type": "prediction", "sample_id": f"s{i}", "predicted": 1})
    assert encoded == []
    with pytest.raises(protocol.ProtocolError, match="not one of"):
        pub.handle({"type": "no-such-record"})
    sub = RecordSubscriber("inproc://records-lazy", types=("prediction",), ctx=ctx)
    time.sleep(0.2)
    pub.handle({"type": "prediction", "sample_id": "s5", "predicted": 2})
    got = sub.recv(2000)
    assert got["sample_id"] == "s5"
    assert encoded == [("prediction", 5)]  # the sixth prediction record, numbered as such
    for s in (pub, sub):
        s.close()


def test_bind_policy():
    assert is_loopback("tcp://127.0.0.1:5555") and is_loopback("tcp://localhost:1")
    assert is_loopback("ipc:///tmp/x") and is_loopback("inproc://x") and is_loopback("tcp://[::1]:5")
    assert not is_loopback("tcp://0.0.0.0:5555") and not is_loopback("tcp://*:5555")
    assert not is_loopback("tcp://192.168.1.4:5555")
    with pytest.raises(ConfigError, match="refusing to bind tcp://0.0.0.0:5555 without encryption"):
        check_bind("tcp://0.0.0.0:5555", None)
    check_bind("tcp://0.0.0.0:5555", "/some/keys")


def test_curve_refuses_unauthenticated_clients(ctx, tmp_path):
    keys = tmp_path / "keys"
    generate_keys(keys)
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        generate_keys(keys)
    intruder_keys = tmp_path / "intruder"
    generate_keys(intruder_keys)  # valid CURVE keys, but not authorised by the server
    (intruder_keys / "server.key").write_bytes((keys / "server.key").read_bytes())
    receiver = Receiver("tcp://0.0.0.0:0", ctx=ctx, keys=str(keys))
    port = receiver.input.getsockopt(zmq.LAST_ENDPOINT).decode().rsplit(":", 1)[1]
    address = f"tcp://127.0.0.1:{port}"
    plain = Sender(address, ctx, flow="drop", name="plain")
    plain.send_sample("plain", 1, NMNIST_GEOMETRY, _events(20, 0))
    wrong = Sender(address, ctx, flow="drop", keys=str(intruder_keys), name="wrong")
    wrong.send_sample("wrong", 1, NMNIST_GEOMETRY, _events(20, 0))
    items = _drain(receiver, lambda out: False, timeout=1.5)
    assert items == [] and receiver.counters.messages == 0
    good = Sender(address, ctx, keys=str(keys), name="good")
    good.send_sample("good", 1, NMNIST_GEOMETRY, _events(20, 0))
    items = _drain(receiver, lambda out: len(_samples(out)) == 1)
    assert [s.sample_id for s in _samples(items)] == ["good"]
    for s in (plain, wrong, good):
        s.close(timeout_s=0)
    receiver.close()
    from biograd.core.security import stop_authenticator

    stop_authenticator(ctx)


def test_ipc_files_are_removed_on_close(ctx, tmp_path):
    receiver = Receiver(f"ipc://{tmp_path}/in", f"ipc://{tmp_path}/ctl", ctx=ctx)
    pub = RecordPublisher(f"ipc://{tmp_path}/out", ctx)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ctl", "in", "out"]
    receiver.close()
    pub.close()
    assert list(tmp_path.iterdir()) == []


def test_learner_output_waits_for_sinks_to_subscribe():
    from biograd.core.errors import BioGradError
    from biograd.core.transport import RecordPublisher, RecordSubscriber

    ctx = zmq.Context()
    publisher = RecordPublisher("inproc://wait-for-sinks", ctx)
    subscribers = []
    try:
        with pytest.raises(BioGradError, match=r"only 0 of 1 sinks subscribed to inproc://wait-for-sinks"):
            publisher.wait_for_sinks(1, 0.2)
        subscribers.append(RecordSubscriber("inproc://wait-for-sinks", ("prediction", "end", "metrics"), ctx))
        subscribers.append(RecordSubscriber("inproc://wait-for-sinks", (), ctx))  # everything
        publisher.wait_for_sinks(2, 5.0)
        publisher.handle({"type": "metrics", "samples": 1})
        assert [s.recv(2000)["samples"] for s in subscribers] == [1, 1]  # nothing lost to a late join
        subscribers.append(RecordSubscriber("inproc://wait-for-sinks", ("prediction",), ctx))
        with pytest.raises(BioGradError, match="only 0 of 1"):  # a sink counts by its "end"
            publisher.wait_for_sinks(1, 0.2)
    finally:
        for s in subscribers:
            s.close()
        publisher.close()
        ctx.term()


def test_a_sender_that_cannot_connect_terminates_its_own_context(monkeypatch):
    """A bad address raises at once and leaves no context (with an open socket) behind for the
    garbage collector, whose term() would then block."""
    made = []

    class TrackedContext(zmq.Context):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            made.append(self)

    monkeypatch.setattr(zmq, "Context", TrackedContext)
    with pytest.raises(zmq.ZMQError):
        Sender("nonsense://nowhere", name="bad")
    assert len(made) == 1 and made[0].closed
