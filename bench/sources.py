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
  scan, conversion to EVENT_DTYPE, per-packet validation) with each backend;
* ``faery_aedat_raw`` / ``faery_aedat_source``: faery's AEDAT4 decoder alone and behind
  the project (``source.backend = "faery"``).

``--formats``: the recording converted by faery's writers to EVT3, EVT2, DAT, ES,
AEDAT4 and CSV (into a temporary folder), then decoded by faery alone
(``faery.events_stream_from_file``, packets counted) and through the project
(:class:`sources.formats.EventFile`: detection, header, view conversion, per-event
checks); the ratio project / faery is the figure to hold >= 0.8.

``--udp``: a sender process paces the recording (tiled, time shifted) into UDP
datagrams of ``--udp-packet`` events to loopback at rising rates; the project's
UDP source (faery's receiver) counts what arrives. A rate is *held* when every
event arrived and the kernel dropped no datagram; the figure reported is the
highest rate up to which every rate was held.
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


def timed_pair(first, second, repeat: int) -> tuple[tuple[float, int], tuple[float, int]]:
    """Like :func:`timed` for two functions, alternating their passes so load changes hit both alike."""
    first(), second()
    times: tuple[list, list] = ([], [])
    counts = [0, 0]
    for _ in range(repeat):
        for k, fn in enumerate((first, second)):
            t0 = time.perf_counter()
            counts[k] = fn()
            times[k].append(time.perf_counter() - t0)
    return (statistics.median(times[0]), counts[0]), (statistics.median(times[1]), counts[1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="data root (default $BIOGRAD_DATA)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--aedat-passes", type=int, default=20, help="file passes per timed AEDAT4 run")
    parser.add_argument("--json", metavar="PATH", help="write a flat JSON object name -> number")
    parser.add_argument("--formats", action="store_true", help="also every faery format: project vs faery alone")
    parser.add_argument("--udp", action="store_true", help="also the UDP source on loopback at rising rates")
    parser.add_argument("--udp-rates", default="0.5,1,2,4,8,12", help="M events/s, comma-separated")
    parser.add_argument("--udp-packet", type=int, default=1000, help="events per UDP datagram")
    parser.add_argument("--udp-seconds", type=float, default=1.0, help="seconds sent per rate")
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

    def faery_aedat_raw():
        import faery

        return sum(len(p) for _ in range(args.aedat_passes) for p in faery.events_stream_from_file(davis))

    cases = {
        "nmnist_decode": nmnist_decode,
        "nmnist_read": nmnist_read,
        "aedat_raw": aedat_raw,
        "faery_aedat_raw": faery_aedat_raw,
        "dv_raw": dv_raw,
        "aedat_source": source("aedat"),
        "faery_aedat_source": source("faery"),
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
    flat["faery_aedat_raw_over_aedat_raw"] = round(results["faery_aedat_raw"][0] / results["aedat_raw"][0], 4)
    if args.formats:
        flat.update(bench_formats(davis, args.repeat, args.aedat_passes))
    if args.udp:
        flat.update(bench_udp(davis, [float(r) for r in args.udp_rates.split(",")], args.udp_packet, args.udp_seconds))
    if args.json:
        Path(args.json).write_text(json.dumps(flat, indent=1) + "\n")
    return 0


FORMAT_FILES = {
    "evt3": "rec.raw",
    "evt2": "rec2.raw",
    "dat": "rec.dat",
    "es": "rec.es",
    "aedat4": "rec.aedat4",
    "aedat4-aedat": "rec.aedat4",  # the project's default AEDAT4 reader (aedat) against faery alone
    "csv": "rec.csv",
}


def bench_formats(davis: Path, repeat: int, passes: int) -> dict:
    """Decode events/s per format: faery alone vs the project's EventFile, side by side."""
    import tempfile

    import faery

    from biograd.core.events import to_faery
    from biograd.sources.formats import EventFile

    events = AedatRecording(davis).read_all()
    out, rows = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, name in FORMAT_FILES.items():
            path = Path(tmp) / name
            options = {"version": fmt} if fmt in ("evt2", "evt3") else {}
            if not path.exists():
                faery.events_stream_from_array(to_faery(events), (346, 260)).to_file(path, **options)
            file_passes = max(1, passes // 10) if fmt == "csv" else passes

            def alone(path=path, fmt=fmt, n=file_passes):
                kind = "evt" if fmt.startswith("evt") else ("aedat" if fmt.startswith("aedat4") else fmt)
                extra = {"version_fallback": fmt} if fmt.startswith("evt") else {}
                return sum(
                    len(p) for _ in range(n) for p in faery.events_stream_from_file(path, file_type=kind, **extra)
                )

            def project(path=path, n=file_passes, fmt=fmt):
                # faery's decoder as "alone" (the ratio is the project's overhead), except aedat4-aedat
                backend = "aedat" if fmt == "aedat4-aedat" else "faery"
                return sum(p.size for _ in range(n) for p in EventFile(path, backend=backend).packets())

            (t_a, n_a), (t_p, n_p) = timed_pair(alone, project, repeat)
            assert n_a == n_p, (fmt, n_a, n_p)
            rows.append((fmt, n_a / t_a, n_p / t_p))
            out[f"format_{fmt}_faery_events_per_s"] = round(n_a / t_a)
            out[f"format_{fmt}_project_events_per_s"] = round(n_p / t_p)
            out[f"format_{fmt}_project_over_faery"] = round((n_p / t_p) / (n_a / t_a), 4)
    print(f"\n{'format':<14}{'faery alone ev/s':>18}{'project ev/s':>16}{'project/faery':>15}")
    for fmt, a, p in rows:
        print(f"{fmt:<14}{a:>18,.0f}{p:>16,.0f}{p / a:>14.2f}x")
    return out


def _udp_sender(port: int, rate: float, seconds: float, per_packet: int, path: str, result) -> None:
    """Pace the recording, tiled with shifted time, at ``rate`` ev/s to 127.0.0.1:port (own process)."""
    import socket

    import numpy as np

    base = AedatRecording(path).read_all()
    total = int(rate * seconds)
    reps = -(-total // base.size)
    span = int(base["t"][-1] - base["t"][0]) + 1
    tiled = np.concatenate([base] * reps)[:total]
    tiled["t"] = tiled["t"] - base["t"][0] + np.repeat(np.arange(reps) * span, base.size)[:total]
    data = tiled.tobytes()
    size = per_packet * 13
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    start = time.perf_counter()
    sent = 0
    for off in range(0, len(data), size):
        due = start + (off // 13) / rate
        while time.perf_counter() < due:
            pass
        sock.sendto(data[off : off + size], ("127.0.0.1", port))
        sent += min(size, len(data) - off) // 13
    result.put((sent, sent / (time.perf_counter() - start)))


def bench_udp(davis: Path, rates: list, per_packet: int, seconds: float) -> dict:
    """The UDP source at rising rates on loopback: sent, received, kernel drops, held or not."""
    import multiprocessing as mp

    from biograd.core.events import DAVIS346_GEOMETRY
    from biograd.sources.udp import UdpStream

    out, rows = {}, []
    ctx = mp.get_context("spawn")
    held = 0.0
    for rate in rates:
        stream = UdpStream("127.0.0.1", 0, DAVIS346_GEOMETRY)
        result = ctx.Queue()
        sender = ctx.Process(
            target=_udp_sender, args=(stream.port, rate * 1e6, seconds, per_packet, str(davis), result)
        )
        received = 0
        packets = stream.packets(heartbeat=0.2)
        sender.start()
        sent_info = None
        idle = 0
        while True:
            packet = next(packets)
            received += packet.size
            if sent_info is None and not result.empty():
                sent_info = result.get()
            if packet.size == 0:
                idle += 1
                if sent_info is not None and (received >= sent_info[0] or idle > 5):
                    break
            else:
                idle = 0
        sender.join()
        stream.close()
        sent, achieved = sent_info
        dropped = stream.stats.dropped
        ok = received == sent and dropped == 0
        failed_before = any(not row[-1] for row in rows)
        held = achieved / 1e6 if ok and not failed_before else held  # every rate up to this one held
        rows.append((rate, achieved / 1e6, sent, received, dropped, ok))
        out[f"udp_{rate:g}M_achieved_send_Mev_per_s"] = round(achieved / 1e6, 3)
        out[f"udp_{rate:g}M_lost_events"] = sent - received
        out[f"udp_{rate:g}M_kernel_drops"] = dropped
    print(f"\n{'target M ev/s':>14}{'sent M ev/s':>13}{'sent':>12}{'received':>12}{'kernel drops':>14}  held")
    for rate, achieved, sent, received, dropped, ok in rows:
        print(f"{rate:>14g}{achieved:>13.2f}{sent:>12,}{received:>12,}{dropped:>14,}  {'yes' if ok else 'no'}")
    print(
        f"highest rate held without a drop (it and every lower rate): {held:.2f} M ev/s "
        f"({per_packet} events per datagram)"
    )
    out["udp_highest_held_Mev_per_s"] = round(held, 3)
    return out


if __name__ == "__main__":
    sys.exit(main())
