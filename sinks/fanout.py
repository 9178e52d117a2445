"""One record to many sinks: :class:`SinkSet`, the fan-out the learner stage writes to."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from biograd.core.errors import BioGradError

log = logging.getLogger(__name__)


class SinkSet:
    """Several sinks behind one ``handle``/``close``; a failing sink is logged, the others go on.

    A sink that raises is not dropped silently: the error is logged with the
    sink's name once, counted in ``errors``, and re-raised from :meth:`close`
    so the run ends with a non-zero status.

    Besides records, a sink may define ``stream_started(info)``: it is told when a
    source connects (``info`` = the source's ``name``, ``kind`` and, for datasets,
    ``total`` samples), e.g. to size a progress bar.
    """

    def __init__(self, sinks: Iterable = ()):
        self.sinks = list(sinks)
        self.errors: dict[str, str] = {}

    def add(self, sink) -> None:
        self.sinks.append(sink)

    def handle(self, record: dict) -> None:
        self._each(lambda sink: sink.handle(record), f"a {record.get('type')} record")

    def stream_started(self, info: dict) -> None:
        self._each(lambda sink: getattr(sink, "stream_started", _ignore)(info), "a stream start")

    def _each(self, call, what: str) -> None:
        for sink in self.sinks:
            name = type(sink).__name__
            if name in self.errors:
                continue
            try:
                call(sink)
            except Exception as exc:  # one broken sink must not stop learning or the others
                log.error("sink %s failed on %s: %s", name, what, exc)
                self.errors[name] = f"{type(exc).__name__}: {exc}"

    def close(self) -> None:
        first = None
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:
                log.error("closing sink %s failed: %s", type(sink).__name__, exc)
                first = first or exc
        if self.errors:
            detail = "; ".join(f"{k}: {v}" for k, v in self.errors.items())
            raise BioGradError(f"sinks failed during the run: {detail}")
        if first is not None:
            raise first


def _ignore(info: dict) -> None:
    pass
