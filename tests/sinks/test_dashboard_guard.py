"""The dashboard's HTTP server against a hostile client (issue 13.12): DNS rebinding, idle
connections, content sniffing."""

from __future__ import annotations

import http.client
import socket
import time

from biograd.sinks.dashboard import Dashboard


def _request(port, host_header):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.putrequest("GET", "/state.json", skip_host=True)
    conn.putheader("Host", host_header)
    conn.endheaders()
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, dict(response.getheaders()), body


def test_dns_rebinding_gets_no_state_and_every_answer_says_nosniff():
    dashboard = Dashboard(port=0)
    try:
        port = dashboard.port
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}"):
            status, headers, body = _request(port, host)
            assert status == 200 and body.startswith(b"{"), host
            assert headers["X-Content-Type-Options"] == "nosniff"
        for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1.evil.example:{port}", ""):
            status, headers, body = _request(port, host)
            assert status == 421 and b'"status"' not in body, host
            assert headers["X-Content-Type-Options"] == "nosniff"
    finally:
        dashboard.close()


def test_idle_connections_time_out_and_threads_are_bounded(monkeypatch):
    from biograd.sinks import http_guard

    monkeypatch.setattr(http_guard.GuardedHandler, "timeout", 4.0)
    monkeypatch.setattr(http_guard, "MAX_CONNECTIONS", 4)
    dashboard = Dashboard(port=0)
    idle = []
    try:
        for _ in range(12):  # connect and say nothing
            s = socket.create_connection(("127.0.0.1", dashboard.port), timeout=5)
            idle.append(s)
        server = dashboard._server
        deadline = time.monotonic() + 2.5
        while server.refused < 12 - 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.refused == 12 - 4  # beyond 4 at once: closed at once, no thread
        # a real client still gets through once the idle ones time out
        deadline = time.monotonic() + 10
        status = None
        while time.monotonic() < deadline:
            try:
                status = _request(dashboard.port, f"127.0.0.1:{dashboard.port}")[0]
                break
            except (ConnectionError, http.client.HTTPException, OSError):
                time.sleep(0.2)
        assert status == 200
        for s in idle:  # the server closed every idle connection
            s.settimeout(5)
            assert s.recv(1) == b""
    finally:
        for s in idle:
            s.close()
        dashboard.close()
