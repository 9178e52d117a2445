"""The BioGrad wire protocol, version 1 (docs/protocol.md). The only module that packs or parses it.

Every message is a ZeroMQ multipart message::

    frame 0   header, 102 bytes, struct-packed little-endian (``HEADER``)
    frame 1   payload, only for types that carry one:
              EVENTS          raw EVENT_DTYPE buffer, 13 bytes x header.count (zero-copy)
              JSON types      UTF-8 JSON object, header.count bytes

Header fields, in order: magic ``b"BG"``, version (1), message type, stream id (uint32,
random per source start), sequence number (uint64, per stream, +1 per message), sensor
width and height, label (int16, -1 = none), phase (0 none, 1 train, 2 test, 3 live),
epoch (uint16), index (int64, the sample's position in the source's order, -1 unknown),
count (events in frame 1, or JSON bytes), sample-id length and a 64-byte UTF-8 sample id.

Nothing here unpickles: headers are ``struct``, events are ``np.frombuffer`` over a fixed
dtype, everything else is JSON. :func:`decode` validates every field and raises
:class:`ProtocolError` naming the problem; receivers drop, count and log such messages.
"""

from __future__ import annotations

import enum
import functools
import json
import re
import secrets
import struct
from typing import NamedTuple

import numpy as np
from numba import njit

from biograd.core import records
from biograd.core.errors import BioGradError, EventFormatError
from biograd.core.events import EVENT_DTYPE, Geometry, validate_events

PROTOCOL_VERSION = 1
MAGIC = b"BG"
SAMPLE_ID_BYTES = 64
HEADER = struct.Struct("<2sBBIQHHhBHqIB64s")
assert HEADER.size == 102

#: Receiver limits: a message above them is rejected before any allocation.
DEFAULT_MAX_EVENTS = 4_000_000  # 52 MB of events in one message
DEFAULT_MAX_JSON_BYTES = 1 << 20
#: JSON nesting deeper than this is rejected before parsing (json.loads recurses per level).
MAX_JSON_DEPTH = 32
_BRACKETS = re.compile(rb'[\[\]{}"\\]')


class ProtocolError(BioGradError, ValueError):
    """A received message breaks the wire protocol; the message says which rule."""


class MsgType(enum.IntEnum):
    STREAM_START = 1  # JSON {"name", "kind", "pid", "flow"}: a source (re)started
    STREAM_END = 2  # JSON {"reason", "sent", "dropped"}: the source finished cleanly
    SAMPLE_START = 3  # sample header fields; no payload
    EVENTS = 4  # event packet of the open sample
    SAMPLE_END = 5  # count = events in the whole sample (completeness check)
    SPLIT_END = 6  # one pass over a split finished; count = samples in it
    CONTROL = 7  # JSON {"command": ..., "label"?}
    PREDICTION = 8  # learner outputs: one JSON sink record each (docs/architecture.md)
    METRICS = 9
    SLEEP = 10
    EVAL = 11
    CHECKPOINT = 12
    END = 13
    STREAM_ACK = 14  # learner -> source on the output socket: JSON {"seq"}, the STREAM_END received
    CONTROL_ACK = 15  # learner -> control client on the control socket: JSON {"id", "status", "message", ...}


class Phase(enum.IntEnum):
    NONE = 0
    TRAIN = 1
    TEST = 2
    LIVE = 3


CONTROL_COMMANDS = ("sleep", "checkpoint", "pause", "resume", "shutdown", "label")
#: Record type -> message type; the types themselves are listed once, in ``records.RECORD_TYPES``.
RECORD_TYPES = {kind: MsgType[kind.upper()] for kind in records.RECORD_TYPES}
JSON_TYPES = {
    MsgType.STREAM_START,
    MsgType.STREAM_END,
    MsgType.CONTROL,
    MsgType.STREAM_ACK,
    MsgType.CONTROL_ACK,
    *RECORD_TYPES.values(),
}
#: A control's request id (chosen by the sender, echoed in every CONTROL_ACK for it).
MAX_REQUEST_ID = 64
SAMPLE_TYPES = {MsgType.SAMPLE_START, MsgType.EVENTS, MsgType.SAMPLE_END}
_NO_GEOMETRY = (0, 0)


