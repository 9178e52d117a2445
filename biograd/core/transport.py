"""ZeroMQ sockets between stages: who binds, who connects, flow control, sample reassembly.

Split by job (each module says how it holds up against hostile or broken peers):

* :mod:`biograd.core.transport_base`: addresses, bind/connect with limits (docs/protocol.md).
* :mod:`biograd.core.transport_send`: :class:`Sender`, a source's PUSH end.
* :mod:`biograd.core.transport_control`: ``send_control`` (``biograd control``), ``ack_address_for``.
* :mod:`biograd.core.transport_recv`: :class:`Receiver`, the learner's input (validation,
  reassembly, bounded memory).
* :mod:`biograd.core.transport_records`: :class:`RecordPublisher` (learner output, STREAM_ACK)
  and :class:`RecordSubscriber` (a sink's end).

This module re-exports them: ``from biograd.core.transport import Sender`` keeps working.
"""

from __future__ import annotations

from biograd.core.transport_base import (
    ZERO_COPY_THRESHOLD,
    Counters,
    Endpoints,
    Orphan,
    WireSample,
    bind,
    close_bound,
    connect,
    connect_address,
    endpoints,
    max_frame_bytes,
)
from biograd.core.transport_control import ack_address_for, send_control
from biograd.core.transport_records import RecordPublisher, RecordSubscriber
from biograd.core.transport_recv import MAX_PENDING_REPLIES, Receiver
from biograd.core.transport_send import Resync, Sender

__all__ = [
    "ZERO_COPY_THRESHOLD",
    "Counters",
    "Endpoints",
    "Orphan",
    "Receiver",
    "RecordPublisher",
    "RecordSubscriber",
    "Resync",
    "Sender",
    "WireSample",
    "ack_address_for",
    "bind",
    "close_bound",
    "connect",
    "connect_address",
    "endpoints",
    "max_frame_bytes",
    "MAX_PENDING_REPLIES",
    "send_control",
]
