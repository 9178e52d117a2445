"""Decode throughput of the sources, side by side: N-MNIST .bin, AEDAT4 via aedat and via dv-processing.

    BIOGRAD_DATA=../shared/data nice -n 10 .venv/bin/python bench/sources.py [--repeat 5] [--json PATH]

Each figure is events per second, the median of ``--repeat`` timed passes over
the same real data in one run (files already in the OS cache):

* ``nmnist_decode``: :func:`sources.nmnist.decode_nmnist` over the bytes of every
  nmnist-1k file held in memory (decoding and checks only);
* ``nmnist_read``: :func:`sources.nmnist.read_nmnist` (open + read + decode per file);
* ``aedat_raw`` / ``dv_raw``: the libraries alone (``aedat.Decoder`` packets;
  ``MonoCameraRecording.getNextEventBatch`` + ``EventStore.numpy()``);
* ``aedat_source`` / ``dv_source``: :class:`sources.aedat4.AedatRecording` (container
  scan, conversion to EVENT_DTYPE, per-packet validation) with each backend.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from biograd.core.data import data_root  # noqa: E402
from biograd.sources.aedat4 import AedatRecording  # noqa: E402
from biograd.sources.nmnist import decode_nmnist, read_nmnist  # noqa: E402


def timed(fn, repeat: int) -> tuple[float, int]:
    """(median seconds, events) of ``repeat`` calls of ``fn`` (which returns its event count)."""
    fn()  # warm-up: imports, JIT, OS cache
    times, n = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), n


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="data root (default $BIOGRAD_DATA)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--aedat-passes", type=int, default=20, help="file passes per timed AEDAT4 run")
    parser.add_argument("--json", metavar="PATH", help="write a flat JSON object name -> number")
    args = parser.parse_args(argv)
    root = data_root(args.data)
    files = sorted((root / "nmnist-1k").glob("*/*/*.bin"))
    davis = root / "aedat4" / "davis346.aedat4"
    if not files or not davis.is_file():
        print(f"need {root}/nmnist-1k and {davis} (set --data or $BIOGRAD_DATA)", file=sys.stderr)
        return 2
    blobs = [(f, f.read_bytes()) for f in files]

    def nmnist_decode():
        return sum(decode_nmnist(b, f).size for f, b in blobs)

    def nmnist_read():
        return sum(read_nmnist(f).size for f in files)

    def aedat_raw():
        import aedat

        n = 0
        for _ in range(args.aedat_passes):
            for packet in aedat.Decoder(str(davis)):
                if "events" in packet:
                    n += packet["events"].shape[0]
        return n

    def dv_raw():
        import dv_processing as dv

        n = 0
        for _ in range(args.aedat_passes):
            reader = dv.io.MonoCameraRecording(str(davis))
            while (batch := reader.getNextEventBatch()) is not None:
                n += batch.numpy().shape[0]
        return n

    def source(backend):
        def run():
            return sum(
                p.size for _ in range(args.aedat_passes) for p in AedatRecording(davis, backend=backend).packets()
            )

        return run

    cases = {
        "nmnist_decode": nmnist_decode,
        "nmnist_read": nmnist_read,
        "aedat_raw": aedat_raw,
        "dv_raw": dv_raw,
        "aedat_source": source("aedat"),
        "dv_source": source("dv"),
    }
    results = {}
    for name, fn in cases.items():
        seconds, n = timed(fn, args.repeat)
        results[name] = (n / seconds, n, seconds)

    base = results["aedat_source"][0]
    print(f"{'reader':<15}{'events/s':>14}{'events':>12}{'seconds':>10}{'vs aedat_source':>17}")
    for name, (rate, n, seconds) in results.items():
        print(f"{name:<15}{rate:>14,.0f}{n:>12,}{seconds:>10.4f}{rate / base:>16.2f}x")
    print(
        f"(median of {args.repeat}; N-MNIST = {len(files)} files of nmnist-1k; AEDAT4 = "
        f"{args.aedat_passes} passes over {davis.name}; cpus={os.cpu_count()})"
    )
    flat = {f"{name}_events_per_s": round(rate) for name, (rate, _, _) in results.items()}
    flat["dv_over_aedat_source"] = round(results["dv_source"][0] / base, 4)
    flat["nmnist_decode_over_aedat_source"] = round(results["nmnist_decode"][0] / base, 4)
    if args.json:
        Path(args.json).write_text(json.dumps(flat, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