def topic(msg_type: MsgType, stream_id: int | None = None) -> bytes:
    """Header prefix of ``msg_type`` (and ``stream_id``): a SUB socket subscribing to it gets only those."""
    prefix = MAGIC + bytes([PROTOCOL_VERSION, int(msg_type)])
    return prefix if stream_id is None else prefix + struct.pack("<I", stream_id & 0xFFFFFFFF)


class Message(NamedTuple):
    """One decoded message. ``events`` for EVENTS, ``payload`` for JSON types.

    A NamedTuple rather than a dataclass: one is built per message, and this is the cheap kind.
    """

    type: MsgType
    stream_id: int = 0
    seq: int = 0
    geometry: Geometry | None = None
    label: int | None = None
    phase: Phase = Phase.NONE
    epoch: int = 0
    # ``index`` and ``count`` shadow tuple methods; the wire names win (fields, not methods).
    index: int = -1  # type: ignore[assignment]
    sample_id: str = ""
    count: int = 0  # type: ignore[assignment]
    events: np.ndarray | None = None
    payload: dict | None = None


@functools.lru_cache(maxsize=64)
def _geometry(width: int, height: int) -> Geometry:
    return Geometry(width, height)


@njit(cache=True)
def _events_ok(t, x, y, p, width, height):  # pragma: no cover - compiled
    """One pass: every event inside the sensor, polarity 0/1, t >= 0 and non-decreasing."""
    n = t.shape[0]
    if n and t[0] < 0:
        return False
    for i in range(n):
        if x[i] >= width or y[i] >= height or p[i] > 1:
            return False
        if i and t[i] < t[i - 1]:
            return False
    return True


# --- encoding --------------------------------------------------------------


def _header(msg_type, stream_id, seq, geometry, label, phase, epoch, index, sample_id, count) -> bytes:
    raw_id = sample_id.encode("utf-8")
    if len(raw_id) > SAMPLE_ID_BYTES:
        raise ProtocolError(f"sample id {sample_id!r} is {len(raw_id)} bytes, the limit is {SAMPLE_ID_BYTES}")
    width, height = (geometry.width, geometry.height) if geometry else _NO_GEOMETRY
    if label is not None and not 0 <= label <= 32767:
        raise ProtocolError(f"label {label!r} outside 0..32767")
    return HEADER.pack(
        MAGIC,
        PROTOCOL_VERSION,
        int(msg_type),
        stream_id & 0xFFFFFFFF,
        seq,
        width,
        height,
        -1 if label is None else int(label),
        int(phase),
        epoch,
        index,
        count,
        len(raw_id),
        raw_id,
    )


def encode(msg: Message, stream_id: int | None = None, seq: int | None = None) -> list:
    """The frames of ``msg`` (with ``stream_id``/``seq`` if given); events as a memoryview (no copy)."""
    t = MsgType(msg.type)
    common = (
        t,
        msg.stream_id if stream_id is None else stream_id,
        msg.seq if seq is None else seq,
        msg.geometry,
        msg.label,
        msg.phase,
        msg.epoch,
        msg.index,
        msg.sample_id,
    )
    if t == MsgType.EVENTS:
        events = msg.events
        if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE or events.ndim != 1:
            raise ProtocolError(f"EVENTS needs a 1-D {EVENT_DTYPE} array, got {getattr(events, 'dtype', events)!r}")
        events = np.ascontiguousarray(events)
        return [_header(*common, events.shape[0]), memoryview(events.data).cast("B")]
    if t in JSON_TYPES:
        body = json.dumps(msg.payload or {}, separators=(",", ":"), allow_nan=False).encode("utf-8")
        return [_header(*common, len(body)), body]
    return [_header(*common, msg.count)]


def new_stream_id() -> int:
    return secrets.randbits(32)


