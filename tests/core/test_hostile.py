"""A hostile pyzmq client against the learner's sockets (issue 13): no crash, no effect without
STREAM_START, every bad message counted once, bounded memory. Loopback / inproc only."""

import json
import random
import struct
import time

import numpy as np
import pytest
import zmq

from biograd.core import protocol
from biograd.core.events import NMNIST_GEOMETRY, make_events
from biograd.core.protocol import HEADER, Message, MsgType, Phase, ProtocolError
from biograd.core.transport import Orphan, Receiver, RecordPublisher, RecordSubscriber, Sender, WireSample


def _events(n, seed=0):
    rng = np.random.default_rng(seed)
    return make_events(
        np.sort(rng.integers(0, 300_000, n)), rng.integers(0, 34, n), rng.integers(0, 34, n), rng.integers(0, 2, n)
    )


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _drain(receiver, until, timeout=10.0):
    out = []
    deadline = time.monotonic() + timeout
    while not until(out) and time.monotonic() < deadline:
        out += receiver.poll(20)
    return out


def _ended(out):
    return any(getattr(i, "type", None) == MsgType.STREAM_END for i in out)


@pytest.fixture
def ctx():
    c = zmq.Context()
    yield c
    c.destroy(linger=0)


def _header(msg_type, stream_id=1, seq=0, **kw):
    fields = dict(width=34, height=34, label=-1, phase=1, epoch=0, index=0, count=0, sample_id=b"x")
    fields.update(kw)
    sid = fields["sample_id"]
    return HEADER.pack(
        protocol.MAGIC,
        1,
        int(msg_type),
        stream_id,
        seq,
        fields["width"],
        fields["height"],
        fields["label"],
        fields["phase"],
        fields["epoch"],
        fields["index"],
        fields["count"],
        len(sid),
        sid,
    )


def test_deeply_nested_json_is_a_protocol_error_for_every_json_type():
    for msg_type in protocol.JSON_TYPES:
        for body in (b"[" * 3000, b'{"a":' * 3000, b"[" * 40 + b"]" * 40):
            with pytest.raises(ProtocolError, match="nests deeper"):
                protocol.decode([_header(msg_type, count=len(body), width=0, height=0), body])
    # brackets inside strings are not nesting; an ordinary deep-enough record still decodes
    text = json.dumps({"type": "metrics", "note": "[" * 5000, "x": [[[[1]]]]}).encode()
    assert protocol.decode([_header(MsgType.METRICS, count=len(text), width=0, height=0), text]).payload["x"]
    assert protocol.json_depth(b'["\\"[[[[", [[1]]]') == 0  # few brackets: not even scanned
    assert protocol.json_depth(b'"\\\\"' + b"[" * 40) > protocol.MAX_JSON_DEPTH  # escaped backslash, string ends


def test_one_message_of_3000_brackets_does_not_stop_the_receiver(ctx):
    receiver = Receiver("inproc://nest", "inproc://nest-ctl", ctx=ctx)
    evil = ctx.socket(zmq.PUSH)
    evil.connect("inproc://nest-ctl")
    body = b"[" * 3000
    evil.send_multipart([_header(MsgType.CONTROL, count=len(body), width=0, height=0), body])
    sender = Sender("inproc://nest", ctx, name="good")
    sender.send_sample("after", 1, NMNIST_GEOMETRY, _events(20))
    sender.close()
    items = _drain(receiver, _ended)
    assert [s.sample_id for s in items if isinstance(s, WireSample)] == ["after"]
    assert receiver.counters.invalid == 1
    evil.close()
    receiver.close()


def test_without_stream_start_nothing_has_an_effect(ctx):
    receiver = Receiver("inproc://nostart", ctx=ctx)
    evil = ctx.socket(zmq.PUSH)
    evil.connect("inproc://nostart")
    forged = [
        protocol.encode(Message(MsgType.SPLIT_END, 77, 0, phase=Phase.TRAIN, epoch=65535, count=10)),
        protocol.encode(Message(MsgType.STREAM_END, 77, 1, payload={"dropped": 10**30, "samples": 1})),
        protocol.encode(Message(MsgType.SAMPLE_START, 78, 2**64 - 1, NMNIST_GEOMETRY, label=1, sample_id="s")),
        protocol.encode(Message(MsgType.EVENTS, 78, 0, NMNIST_GEOMETRY, sample_id="s", events=_events(10))),
        protocol.encode(Message(MsgType.SAMPLE_END, 78, 1, NMNIST_GEOMETRY, label=1, sample_id="s", count=10)),
    ]
    for frames in forged:
        evil.send_multipart(frames)
    items = _drain(receiver, lambda out: receiver.counters.messages >= len(forged), timeout=5)
    c = receiver.counters
    assert (c.invalid, c.gaps, c.dropped, c.samples, c.streams) == (0, 0, 0, 0, 0)
    assert c.orphan == len(forged) and receiver.streams == {}
    # no item the learner would act on: only (rate-limited) requests to resync those streams
    assert {type(i) for i in items} == {Orphan} and sorted(i.stream_id for i in items) == [77, 78]
    evil.close()
    receiver.close()


