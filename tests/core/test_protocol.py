"""The wire protocol: round trips and the validation of every field."""

import json
import struct

import numpy as np
import pytest

from biograd.core import protocol
from biograd.core.events import EVENT_DTYPE, NMNIST_GEOMETRY, Geometry, make_events
from biograd.core.protocol import HEADER, Message, MsgType, Phase, ProtocolError, decode, encode


def _events(n=50, seed=0):
    rng = np.random.default_rng(seed)
    return make_events(
        np.sort(rng.integers(0, 300_000, n)), rng.integers(0, 34, n), rng.integers(0, 34, n), rng.integers(0, 2, n)
    )


def _event_msg(events, **kw):
    fields = dict(
        type=MsgType.EVENTS,
        stream_id=7,
        seq=3,
        geometry=NMNIST_GEOMETRY,
        label=4,
        phase=Phase.TRAIN,
        epoch=2,
        index=11,
        sample_id="Train/4/00012",
        events=events,
    )
    fields.update(kw)
    return Message(**fields)


def test_events_round_trip_is_zero_copy_and_exact():
    events = _events()
    frames = encode(_event_msg(events))
    assert len(frames[0]) == HEADER.size == 102
    assert isinstance(frames[1], memoryview) and frames[1].nbytes == 13 * events.size
    assert np.shares_memory(np.frombuffer(frames[1], EVENT_DTYPE), events)
    msg = decode(frames)
    assert (msg.type, msg.stream_id, msg.seq, msg.geometry) == (MsgType.EVENTS, 7, 3, NMNIST_GEOMETRY)
    assert (msg.label, msg.phase, msg.epoch, msg.index, msg.sample_id) == (4, Phase.TRAIN, 2, 11, "Train/4/00012")
    assert msg.events.dtype == EVENT_DTYPE and np.array_equal(msg.events, events)


def test_header_only_and_json_messages_round_trip():
    start = decode(encode(Message(MsgType.SAMPLE_START, geometry=Geometry(346, 260), label=None, sample_id="w1")))
    assert start.label is None and start.geometry == Geometry(346, 260) and start.events is None
    record = {"type": "prediction", "sample_id": "a", "predicted": 3, "counts": [0] * 10}
    msg = decode(protocol.record_message(record, seq=5))
    assert msg.type == MsgType.PREDICTION and msg.payload == record and msg.seq == 5
    ctl = decode(protocol.control_message("label", 7))
    assert ctl.type == MsgType.CONTROL and ctl.payload == {"command": "label", "label": 7}
    assert protocol.topic(MsgType.PREDICTION) == protocol.record_message(record)[0][:4]


@pytest.mark.parametrize(
    "mutate, problem",
    [
        (lambda f: [f[0][:-1], f[1]], "header is 101 bytes"),
        (lambda f: [b"XX" + f[0][2:], f[1]], "bad magic"),
        (lambda f: [f[0][:2] + bytes([2]) + f[0][3:], f[1]], "protocol version 2"),
        (lambda f: [f[0][:3] + bytes([99]) + f[0][4:], f[1]], "unknown message type 99"),
        (lambda f: [f[0], bytes(f[1])[:-5]], "payload is 645 bytes"),
        (lambda f: [f[0], bytes(f[1]) + b"\0" * 13], "header says 50 events"),
        (lambda f: [f[0]], "has 1 frames, expected 2"),
        (lambda f: [f[0], f[1], b"extra"], "has 3 frames"),
        (lambda f: [], "empty message"),
    ],
)
def test_malformed_messages_are_rejected_with_the_reason(mutate, problem):
    frames = encode(_event_msg(_events()))
    frames = [bytes(f) for f in frames]
    with pytest.raises(ProtocolError, match=problem):
        decode(mutate(frames))


def _with_header(frames, **fields):
    names = [
        "magic",
        "version",
        "type",
        "stream_id",
        "seq",
        "width",
        "height",
        "label",
        "phase",
        "epoch",
        "index",
        "count",
        "id_len",
        "sample_id",
    ]
    values = dict(zip(names, HEADER.unpack(bytes(frames[0]))))
    values.update(fields)
    return [HEADER.pack(*(values[n] for n in names))] + [bytes(f) for f in frames[1:]]


def test_field_validation():
    frames = encode(_event_msg(_events()))
    with pytest.raises(ProtocolError, match="outside the 10x10 sensor"):
        decode(_with_header(frames, width=10, height=10))
    with pytest.raises(ProtocolError, match="without sensor geometry"):
        decode(_with_header(frames, width=0, height=0))
    with pytest.raises(ProtocolError, match="exceeds the limit of 10"):
        decode(frames, max_events=10)
    with pytest.raises(ProtocolError, match="sample id length 65"):
        decode(_with_header(frames, id_len=65))
    with pytest.raises(ProtocolError, match="label -2"):
        decode(_with_header(frames, label=-2))
    with pytest.raises(ProtocolError, match="unknown phase 9"):
        decode(_with_header(frames, phase=9))
    bad = _events()
    bad["p"][3] = 2
    with pytest.raises(ProtocolError, match="polarity 2"):
        decode(encode(_event_msg(bad)))
    backwards = _events()
    backwards["t"][10] = 0
    with pytest.raises(ProtocolError, match="timestamps go backwards"):
        decode(encode(_event_msg(backwards)))


def test_json_validation():
    ctl = [bytes(f) for f in protocol.control_message("pause")]
    with pytest.raises(ProtocolError, match="not valid JSON"):
        decode(_with_header([ctl[0], b"{nope"], count=5))
    with pytest.raises(ProtocolError, match="must be a JSON object"):
        decode(_with_header([ctl[0], b"[1,2]"], count=5))
    evil = json.dumps({"command": "rm -rf"}).encode()
    with pytest.raises(ProtocolError, match="control command 'rm -rf'"):
        decode(_with_header([ctl[0], evil], count=len(evil)))
    with pytest.raises(ProtocolError, match="needs an integer label"):
        protocol.control_message("label", None)
    with pytest.raises(ProtocolError, match="exceeds 8"):
        decode(ctl, max_json_bytes=8)
    metrics = [bytes(f) for f in protocol.record_message({"type": "metrics", "samples": 1})]
    wrong = json.dumps({"type": "eval"}).encode()
    with pytest.raises(ProtocolError, match="METRICS message carries a record of type 'eval'"):
        decode(_with_header([metrics[0], wrong], count=len(wrong)))


def test_no_pickle_anywhere_in_the_wire_path():
    import pathlib

    for name in (
        "protocol.py",
        "transport.py",
        "transport_base.py",
        "transport_send.py",
        "transport_control.py",
        "transport_recv.py",
        "transport_records.py",
    ):
        path = pathlib.Path(protocol.__file__).with_name(name)
        if path.exists():
            text = path.read_text()
            assert "pickle" not in text.replace("never unpickle", "").replace("Nothing here unpickles", "")
            assert "recv_pyobj" not in text and "send_pyobj" not in text
    assert struct.calcsize("<2sBBIQHHhBHqIB64s") == HEADER.size
