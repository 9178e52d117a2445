"""A loopback HTTP server that holds up against a hostile browser or client (the dashboard's).

* **DNS rebinding**: a page from another site that re-points its own name to 127.0.0.1 sends
  ``Host: evil.example``; only ``127.0.0.1``, ``localhost`` and ``[::1]`` (with this port) are
  answered, anything else gets 421 and no data.
* **Idle connections**: a connection that sends nothing for ``timeout_s`` is closed, and at most
  ``max_connections`` are served at once (one thread each); more are closed at once.
* **Content sniffing**: every answer says ``X-Content-Type-Options: nosniff`` (and may not be framed).
"""

from __future__ import annotations

import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 32  # served at once, one thread each

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


class GuardedServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with a bound on concurrent connections (threads)."""

    daemon_threads = True

    def __init__(self, address, handler, max_connections: int | None = None):
        self._slots = threading.BoundedSemaphore(max_connections or MAX_CONNECTIONS)
        self.refused = 0
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class GuardedHandler(BaseHTTPRequestHandler):
    """Base handler: idle timeout, Host check (:meth:`host_ok`), safety headers on every answer."""

    timeout = 10.0  # seconds a connection may stay silent (socket timeout)

    def host_ok(self) -> bool:
        """True if the Host header names this server on loopback; otherwise answers 421."""
        host = (self.headers.get("Host") or "").strip().lower()
        port = self.server.server_address[1]
        if host in LOOPBACK_NAMES or host in {f"{name}:{port}" for name in LOOPBACK_NAMES}:
            return True
        self.send_error(HTTPStatus.MISDIRECTED_REQUEST, "this server answers only to 127.0.0.1 / localhost")
        return False

    def end_headers(self):
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        super().end_headers()