def test_forged_sequence_numbers_and_stream_end_counts_are_bounded(ctx):
    receiver = Receiver("inproc://forged", ctx=ctx, max_gap=1000)
    sender = Sender("inproc://forged", ctx, name="victim")
    sender.send_sample("a", 1, NMNIST_GEOMETRY, _events(10))
    _drain(receiver, lambda out: receiver.counters.samples == 1)
    # one message at seq 2**64 - 1 on the victim's stream: not believed
    sender.sock.send_multipart(protocol.encode(Message(MsgType.SPLIT_END, sender.stream_id, 2**64 - 1)))
    sender.send_sample("b", 2, NMNIST_GEOMETRY, _events(10))  # the real stream goes on
    sender.sock.send_multipart(
        protocol.encode(
            Message(MsgType.STREAM_END, sender.stream_id, sender.seq, payload={"dropped": 10**30, "samples": 2})
        )
    )
    items = _drain(receiver, _ended)
    c = receiver.counters
    assert [s.sample_id for s in items if isinstance(s, WireSample)] == ["b"]
    assert c.gaps == 0 and c.dropped == 0 and c.invalid == 2  # the jump and the impossible drop count
    sender.close(None)
    receiver.close()


def test_one_bad_event_message_is_counted_once(ctx):
    receiver = Receiver("inproc://once", ctx=ctx)
    sender = Sender("inproc://once", ctx, packet_events=10, name="s")
    sender.send_sample("ok1", 1, NMNIST_GEOMETRY, _events(30, 1))
    # the second sample: SAMPLE_START, one corrupted EVENTS (x out of the sensor), the rest
    frames = [
        sender._frames(Message(MsgType.SAMPLE_START, geometry=NMNIST_GEOMETRY, label=2, sample_id="bad")),
    ]
    bad = _events(10, 2)
    bad["x"][3] = 500
    frames.append(
        sender._frames(Message(MsgType.EVENTS, geometry=NMNIST_GEOMETRY, label=2, sample_id="bad", events=bad))
    )
    frames.append(
        sender._frames(Message(MsgType.EVENTS, geometry=NMNIST_GEOMETRY, label=2, sample_id="bad", events=_events(10)))
    )
    frames.append(
        sender._frames(Message(MsgType.SAMPLE_END, geometry=NMNIST_GEOMETRY, label=2, sample_id="bad", count=20))
    )
    for f in frames:
        sender.sock.send_multipart(f)
    sender.send_sample("ok2", 3, NMNIST_GEOMETRY, _events(30, 3))
    sender.close()
    items = _drain(receiver, _ended)
    c = receiver.counters
    assert [s.sample_id for s in items if isinstance(s, WireSample)] == ["ok1", "ok2"]
    assert (c.invalid, c.gaps, c.dropped) == (1, 0, 1)  # one bad message, one sample lost
    receiver.close()


