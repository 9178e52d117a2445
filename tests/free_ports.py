"""Loopback TCP ports for tests that bind servers (never the defaults, which another run may hold)."""

from __future__ import annotations

import socket


def free_ports(n: int = 1) -> int:
    """A port p with p .. p+n-1 free on 127.0.0.1 right now (``live``/``replay`` bind input,
    control and output at p, p + 1, p + 2)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + n > 65535:
            continue
        try:
            for p in range(port, port + n):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no {n} free loopback ports in a row")
