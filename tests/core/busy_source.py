"""A source process for the shutdown test: sends verifiable big samples until SIGTERM.

Run as ``python busy_source.py HWM ADDRESS...``: one source process per address, forked
from this one after the imports (20 interpreters importing numba at once take long). Sample k's events are a pure function of k
(:func:`expected`), so the receiver can check every EVENTS frame byte for byte. Shutdown
is the real one: the signal sets ``stop``, the Sender closes (its own context) and the
interpreter exits.
"""

import os
import signal
import sys
import threading

import numpy as np

from biograd.core.events import NMNIST_GEOMETRY, make_events
from biograd.core.protocol import Phase
from biograd.core.transport import Sender

N_EVENTS = 6000  # 78 kB per EVENTS frame: above the zero-copy threshold


def expected(k: int) -> np.ndarray:
    i = np.arange(N_EVENTS)
    return make_events(i + k * 10, (i * 7 + k) % 34, (i * 13 + k) % 34, (i + k) % 2)


def main(address: str, hwm: int) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sender = Sender(address, flow="block", hwm=hwm, name="busy", stop=stop)
    k = 0
    try:
        while not stop.is_set():
            # a fresh array per sample, dropped right after sending: only libzmq holds it then
            sender.send_sample(f"s{k}", k % 10, NMNIST_GEOMETRY, expected(k), Phase.TRAIN, 0, k)
            k += 1
    except InterruptedError:
        pass
    finally:
        sender.close("stopped", timeout_s=0.5)


if __name__ == "__main__":
    hwm, addresses = int(sys.argv[1]), sys.argv[2:]
    pids = []
    for address in addresses:
        pid = os.fork()
        if pid == 0:  # the child: a source process that ends the normal way (atexit and all)
            main(address, hwm)
            sys.exit(0)
        pids.append(pid)
    print(" ".join(map(str, pids)), flush=True)
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
    print(" ".join(map(str, codes)), flush=True)