def _random_frames(rng: random.Random, stream_id: int, seq: int) -> list:
    """One structured-random message: valid layout, every field drawn from its whole range."""
    kind = rng.choice(list(MsgType) + [0, 99, 255])
    fields = dict(
        width=rng.choice([0, 34, 65535, rng.randrange(65536)]),
        height=rng.choice([0, 34, 65535, rng.randrange(65536)]),
        label=rng.choice([-1, 0, 9, -32768, 32767, rng.randrange(-32768, 32768)]),
        phase=rng.choice([0, 1, 2, 3, 4, 255]),
        epoch=rng.choice([0, 1, 65535]),
        index=rng.choice([-1, 0, 2**63 - 1, -(2**63)]),
        sample_id=rng.choice([b"", b"s", b"\xff\xfe", b"x" * 64]),
    )
    seq = rng.choice([seq, seq, seq, seq + 1, seq - 1 if seq else 0, 2**64 - 1, rng.randrange(2**64)])
    shape = rng.randrange(8)
    if shape == 0:  # random bytes
        return [rng.randbytes(rng.randrange(0, 200)) for _ in range(rng.randrange(1, 4))]
    if kind == MsgType.EVENTS or shape == 1:
        n = rng.choice([0, 1, 5, 1000])
        ev = _events(n, rng.randrange(1000)) if n else _events(0)
        if n and rng.random() < 0.5:
            ev["t"][rng.randrange(n)] = -5 if rng.random() < 0.5 else 0
        body = ev.tobytes()
        count = rng.choice([n, n + 1, 2**32 - 1])
        return [_header(kind, stream_id, seq, count=count, **fields), body]
    payloads = [
        {"command": rng.choice(["sleep", "pause", "resume", "label", "x", 5])},
        {"command": "label", "label": rng.choice([3, -1, 10**40, "3", None, True])},
        {"name": rng.choice(["a", "", "x" * 5000, 5]), "dropped": rng.choice([0, 1, -1, 1e30, 10**30, "1"])},
        {"seq": 1, "resync": True, "position": {"epoch": 65536}},
        {"type": rng.choice(list(protocol.RECORD_TYPES) + ["nope"])},
        [1, 2],
        "just a string",
    ]
    body = json.dumps(rng.choice(payloads)).encode()
    if shape == 2:
        body = b"[" * rng.choice([33, 1000, 20000])
    elif shape == 3:
        body = body[: rng.randrange(len(body) + 1)] + rng.randbytes(rng.randrange(5))
    count = len(body) if rng.random() < 0.8 else rng.randrange(2**32)
    frames = [_header(kind, stream_id, seq, count=count, **fields), body]
    return frames if rng.random() < 0.9 else frames[:1] + frames + [b"extra"]


def test_structured_fuzzing_of_every_message_type_never_crashes(ctx):
    """6000 hostile messages on the input and the control socket, on streams that did and did
    not start; a good source streams alongside and loses nothing."""
    receiver = Receiver("inproc://fuzz", "inproc://fuzz-ctl", ctx=ctx, max_events=2000)
    rng = random.Random(13)
    evil = ctx.socket(zmq.PUSH)
    evil.connect("inproc://fuzz")
    evil_ctl = ctx.socket(zmq.PUSH)
    evil_ctl.connect("inproc://fuzz-ctl")
    started = [rng.randrange(2**32) for _ in range(4)]
    for sid in started:
        evil.send_multipart(protocol.encode(Message(MsgType.STREAM_START, sid, 0, payload={"name": f"evil{sid}"})))
    good = Sender("inproc://fuzz", ctx, name="good", packet_events=7)
    sent = 0
    seqs = dict.fromkeys(started, 1)
    items: list = []
    for i in range(6000):
        sid = rng.choice(started + [rng.randrange(2**32)])
        frames = _random_frames(rng, sid, seqs.get(sid, 0))
        seqs[sid] = seqs.get(sid, 0) + 1
        (evil_ctl if i % 5 == 0 else evil).send_multipart(frames)
        if i % 100 == 0:
            good.send_sample(f"g{sent}", sent % 10, NMNIST_GEOMETRY, _events(30, sent), Phase.TRAIN, 0, sent)
            sent += 1
            items += receiver.poll(0)
    good.close()  # no ack address: STREAM_END goes out, no wait
    items += _drain(
        receiver,
        lambda out: any(
            getattr(i, "stream_id", 0) == good.stream_id and getattr(i, "type", None) == MsgType.STREAM_END for i in out
        ),
    )
    got = [s for s in items if isinstance(s, WireSample) and s.stream_id == good.stream_id]
    assert [s.sample_id for s in got] == [f"g{k}" for k in range(sent)]
    c = receiver.counters
    print(
        f"measured: fuzzing: {c.messages} messages, invalid {c.invalid}, orphan {c.orphan}, good samples {len(got)}/{sent}"
    )
    assert c.messages >= 6000 + sent * 3 and c.invalid > 1000
    assert c.gaps < 2**21 * 4  # a forged seq moves the counters by at most max_gap per stream
    for item in items:  # whatever got through is well-formed
        if isinstance(item, Message) and item.type == MsgType.CONTROL:
            assert item.payload["command"] in protocol.CONTROL_COMMANDS
    evil.close(0)
    evil_ctl.close(0)
    receiver.close()


