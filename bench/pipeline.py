"""Pipeline benchmark: the ZeroMQ transport alone, and the full pipeline against the bare learner.

Part 1 -- transport: a source process (a thread for inproc) sends samples of N events
through :class:`pipeline.transport.Sender` (SAMPLE_START, one EVENTS packet, SAMPLE_END);
the receiving :class:`pipeline.transport.Receiver` validates and reassembles every one.
Reported: events/s for inproc, ipc, tcp at N = 1 000, 10 000, 100 000.

Part 2 -- steady state: ``--epochs`` passes over nmnist-1k Train (10 000 samples by default)
trained (a) by a plain loop (read + decode the files, bin, train, flush per epoch) and (b) by
``replay`` over inproc, ipc and tcp (source thread / child process, ZeroMQ, learner stage,
metrics sink). Each run's wall time splits into start-up and steady state (timed from the
500th sample on); reported: steady samples/s, steady time per sample relative to the plain
loop, start-up seconds, and whether the final weights equal the plain loop's bit for bit.
Runs alternate so they share the machine's load; the best steady state of ``--repeat``.

    python bench/pipeline.py [--epochs 10] [--repeat 2] [--skip-transport] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from biograd.core.events import Geometry, make_events  # noqa: E402
from biograd.core.protocol import Phase  # noqa: E402
from biograd.core.transport import Receiver, Sender, WireSample  # noqa: E402

GEOMETRY = Geometry(346, 260)
SIZES = {1_000: 3_000, 10_000: 800, 100_000: 100}  # events per sample -> samples sent
REPEATS = 3  # best of: the machine is shared, the best run is the least disturbed one


def _events(n: int) -> np.ndarray:
    rng = np.random.default_rng(n)
    return make_events(
        np.arange(n, dtype=np.int64),
        rng.integers(0, GEOMETRY.width, n),
        rng.integers(0, GEOMETRY.height, n),
        rng.integers(0, 2, n),
    )


def _send(address: str, n_events: int, n_samples: int, ctx=None) -> None:
    events = _events(n_events)
    sender = Sender(address, ctx or zmq.Context(), name="bench", ack_address=None)
    for i in range(n_samples):
        sender.send_sample(f"s{i}", None, GEOMETRY, events, Phase.LIVE, 0, i)
    sender.close(timeout_s=30)


def transport_rate(transport: str, n_events: int, n_samples: int, folder: str) -> float:
    """Events/s received, validated and reassembled (timed from the first to the last sample)."""
    ctx = zmq.Context()
    address = {"inproc": "inproc://bench", "ipc": f"ipc://{folder}/bench-{n_events}", "tcp": "tcp://127.0.0.1:0"}[
        transport
    ]
    receiver = Receiver(address, ctx=ctx, hwm=1000)
    if transport == "tcp":
        address = receiver.input.getsockopt(zmq.LAST_ENDPOINT).decode()
    if transport == "inproc":
        worker = threading.Thread(target=_send, args=(address, n_events, n_samples, ctx))
    else:
        worker = mp.get_context("fork").Process(target=_send, args=(address, n_events, n_samples))
    worker.start()
    got = 0
    t0 = None
    while got < n_samples:
        for item in receiver.poll(1000):
            if isinstance(item, WireSample):
                if t0 is None:
                    t0 = time.perf_counter()
                got += 1
    elapsed = time.perf_counter() - t0
    worker.join()
    receiver.close()
    ctx.destroy(0)
    # The first sample starts the clock, so n - 1 samples' events were timed.
    return (n_samples - 1) * n_events / elapsed


def _metrics_times(run_dir: Path) -> list[tuple[int, float]]:
    """(samples trained, wall time) of every metrics record of a run."""
    out = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("type") == "metrics":
            out.append((int(rec["samples"]), float(rec["time"])))
    return out


def _steady(marks: list[tuple[int, float]], warm: int) -> tuple[int, float]:
    """(samples, seconds) from the first mark at >= ``warm`` samples to the last mark."""
    first = next(m for m in marks if m[0] >= warm)
    return marks[-1][0] - first[0], marks[-1][1] - first[1]


def overhead(data_root: str, epochs: int, folder: str, repeats: int = 2, warm: int = 500) -> dict:
    """Steady state: ``epochs`` passes over nmnist-1k Train, plain loop vs replay over each transport.

    Each run's time splits into start-up and steady state: the steady-state rate is timed from
    the ``warm``-th sample to the last (pipeline: the learner's metrics records, every 100
    samples; plain loop: the same sample counts), and start-up = total - samples / rate.
    The runs alternate (plain, inproc, ipc, tcp, plain, ...) so they share the machine's load.
    """
    from biograd.learner.network import BioGradLearner
    from biograd.pipeline.encoder import Encoder
    from biograd.pipeline.run_config import build_run_config
    from biograd.pipeline.runner import replay
    from biograd.sources.stage import open_split

    settings = [
        f"source.epochs={epochs}",
        "pipeline.progress=false",
        "sinks.plots=false",
        "pipeline.metrics_every=100",
        "pipeline.evaluate=false",  # train only: the test split is not part of the plain loop
        "sinks.checkpoint_every=0",
    ]
    warm_cfg = build_run_config(None, settings + [f"sinks.run_dir={folder}/warm", "source.limit=20", "source.epochs=1"])
    replay(warm_cfg, data_root)  # Numba compiles (cache) outside the timing

    cfg = build_run_config(None, settings + [f"sinks.run_dir={folder}/direct"])

    def plain():
        encode = Encoder(cfg)
        t0 = time.perf_counter()
        learner = BioGradLearner(cfg.learner)
        dataset = open_split(cfg, data_root, "train")
        marks = []
        for epoch in range(epochs):
            for i, s in enumerate(dataset.iter_epoch(epoch)):
                learner.train_sample(
                    encode(WireSample(s.sample_id, s.label, s.geometry, s.events, Phase.TRAIN, epoch, i, 0)), s.label
                )
                if learner.samples_seen % 100 == 0:
                    marks.append((learner.samples_seen, time.time()))
            learner.flush()  # as the learner stage does at the end of each train split
        marks.append((learner.samples_seen, time.time()))
        return time.perf_counter() - t0, marks, learner

    def piped(transport, k):
        run = build_run_config(
            None,
            settings
            + [
                f"sinks.run_dir={folder}/{transport}-{k}",
                f"pipeline.transport={transport}",
                f"pipeline.ipc_dir={folder}",
                "pipeline.port=47311",
            ],
        )
        t0 = time.perf_counter()
        summary = replay(run, data_root)
        return time.perf_counter() - t0, _metrics_times(Path(folder) / f"{transport}-{k}"), summary["learner"]

    runs = {"direct": plain, "inproc": None, "ipc": None, "tcp": None}
    best: dict[str, tuple[float, float, int, float]] = {}
    reference = None
    out: dict[str, float] = {}
    for k in range(repeats):
        for name in runs:
            total, marks, learner = plain() if name == "direct" else piped(name, k)
            n, secs = _steady(marks, warm)
            n_total = marks[-1][0]
            startup = total - n_total * secs / n
            if name == "direct":
                reference = [w.copy() for w in learner.weights]
            else:
                same = all(np.array_equal(a, b) for a, b in zip(learner.weights, reference))
                out[f"replay_{name}_same_weights"] = min(out.get(f"replay_{name}_same_weights", 1), int(same))
            if name not in best or secs / n < best[name][1] / best[name][2]:
                best[name] = (total, secs, n, startup)
    out["samples"] = marks[-1][0]
    base = best["direct"][1] / best["direct"][2]
    for name, (total, secs, n, startup) in best.items():
        key = "direct" if name == "direct" else f"replay_{name}"
        out[f"{key}_steady_samples_per_s"] = n / secs
        out[f"{key}_startup_s"] = startup
        out[f"{key}_total_s"] = total
        if name != "direct":
            out[f"{key}_steady_time_ratio"] = (secs / n) / base
            out[f"{key}_total_time_ratio"] = total / best["direct"][0]
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10, help="passes over nmnist-1k Train (1 000 samples each)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each row (best steady state kept)")
    parser.add_argument("--skip-transport", action="store_true", help="only the pipeline-vs-plain-loop part")
    parser.add_argument("--data", default=os.environ.get("BIOGRAD_DATA", ""), help="data root (default $BIOGRAD_DATA)")
    parser.add_argument("--json", metavar="PATH", help="write the figures as one flat JSON object")
    args = parser.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.WARNING)
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="biograd-bench-") as folder:
        print("transport alone: events/s received, validated and reassembled (source in another process for ipc/tcp)")
        print(f"{'events/sample':>14} {'inproc':>14} {'ipc':>14} {'tcp':>14} {'ipc/inproc':>11} {'tcp/inproc':>11}")
        for n_events, n_samples in ({} if args.skip_transport else SIZES).items():
            rates = {
                t: max(transport_rate(t, n_events, n_samples, folder) for _ in range(REPEATS))
                for t in ("inproc", "ipc", "tcp")
            }
            for t, r in rates.items():
                results[f"transport_{t}_events_per_s_{n_events}"] = r
            print(
                f"{n_events:>14,} {rates['inproc']:>14,.0f} {rates['ipc']:>14,.0f} {rates['tcp']:>14,.0f} "
                f"{rates['ipc'] / rates['inproc']:>11.2f} {rates['tcp'] / rates['inproc']:>11.2f}"
            )
        if args.data:
            o = overhead(args.data, args.epochs, folder, args.repeat)
            results.update(o)
            from biograd.pipeline.run_config import build_run_config

            lc = build_run_config(None, []).learner
            print(
                f"\nfull pipeline vs the plain loop, {o['samples']:.0f} N-MNIST train samples ({args.epochs} epochs of "
                f"nmnist-1k), default run settings: {'-'.join(map(str, lc.layer_sizes))}, batch {lc.batch_size}, "
                f"{lc.optimizer}, sleep every {lc.sleep_every or lc.batch_size} samples"
            )
            print(
                f"{'run':>16} {'steady samples/s':>17} {'steady time ratio':>18} {'start-up s':>11} "
                f"{'total s':>8} {'same weights':>13}"
            )
            d = o["direct_steady_samples_per_s"]
            print(
                f"{'plain loop':>16} {d:>17.1f} {1.0:>18.3f} {o['direct_startup_s']:>11.2f} {o['direct_total_s']:>8.1f}"
            )
            for t in ("inproc", "ipc", "tcp"):
                k = f"replay_{t}"
                print(
                    f"{'replay ' + t:>16} {o[f'{k}_steady_samples_per_s']:>17.1f} {o[f'{k}_steady_time_ratio']:>18.3f} "
                    f"{o[f'{k}_startup_s']:>11.2f} {o[f'{k}_total_s']:>8.1f} "
                    f"{'yes' if o[f'{k}_same_weights'] else 'NO':>13}"
                )
        else:
            print("\n(no --data / $BIOGRAD_DATA: pipeline overhead part skipped)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
