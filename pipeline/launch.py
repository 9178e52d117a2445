"""How a run starts its source stage and stops on signals.

A ``start_source(input, output, ctx, stop, position)`` callable starts the source stage and
returns ``(alive, join)``: :func:`thread_source` runs it in a thread of this process,
:func:`process_source` as a ``biograd source`` child process.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import threading

from biograd.core.errors import BioGradError

log = logging.getLogger(__name__)


def install_signal_handlers(stop: threading.Event):
    """Ctrl-C and SIGTERM set ``stop``; a second Ctrl-C interrupts at once."""
    previous = {}

    def handler(signum, frame):
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        log.info("%s: finishing the current sample, then a final checkpoint", signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    return previous


def restore_signal_handlers(previous) -> None:
    for sig, h in previous.items():
        signal.signal(sig, h)


def thread_source(target):
    """A ``start_source`` running ``target(address, output, ctx, stop, position)`` in a thread."""

    def start(address, output, ctx, stop, position):
        errors = []

        def body():
            try:
                target(address, output, ctx, stop, position)
            except BaseException as exc:  # surfaced in join(): a failing source fails the run
                errors.append(exc)
                log.error("source failed: %s", exc)

        thread = threading.Thread(target=body, name="biograd-source", daemon=True)
        thread.start()

        def join(graceful: bool = False):
            thread.join(timeout=10)
            if errors:
                raise errors[0]

        return thread.is_alive, join

    return start


def process_source(argv: list[str], env: dict | None = None):
    """A ``start_source`` running ``biograd source …`` as a child process."""

    def start(address, output, ctx, stop, position):
        args = [sys.executable, "-m", "biograd.pipeline.cli", "source", "--connect", address, "--ack", output, *argv]
        if position:
            args += ["--position", json.dumps(position)]
        proc = subprocess.Popen(args, env=env)

        def join(graceful: bool = False):
            if graceful:  # a finished source exits by itself once its end of stream is acknowledged
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.returncode not in (0, -signal.SIGTERM):
                raise BioGradError(f"source process exited with status {proc.returncode}")

        return (lambda: proc.poll() is None), join

    return start
