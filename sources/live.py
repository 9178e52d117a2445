"""Live sources through dv-processing: a DVS camera on USB, or a DV network stream.

Both are polled on a dedicated thread that moves packets into a bounded queue,
because dv-processing's readers keep only about 1000 packets and silently drop
newer ones when nobody polls them. What can be detected is counted in
``stats``:

* ``dropped``: packets the consumer was too slow for (the queue was full) —
  exact, since this module drops them;
* ``gaps``: time jumps between consecutive packets larger than
  ``gap_factor`` x the median packet span so far — a packet lost inside
  dv-processing or upstream leaves such a hole (a heuristic: a still scene
  makes one too);
* ``invalid``: packets outside the sensor or with time going backwards (skipped).

A network stream (the TCP protocol of ``dv.io.NetworkWriter``) reconnects when
the server goes away: ``NetworkReader.isRunning()`` turns false, and the
thread retries the connection every ``reconnect_delay`` seconds.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

import numpy as np

from biograd.core.errors import DataNotFoundError, HardwareUnavailableError
from biograd.core.events import Geometry, empty_events, from_dv
from biograd.sources.base import StreamStats, check_packet

log = logging.getLogger(__name__)

_END = object()


class _PolledStream:
    """Poll a dv-processing reader on a thread; iterate its packets from a bounded queue."""

    def __init__(self, name: str, queue_size: int, gap_factor: float, poll_interval: float):
        self.name = name
        self.stats = StreamStats()
        self.gap_factor = gap_factor
        self.poll_interval = poll_interval
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._spans: deque = deque(maxlen=64)
        self._last_t: int | None = None
        self.geometry: Geometry | None = None
        self.connected = threading.Event()

    # subclasses: _connect() -> reader; _alive(reader) -> bool; _reconnect: bool
    _reconnect = False
    reconnect_delay = 0.2

    def start(self):
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"poll-{self.name}", daemon=True)
            self._thread.start()
        return self

    def _accept(self, events: np.ndarray) -> None:
        problem = check_packet(events, self.geometry, self.name, self._last_t)
        if problem:
            self.stats.invalid += 1
            self.stats.last_error = problem
            log.warning("%s: skipped a bad packet: %s", self.name, problem)
            return
        first, last = int(events["t"][0]), int(events["t"][-1])
        if self._last_t is not None and len(self._spans) >= 8:
            typical = float(np.median(self._spans))
            if typical > 0 and first - self._last_t > self.gap_factor * typical:
                self.stats.gaps += 1
        self._spans.append(max(last - first, 1))
        self._last_t = last
        try:
            self._queue.put_nowait(events)
        except queue.Full:
            self.stats.dropped += 1
            return
        self.stats.packets += 1
        self.stats.events += events.size

    def _poll_loop(self, reader) -> None:
        while not self._stop.is_set():
            try:
                batch = reader.getNextEventBatch()
            except RuntimeError as exc:  # a broken connection: treat like a closed one
                self.stats.last_error = str(exc).splitlines()[0]
                return
            if batch is not None:
                if batch.size():
                    self._accept(from_dv(batch))
                continue
            if not self._alive(reader):
                return
            time.sleep(self.poll_interval)

    def _run(self) -> None:
        first = True
        try:
            while not self._stop.is_set():
                reader = self._connect_retrying(first)
                if reader is None:
                    break
                first = False
                self.connected.set()
                self._poll_loop(reader)
                del reader
                self.connected.clear()
                if self._stop.is_set() or not self._reconnect:
                    break
                log.warning("%s: connection lost; reconnecting", self.name)
                self._last_t = None  # a restarted server may start its clock anew
                self.stats.reconnects += 1
        except Exception as exc:  # surfaced to the consumer by packets()
            self._error = exc
        finally:
            self._put_end()

    def _put_end(self) -> None:
        while True:
            try:
                self._queue.put(_END, timeout=0.1)
                return
            except queue.Full:
                if self._stop.is_set():
                    return

    def _connect_retrying(self, first: bool):
        while not self._stop.is_set():
            try:
                return self._connect()
            except HardwareUnavailableError:
                if first or not self._reconnect:
                    raise
            except RuntimeError as exc:
                if first and not self._reconnect:
                    raise
                self.stats.last_error = str(exc).splitlines()[0]
            self._stop.wait(self.reconnect_delay)
        return None

    _error: Exception | None = None

    def packets(self, timeout: float | None = None, heartbeat: float | None = None) -> Iterator[np.ndarray]:
        """Event packets as they arrive; ends on close(), or after ``timeout`` s without data.

        With ``heartbeat``, an empty packet comes every ``heartbeat`` s of silence, so a
        consumer blocked on a still camera still gets to check whether it should stop.
        """
        self.start()
        silent = 0.0
        while True:
            wait = heartbeat if heartbeat is not None else timeout
            if heartbeat is not None and timeout is not None:
                wait = min(heartbeat, timeout - silent)
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                silent += wait
                if timeout is not None and silent >= timeout:
                    return
                yield empty_events(0)
                continue
            silent = 0.0
            if item is _END:
                if self._error is not None:
                    raise self._error
                return
            yield item

    __iter__ = packets

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


class DVNetworkStream(_PolledStream):
    """Events from a ``dv.io.NetworkWriter`` server (DV's TCP protocol); reconnects on loss."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        reconnect: bool = True,
        reconnect_delay: float = 0.2,
        queue_size: int = 4096,
        gap_factor: float = 20.0,
        poll_interval: float = 0.0005,
    ):
        super().__init__(f"dv://{host}:{port}", queue_size, gap_factor, poll_interval)
        self.host, self.port = host, int(port)
        self._reconnect = reconnect
        self.reconnect_delay = reconnect_delay

    def _connect(self):
        import dv_processing as dv

        reader = dv.io.NetworkReader(self.host, self.port)
        if not reader.isEventStreamAvailable():
            raise DataNotFoundError(f"{self.name}: the server sends no event stream")
        width, height = reader.getEventResolution()
        geometry = Geometry(int(width), int(height))
        if self.geometry is not None and geometry != self.geometry:
            log.warning("%s: sensor changed from %s to %s after reconnecting", self.name, self.geometry, geometry)
        self.geometry = geometry
        return reader

    @staticmethod
    def _alive(reader) -> bool:
        return reader.isRunning()

    def wait_connected(self, timeout: float) -> bool:
        self.start()
        return self.connected.wait(timeout)


