"""Who may talk to a stage: loopback by default, ZeroMQ CURVE keys for anything else.

A bound socket (the learner's input, control and output) is a CURVE *server*; a
connecting socket (a source, a sink, ``biograd control``) is a CURVE *client*. One key
folder, made by ``biograd keys DIR``, holds::

    server.key / server.key_secret      the stages that bind
    client.key / client.key_secret      the stages that connect
    authorized_clients/*.key            public keys a server accepts (ZAP, zmq.auth)

Copy the folder to each host (the client host needs ``server.key`` and the client pair;
``*.key_secret`` files are secrets, mode 0600). A peer whose public key is not in
``authorized_clients`` -- or that does not speak CURVE at all -- is refused by the
ZAP handler (:class:`zmq.auth.thread.ThreadAuthenticator`) and none of its messages
reach the stage.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import threading
from pathlib import Path
from urllib.parse import urlsplit

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from biograd.core.errors import ConfigError

log = logging.getLogger(__name__)

AUTHORIZED = "authorized_clients"
_authenticators: dict[int, ThreadAuthenticator] = {}
_lock = threading.Lock()


def generate_keys(directory: str | os.PathLike, force: bool = False) -> dict[str, Path]:
    """Create a server and a client CURVE key pair in ``directory`` and authorise the client."""
    directory = Path(directory)
    existing = [p for p in (directory / "server.key_secret", directory / "client.key_secret") if p.exists()]
    if existing and not force:
        raise ConfigError(f"{existing[0]} already exists; refusing to overwrite keys (use --force)")
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    server_public, server_secret = zmq.auth.create_certificates(directory, "server")
    client_public, client_secret = zmq.auth.create_certificates(directory, "client")
    for secret in (server_secret, client_secret):
        os.chmod(secret, 0o600)
    authorized = directory / AUTHORIZED
    authorized.mkdir(exist_ok=True)
    shutil.copy(client_public, authorized / "client.key")
    return {
        "server_public": Path(server_public),
        "server_secret": Path(server_secret),
        "client_public": Path(client_public),
        "client_secret": Path(client_secret),
        "authorized": authorized,
    }


def is_loopback(address: str) -> bool:
    """True for inproc://, ipc:// and tcp:// on 127.0.0.0/8, ::1 or localhost."""
    scheme = address.split("://", 1)[0]
    if scheme in ("inproc", "ipc"):
        return True
    if scheme != "tcp":
        raise ConfigError(f"address {address!r}: transport must be inproc://, ipc:// or tcp://")
    host = urlsplit(address).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name or interface ("*", "eth0"): treat as reachable from outside


def check_bind(address: str, keys: str | os.PathLike | None) -> None:
    """Refuse to bind a non-loopback address without CURVE keys."""
    if not is_loopback(address) and not keys:
        raise ConfigError(
            f"refusing to bind {address} without encryption: binding outside 127.0.0.1 needs "
            f"CURVE keys (create them with `biograd keys DIR`, then --set pipeline.keys=DIR)"
        )


def _load(directory: Path, name: str) -> tuple[bytes, bytes]:
    path = directory / f"{name}.key_secret"
    if not path.exists():
        raise ConfigError(f"CURVE key {path} not found (create keys with `biograd keys {directory}`)")
    public, secret = zmq.auth.load_certificate(path)
    if secret is None:
        raise ConfigError(f"{path} holds no secret key")
    return public, secret


def secure_server(socket: zmq.Socket, keys: str | os.PathLike) -> None:
    """Make a binding socket a CURVE server that accepts only ``authorized_clients``.

    Call before ``bind``. Starts one ZAP authenticator per context.
    """
    directory = Path(keys)
    public, secret = _load(directory, "server")
    authorized = directory / AUTHORIZED
    if not authorized.is_dir():
        raise ConfigError(f"{authorized} not found: no client would be accepted")
    ctx = socket.context
    with _lock:
        auth = _authenticators.get(id(ctx))
        if auth is None:
            auth = ThreadAuthenticator(ctx, log=logging.getLogger("biograd.zap"))
            auth.start()
            auth.configure_curve(domain="*", location=str(authorized))
            _authenticators[id(ctx)] = auth
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_server = True


def secure_client(socket: zmq.Socket, keys: str | os.PathLike) -> None:
    """Make a connecting socket a CURVE client with the folder's client key. Call before ``connect``."""
    directory = Path(keys)
    public, secret = _load(directory, "client")
    server_public_path = directory / "server.key"
    if not server_public_path.exists():
        raise ConfigError(f"{server_public_path} not found: the client needs the server's public key")
    server_public, _ = zmq.auth.load_certificate(server_public_path)
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_serverkey = server_public


def stop_authenticator(ctx: zmq.Context) -> None:
    """Stop the context's ZAP thread (before ``ctx.term()``)."""
    with _lock:
        auth = _authenticators.pop(id(ctx), None)
    if auth is not None:
        auth.stop()