def record_message(record: dict, stream_id: int = 0, seq: int = 0, index: int = -1) -> list:
    """Frames carrying one sink record; its ``type`` key picks the message type.

    ``index``: the record's number among the publisher's records of its type (-1 = not
    numbered), so a subscriber to one type still sees its losses as gaps.
    """
    kind = record.get("type")
    if kind not in RECORD_TYPES:
        raise ProtocolError(f"record type {kind!r} is not one of {', '.join(RECORD_TYPES)}")
    return encode(Message(RECORD_TYPES[kind], stream_id=stream_id, seq=seq, index=index, payload=record))


def control_message(
    command: str, label: int | None = None, stream_id: int = 0, seq: int = 0, request_id: str | None = None
) -> list:
    """Frames of a CONTROL message; ``label`` is required for the ``label`` command.

    ``request_id`` asks the learner to answer on the control socket (CONTROL_ACK) with it.
    """
    payload: dict = {"command": command}
    if command == "label":
        payload["label"] = label
    if request_id is not None:
        payload["id"] = request_id
    _check_control(payload)
    return encode(Message(MsgType.CONTROL, stream_id=stream_id, seq=seq, payload=payload))


# --- decoding --------------------------------------------------------------


def _check_control(payload: dict) -> None:
    command = payload.get("command")
    if command not in CONTROL_COMMANDS:
        raise ProtocolError(f"control command {command!r} is not one of {', '.join(CONTROL_COMMANDS)}")
    if command == "label":
        label = payload.get("label")
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label <= 32767:
            raise ProtocolError(f"control 'label' needs an integer label in 0..32767, got {label!r}")
    request_id = payload.get("id")
    if request_id is not None and not (isinstance(request_id, str) and 0 < len(request_id) <= MAX_REQUEST_ID):
        raise ProtocolError(f"control id must be a string of 1..{MAX_REQUEST_ID} characters, got {request_id!r}")


def json_depth(raw: bytes) -> int:
    """Deepest nesting of ``[``/``{`` in JSON text ``raw`` (brackets inside strings ignored).

    A C-speed scan: only brackets, quotes and backslashes are visited in Python, and texts
    with few brackets (every normal message) are answered without visiting any.
    """
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
        return 0
    depth = deepest = 0
    in_string = escaped = False
    for match in _BRACKETS.finditer(raw):
        c = match.group()
        if in_string:
            if escaped:
                escaped = False
            elif c == b"\\":
                # an escape only counts for the very next character
                escaped = match.end() < len(raw) and raw[match.end() : match.end() + 1] in (b'"', b"\\")
            elif c == b'"':
                in_string = False
        elif c == b'"':
            in_string = True
        elif c in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_JSON_DEPTH:
                    return deepest
        elif c in (b"]", b"}"):
            depth -= 1
    return deepest


def _nbytes(frame) -> int:
    return (
        frame.nbytes
        if isinstance(frame, memoryview)
        else len(frame)
        if isinstance(frame, (bytes, bytearray))
        else len(frame.buffer)
    )


def _buffer(frame):
    """Bytes-like view of a frame (bytes, memoryview or zmq.Frame) without copying."""
    if isinstance(frame, (bytes, bytearray, memoryview)):
        return frame
    return frame.buffer


