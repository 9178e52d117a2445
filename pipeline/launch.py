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


def thread_source(target, outlive: bool = False, restart_s: float | None = None):
    """A ``start_source`` running ``target(address, output, ctx, stop, position)`` in a thread.

    ``outlive``: the learner outlives the source, so ``alive()`` stays true after it ended and
    controls keep working. ``restart_s``: a source that ended after sending something is started
    again that many seconds later (a camera or stream that dropped reconnects); one that fails
    before sending anything fails the run, as without it.
    """

    def start(address, output, ctx, stop, position):
        errors = []

        def body():
            while True:
                sent = 0
                try:
                    sent = target(address, output, ctx, stop, position)
                except BaseException as exc:  # surfaced in join(): a failing source fails the run
                    if restart_s is None or not sent_any[0]:
                        errors.append(exc)
                        log.error("source failed: %s", exc)
                        return
                    log.warning("source failed: %s", exc)
                sent_any[0] = sent_any[0] or bool(sent)
                if stop.is_set():
                    return
                if restart_s is not None and sent_any[0]:
                    print(f"source ended: starting it again in {restart_s:g} s", file=sys.stderr, flush=True)
                    if stop.wait(restart_s):
                        return
                    continue
                if outlive:
                    print(
                        "source ended; the learner keeps running for labels and controls "
                        "(Ctrl-C or `biograd control shutdown` stops it)",
                        file=sys.stderr,
                        flush=True,
                    )
                return

        sent_any = [False]
        thread = threading.Thread(target=body, name="biograd-source", daemon=True)
        thread.start()

        def join(graceful: bool = False):
            thread.join(timeout=10)
            if errors:
                raise errors[0]

        def alive() -> bool:
            return thread.is_alive() or (outlive and not errors)

        return alive, join

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