def test_input_memory_is_bounded_under_attack(ctx):
    """Oversized frames, half-received samples and a flood of stream ids: RSS stays bounded."""
    now = [0.0]
    receiver = Receiver(
        "tcp://127.0.0.1:0",
        ctx=ctx,
        max_events=200_000,  # 2.6 MB frames at most
        max_buffered_events=1_000_000,  # 13 MB of half-received samples at most
        max_streams=100,
        sample_timeout_s=30,
        clock=lambda: now[0],
    )
    address = receiver.input.getsockopt(zmq.LAST_ENDPOINT).decode()
    base = _rss_mb()
    peak = base
    evil = ctx.socket(zmq.PUSH)
    evil.connect(address)
    # 1. frames of 100 MB: libzmq disconnects the peer before allocating them (ZMQ_MAXMSGSIZE)
    big = b"\0" * (100 << 20)
    head = _header(MsgType.EVENTS, 5, 0, count=len(big) // 13)
    for _ in range(3):
        evil.send_multipart([head, big], copy=False)
    del big
    time.sleep(0.5)
    receiver.poll(100)
    peak = max(peak, _rss_mb())
    # 2. 40 streams each opening a 150 000-event sample and never finishing it
    attacker = Sender(address, ctx, name="half", hwm=100_000)
    for k in range(40):
        s = Sender(address, ctx, name=f"half{k}")
        s.sock.send_multipart(
            protocol.encode(Message(MsgType.SAMPLE_START, s.stream_id, 1, NMNIST_GEOMETRY, label=1, sample_id="h"))
        )
        ev = _events(150_000, k)
        s.sock.send_multipart(
            protocol.encode(Message(MsgType.EVENTS, s.stream_id, 2, NMNIST_GEOMETRY, label=1, sample_id="h", events=ev))
        )
        s.sock.close(linger=5000)
        _drain(receiver, lambda out, k=k: receiver.counters.messages >= (k + 1) * 3 + 1, timeout=5)
        peak = max(peak, _rss_mb())
    assert receiver._buffered <= 1_000_000
    shed = receiver.counters.dropped
    assert shed >= 40 - 1_000_000 // 150_000  # the oldest were discarded, counted
    now[0] += 31
    receiver._last_sweep = -10
    receiver.poll(0)
    assert receiver._buffered == 0 and receiver.counters.dropped == 40  # the rest timed out
    # 3. 20 000 stream ids: the table keeps 100
    for k in range(20_000):
        attacker.sock.send_multipart(
            protocol.encode(Message(MsgType.STREAM_START, 10_000 + k, 0, payload={"name": f"n{k}"}))
        )
    _drain(receiver, lambda out: receiver.counters.streams >= 20_000 + 41, timeout=30)
    assert len(receiver.streams) == 100
    peak = max(peak, _rss_mb())
    print(
        f"measured: input attacks: RSS +{peak - base:.0f} MB, dropped {receiver.counters.dropped}, streams kept {len(receiver.streams)}"
    )
    assert peak - base < 120, f"RSS grew {peak - base:.0f} MB under attack"
    attacker.close(None)
    evil.close(0)
    receiver.close()


FLOOD = """
import random, struct, sys, zmq
ctx = zmq.Context()
socks = []
for _ in range(3):
    s = ctx.socket(zmq.XSUB)  # an XSUB sends subscriptions as plain messages
    s.setsockopt(zmq.SNDHWM, 0)
    s.connect(sys.argv[1])
    socks.append(s)
rng = random.Random(3)
for i in range(2_000):  # 1 KB subscriptions: libzmq disconnects the peer at the first one
    socks[0].send(b"\\x01" + rng.randbytes(1024))
for i in range(20_000):  # short unknown topics: ignored
    socks[1].send(b"\\x01" + rng.randbytes(8))
for i in range(20_000):  # STREAM_ACK topics of made-up streams: capped
    socks[2].send(b"\\x01" + sys.argv[2].encode("latin-1") + struct.pack("<I", i))
print("sent", flush=True)
sys.stdin.read()
"""


def test_a_subscription_flood_costs_the_output_no_memory(ctx):
    """Before the fix 20 000 distinct 1 KB subscriptions took the learner from 193 to 1 160 MB."""
    import subprocess
    import sys

    pub = RecordPublisher("tcp://127.0.0.1:0", ctx)
    address = pub.sock.getsockopt(zmq.LAST_ENDPOINT).decode()
    sink = RecordSubscriber(address, ("metrics",), ctx)
    base = peak = _rss_mb()
    flood = subprocess.Popen(
        [sys.executable, "-c", FLOOD, address, protocol.topic(MsgType.STREAM_ACK).decode("latin-1")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert flood.stdout.readline().strip() == b"sent"
        deadline = time.monotonic() + 30
        wanted = 20_000 + 20_000 - 4096
        while time.monotonic() < deadline and pub.ignored_subscriptions < wanted:
            pub.handle({"type": "metrics", "samples": 1})
            peak = max(peak, _rss_mb())
            time.sleep(0.02)
        assert pub.ignored_subscriptions >= wanted
        assert len(pub._ack_topics) == 4096
        print(f"measured: subscription flood: RSS +{peak - base:.0f} MB, ignored {pub.ignored_subscriptions}")
        assert peak - base < 40, f"RSS grew {peak - base:.0f} MB"
        assert sink.recv(2000)["type"] == "metrics"  # the real sink still gets its records
    finally:
        flood.stdin.close()
        flood.wait(10)
    sink.close()
    pub.close()


def test_every_subscriber_counts_lost_records_even_filtered(ctx):
    pub = RecordPublisher("inproc://lossy", ctx, hwm=5)
    sub = RecordSubscriber("inproc://lossy", ("prediction", "end"), ctx, hwm=5)
    pub.wait_for_sinks(1, 5)
    for i in range(200):  # nobody reads meanwhile: most are dropped at the high-water marks
        pub.handle({"type": "prediction", "sample_id": f"p{i}", "predicted": 1})
        pub.handle({"type": "metrics", "samples": i})
    got = []
    while (r := sub.recv(200)) is not None:
        got.append(r)
    assert 0 < len(got) < 200
    assert len(got) + sub.lost == 200 or got[-1]["sample_id"] != "p199"
    assert sub.lost == int(got[-1]["sample_id"][1:]) + 1 - len(got)
    pub.handle({"type": "end", "reason": "end"})
    assert sub.recv(2000)["type"] == "end"
    sub.close()
    pub.close()


def test_drop_mode_never_drops_split_end_and_counts_a_sample_once(ctx):
    receiver = Receiver("inproc://dropsplit", ctx=ctx, hwm=2)
    sender = Sender("inproc://dropsplit", ctx, flow="drop", hwm=2, queue=2, name="cam")
    for epoch in range(3):
        for i in range(20):
            sender.send_sample(f"w{epoch}.{i}", 1, NMNIST_GEOMETRY, _events(20, i), Phase.TRAIN, epoch, i)
        sender.split_end(Phase.TRAIN, epoch, 20)
    items: list = []
    import threading

    closer = threading.Thread(target=sender.close, kwargs={"timeout_s": 5.0})
    closer.start()
    items = _drain(receiver, _ended)
    closer.join(5)
    splits = [i.epoch for i in items if getattr(i, "type", None) == MsgType.SPLIT_END]
    assert splits == [0, 1, 2]
    got = [i for i in items if isinstance(i, WireSample)]
    c = receiver.counters
    assert len(got) + c.dropped == 60  # every sample delivered or counted once
    receiver.close()


def test_unpacked_header_fields_cover_the_struct():
    assert struct.calcsize("<2sBBIQHHhBHqIB64s") == HEADER.size


def test_a_drop_mode_source_hears_that_a_restarted_learner_lost_its_stream(ctx):
    """Live sources too: the learner's resync reaches a drop-mode Sender, which starts again."""
    from biograd.core.transport import Resync

    receiver = Receiver("inproc://live-resync", ctx=ctx)
    pub = RecordPublisher("inproc://live-resync-out", ctx)
    cam = Sender("inproc://live-resync", ctx, flow="drop", name="cam", ack_address="inproc://live-resync-out")
    time.sleep(0.2)
    pub.service()
    pub.resync(cam.stream_id, None)  # what a learner that never saw this stream start says
    with pytest.raises(Resync):
        for _ in range(50):
            cam.check()
            time.sleep(0.02)
    old = cam.stream_id
    cam.restart()
    cam.send_sample("w", None, NMNIST_GEOMETRY, _events(10), Phase.LIVE)
    cam.close(None)
    items = _drain(receiver, lambda out: any(isinstance(i, WireSample) for i in out))
    assert cam.stream_id != old and [i.sample_id for i in items if isinstance(i, WireSample)] == ["w"]
    pub.close()
    receiver.close()