def decode(
    frames, max_events: int = DEFAULT_MAX_EVENTS, max_json_bytes: int = DEFAULT_MAX_JSON_BYTES, validate: bool = True
) -> Message:
    """Parse and validate one multipart message; :class:`ProtocolError` if it breaks a rule.

    Checks: frame count for the type, header size, magic, version, known type, sample-id
    length and UTF-8, label >= -1, phase, geometry present on sample messages, payload size
    equal to the header's count and under the limits, the event buffer as EVENT_DTYPE with
    coordinates inside the geometry, polarity 0/1 and time order (``validate_events``),
    JSON being an object with the fields its type needs.
    """
    frames = list(frames)
    if not frames:
        raise ProtocolError("empty message")
    head = _buffer(frames[0])
    if _nbytes(frames[0]) != HEADER.size:
        raise ProtocolError(f"header is {_nbytes(frames[0])} bytes, expected {HEADER.size}")
    (magic, version, raw_type, stream_id, seq, width, height, label, phase, epoch, index, count, id_len, raw_id) = (
        HEADER.unpack(head)
    )
    if magic != MAGIC:
        raise ProtocolError(f"bad magic {magic!r}, expected {MAGIC!r} (not a BioGrad message)")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {version}, this build speaks version {PROTOCOL_VERSION}")
    try:
        msg_type = MsgType(raw_type)
    except ValueError:
        raise ProtocolError(f"unknown message type {raw_type}") from None
    if id_len > SAMPLE_ID_BYTES:
        raise ProtocolError(f"sample id length {id_len} > {SAMPLE_ID_BYTES}")
    try:
        sample_id = bytes(raw_id[:id_len]).decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("sample id is not UTF-8") from None
    if label < -1:
        raise ProtocolError(f"label {label} (must be -1 for none or >= 0)")
    try:
        phase = Phase(phase)
    except ValueError:
        raise ProtocolError(f"unknown phase {phase}") from None
    geometry = None
    if (width, height) != _NO_GEOMETRY:
        if width == 0 or height == 0:
            raise ProtocolError(f"sensor geometry {width}x{height} has a zero side")
        geometry = _geometry(width, height)
    elif msg_type in SAMPLE_TYPES:
        raise ProtocolError(f"{msg_type.name} without sensor geometry")

    expected_frames = 2 if (msg_type == MsgType.EVENTS or msg_type in JSON_TYPES) else 1
    if len(frames) != expected_frames:
        raise ProtocolError(f"{msg_type.name} has {len(frames)} frames, expected {expected_frames}")
    events = payload = None
    if msg_type == MsgType.EVENTS:
        if count > max_events:
            raise ProtocolError(f"EVENTS of {count} events exceeds the limit of {max_events}")
        size = _nbytes(frames[1])
        if size != count * EVENT_DTYPE.itemsize:
            raise ProtocolError(
                f"EVENTS payload is {size} bytes, header says {count} events = {count * EVENT_DTYPE.itemsize} bytes"
            )
        events = np.frombuffer(_buffer(frames[1]), dtype=EVENT_DTYPE)
        if validate and not _events_ok(events["t"], events["x"], events["y"], events["p"], width, height):
            try:  # the slow check only to name the first bad event
                validate_events(events, _geometry(width, height), f"EVENTS seq {seq} of stream {stream_id:08x}")
            except EventFormatError as exc:
                raise ProtocolError(str(exc)) from None
            raise ProtocolError(f"EVENTS seq {seq} of stream {stream_id:08x}: invalid events")
    elif msg_type in JSON_TYPES:
        size = _nbytes(frames[1])
        if size > max_json_bytes:
            raise ProtocolError(f"{msg_type.name} JSON payload of {size} bytes exceeds {max_json_bytes}")
        if size != count:
            raise ProtocolError(f"{msg_type.name} JSON payload is {size} bytes, header says {count}")
        raw = bytes(_buffer(frames[1]))
        if json_depth(raw) > MAX_JSON_DEPTH:
            raise ProtocolError(f"{msg_type.name} JSON payload nests deeper than {MAX_JSON_DEPTH} levels")
        try:
            payload = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise ProtocolError(f"{msg_type.name} payload is not valid JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise ProtocolError(f"{msg_type.name} payload must be a JSON object, got {type(payload).__name__}")
        if msg_type == MsgType.CONTROL:
            _check_control(payload)
        elif msg_type in RECORD_TYPES.values():
            if RECORD_TYPES.get(str(payload.get("type"))) != msg_type:
                raise ProtocolError(f"{msg_type.name} message carries a record of type {payload.get('type')!r}")
    return Message(
        msg_type,
        stream_id=stream_id,
        seq=seq,
        geometry=geometry,
        label=None if label < 0 else label,
        phase=phase,
        epoch=epoch,
        index=index,
        sample_id=sample_id,
        count=count,
        events=events,
        payload=payload,
    )