def parse_address(text: str, default_port: int = 7777) -> tuple[str, int]:
    """``"host:port"`` (or ``"port"``) → (host, port); host defaults to 127.0.0.1."""
    host, _, port = text.rpartition(":")
    try:
        number = int(port or default_port)
    except ValueError:
        raise DataNotFoundError(f"DV stream address {text!r}: expected HOST:PORT") from None
    return host or "127.0.0.1", number


def list_cameras() -> list[str]:
    """Names (``<model>_<serial>``) of the cameras dv-processing can see."""
    import dv_processing as dv

    return [f"{d.cameraModel}_{d.serialNumber}" for d in dv.io.camera.discover()]


def open_camera(name: str = "", *, discover: Callable | None = None, opener: Callable | None = None):
    """Open a DVS camera by name/serial, or the first one found.

    dv-processing's own ``open()`` fails with an opaque
    ``IndexError: vector::_M_range_check`` when nothing is attached; this raises
    :class:`HardwareUnavailableError` saying what was looked for and found.
    ``discover``/``opener`` default to dv-processing's (tests pass stand-ins).
    """
    import dv_processing as dv

    discover = discover or dv.io.camera.discover
    opener = opener or dv.io.camera.open
    found = list(discover())
    names = [f"{d.cameraModel}_{d.serialNumber}" for d in found]
    if not found:
        raise HardwareUnavailableError(
            "no DVS camera found (dv-processing discovered none on USB); attach one, or replay a "
            "recording with source.kind=aedat, or read a DV network stream with source.kind=dvstream"
        )
    if name:
        match = [d for d, n in zip(found, names) if name in (n, d.serialNumber)]
        if not match:
            raise HardwareUnavailableError(f"camera {name!r} not found; attached: {', '.join(names)}")
        target = match[0]
    else:
        target = found[0]
    try:
        return opener(target)
    except (IndexError, RuntimeError) as exc:
        raise HardwareUnavailableError(
            f"camera {target.cameraModel}_{target.serialNumber} could not be opened: {str(exc).splitlines()[0]}"
        ) from None


class CameraStream(_PolledStream):
    """Events from a DVS camera on USB (dv-processing); opening fails at once if none is there."""

    def __init__(
        self, name: str = "", *, queue_size: int = 4096, gap_factor: float = 20.0, poll_interval: float = 0.0005
    ):
        super().__init__(f"camera:{name or 'first'}", queue_size, gap_factor, poll_interval)
        self.camera_name = name
        self._camera = open_camera(name)
        width, height = self._camera.getEventResolution()
        self.geometry = Geometry(int(width), int(height))

    def _connect(self):
        camera, self._camera = self._camera, None
        if camera is None:
            raise HardwareUnavailableError(f"{self.name}: camera disconnected")
        return camera

    @staticmethod
    def _alive(camera) -> bool:
        return camera.isRunning()


#: What to install for faery's camera input (named in the one-line error when nothing is found).
FAERY_CAMERA_HELP = (
    "pip install event-camera-drivers (iniVation cameras through libcaer) or "
    "pip install neuromorphic-drivers (Prophesee EVK4/EVK3 HD, iniVation DAVIS346/DVXplorer, needs its udev rules)"
)


def open_faery_camera(*, opener: Callable | None = None):
    """faery's camera input (``faery.events_stream_from_camera``), or a one-line HardwareUnavailableError."""
    if opener is None:
        from faery.event_camera_input import has_event_camera_drivers, has_neuromorphic_drivers

        if not (has_event_camera_drivers() or has_neuromorphic_drivers()):
            raise HardwareUnavailableError(f"faery's camera input has no camera driver installed: {FAERY_CAMERA_HELP}")
        import faery

        opener = faery.events_stream_from_camera
    try:
        return opener()
    except (ImportError, ValueError, RuntimeError, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise HardwareUnavailableError(f"no event camera found through faery ({first}); {FAERY_CAMERA_HELP}") from None


class FaeryCameraStream(_PolledStream):
    """Events from a camera through faery's camera input (event-camera-drivers / neuromorphic-drivers)."""

    def __init__(self, name: str = "", *, opener: Callable | None = None, queue_size: int = 4096, gap_factor=20.0):
        super().__init__("faery-camera", queue_size, gap_factor, 0.0005)
        self._camera = open_faery_camera(opener=opener)
        width, height = self._camera.dimensions()
        self.geometry = Geometry(int(width), int(height))

    def _connect(self):
        camera, self._camera = self._camera, None
        if camera is None:
            raise HardwareUnavailableError(f"{self.name}: camera disconnected")
        return camera

    def _poll_loop(self, camera) -> None:
        from biograd.core.events import from_faery

        for packet in camera:
            if self._stop.is_set():
                return
            if len(packet):
                self._accept(from_faery(packet))

    @staticmethod
    def _alive(camera) -> bool:
        return False
