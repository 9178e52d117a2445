"""Small clients of a learner: ``biograd control`` / ``label`` (DEALER to the control ROUTER,
answered by CONTROL_ACK), and where a source finds the learner's output for its acknowledgements."""

from __future__ import annotations

import logging
import secrets
import time

import zmq

from biograd.core import protocol
from biograd.core.errors import BioGradError
from biograd.core.protocol import MsgType, ProtocolError
from biograd.core.transport_base import connect

log = logging.getLogger(__name__)


def ack_address_for(input_address: str) -> str:
    """The learner's output address by the default layout: tcp port + 2, ipc/inproc ``-output``."""
    if input_address.endswith("-input"):
        return input_address[: -len("-input")] + "-output"
    if input_address.startswith("tcp://"):
        host, port = input_address.rsplit(":", 1)
        return f"{host}:{int(port) + 2}"
    raise ValueError(f"cannot derive the learner's output address from {input_address!r}; give it")


def send_control(
    address: str,
    command: str,
    label: int | None = None,
    keys: str = "",
    ctx: zmq.Context | None = None,
    timeout_s: float = 5.0,
    applied_s: float = 0.0,
    on_answer=None,
) -> list[dict]:
    """Send one CONTROL to a learner's control address; the learner's answers (CONTROL_ACK).

    Waits up to ``timeout_s`` for the answer that the control was applied (for a label: queued),
    and for a label up to ``applied_s`` more for the answer that a window took it;
    ``on_answer(payload)`` sees each answer as it comes. Raises :class:`BioGradError` when no
    learner answers.
    """
    ctx = ctx or zmq.Context.instance()
    request_id = secrets.token_hex(8)
    sock = connect(ctx, zmq.DEALER, address, keys, linger_ms=0, max_frame=1 << 20)
    answers: list[dict] = []
    try:
        frames = protocol.control_message(command, label, stream_id=secrets.randbits(32), request_id=request_id)
        if not sock.poll(int(timeout_s * 1000), zmq.POLLOUT):
            raise BioGradError(f"no learner accepted a connection at {address} within {timeout_s:g} s")
        sock.send_multipart(frames)
        deadline = time.monotonic() + timeout_s
        while True:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0 or not sock.poll(left_ms, zmq.POLLIN):
                if answers:
                    return answers  # queued, not yet applied: the caller says so
                raise BioGradError(
                    f"no answer from a learner at {address} within {timeout_s:g} s "
                    f"(is it running? `biograd live` prints its control address)"
                )
            try:
                msg = protocol.decode(sock.recv_multipart())
            except ProtocolError as exc:
                log.warning("invalid answer from %s: %s", address, exc)
                continue
            if msg.type != MsgType.CONTROL_ACK or (msg.payload or {}).get("id") != request_id:
                continue
            assert msg.payload is not None
            answers.append(msg.payload)
            if on_answer is not None:
                on_answer(msg.payload)
            if msg.payload.get("status") != "queued" or applied_s <= 0:
                return answers
            deadline = time.monotonic() + applied_s
    finally:
        sock.close()
