"""SIGTERM to a busy source never puts a corrupted frame on the wire (issue 13, point 2)."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import zmq

from biograd.core import protocol
from biograd.core.protocol import HEADER, MsgType

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from busy_source import expected  # noqa: E402

TRIALS = 20


def test_sigterm_to_busy_sources_gives_no_corrupted_frame():
    ctx = zmq.Context()
    socks, launcher = [], None
    rng = random.Random(13)
    try:
        addresses = []
        for _ in range(TRIALS):
            sock = ctx.socket(zmq.PULL)
            sock.setsockopt(zmq.RCVHWM, 2)
            sock.setsockopt(zmq.RCVBUF, 65536)
            addresses.append(f"tcp://127.0.0.1:{sock.bind_to_random_port('tcp://127.0.0.1')}")
            socks.append(sock)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("BUSY_SOURCE_PATH"), str(HERE)])),
        }
        launcher = subprocess.Popen(
            [sys.executable, str(HERE / "busy_source.py"), "200", *addresses], stdout=subprocess.PIPE, env=env
        )
        pids = [int(p) for p in launcher.stdout.readline().split()]
        assert len(pids) == TRIALS
        poller = zmq.Poller()
        for sock in socks:
            poller.register(sock, zmq.POLLIN)
        kill_at = {i: time.monotonic() + rng.uniform(0.3, 1.2) for i in range(TRIALS)}
        good = corrupted = ends = 0
        last_message = time.monotonic()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = time.monotonic()
            for i, when in list(kill_at.items()):
                if now >= when:
                    os.kill(pids[i], signal.SIGTERM)
                    del kill_at[i]
            ready = dict(poller.poll(50))
            for i, sock in enumerate(socks):
                # a slow reader while the source runs (its queue is full), a fast one after SIGTERM
                for _ in range(1 if i in kill_at else 1000):
                    if sock not in ready or not sock.poll(0):
                        break
                    frames = sock.recv_multipart()
                    last_message = time.monotonic()
                    head = HEADER.unpack(frames[0])
                    ends += head[2] == MsgType.STREAM_END
                    if head[2] != MsgType.EVENTS:
                        continue
                    sample_id = bytes(head[13][: head[12]]).decode()
                    if frames[1] == expected(int(sample_id[1:])).tobytes():
                        good += 1
                    else:
                        corrupted += 1
            if not kill_at and launcher.poll() is not None and time.monotonic() - last_message > 0.5:
                break
        codes = [int(c) for c in launcher.stdout.readline().split()]
    finally:
        if launcher is not None and launcher.poll() is None:
            launcher.kill()
        for sock in socks:
            sock.close(0)
        ctx.term()
    print(
        f"measured: {TRIALS} SIGTERMs: {corrupted} corrupted, {good} good frames, {ends} STREAM_END, exit codes {set(codes)}"
    )
    assert corrupted == 0, f"{corrupted} corrupted EVENTS frames ({good} good)"
    assert good >= TRIALS  # every source was busy sending when it was stopped
    assert ends == TRIALS  # every stopped source still ended its stream (issue 13.10)
    assert codes == [0] * TRIALS  # before the fix some also died of SIGSEGV/SIGABRT at exit
    assert protocol.PROTOCOL_VERSION == 1
