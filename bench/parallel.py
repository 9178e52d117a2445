"""Both cores for training: data-parallel batches, a full N-MNIST-sized epoch, streaming speed.

    BIOGRAD_DATA=../shared/data .venv/bin/python bench/parallel.py [--json PATH]

1. ``batch``: the same nmnist-1k samples (2312-500-100-10, batch 128, sleep off) trained by
   the one-sample loop (``train_sample``) and by ``train_batch`` on 1 and on 2 threads, runs
   alternating, best of ``--repeat``; wall time, process CPU time, and whether the weights
   equal the loop's bit for bit.
2. ``epoch``: ``--epoch-samples`` (60 000 = N-MNIST's training set size) samples, nmnist-1k
   Train repeated in a fresh seeded order each pass, binned once beforehand, trained with
   ``train_batch`` (batch ``--epoch-batch``, sleep after every batch); the time of the sleeps
   is reported apart. Default 2 threads.
3. ``stream``: batch 1 on one core with each optimizer (SGD, RMSprop, Adam, layer RMS; the
   streaming preset: sleep every 128 samples), samples/s from raw events (binning included);
   and the same SGD loop with the binning moved to a second thread (what the second core can
   take on in streaming); and the preset (RMSprop) with the binning thread and the sleep's noise
   samples on 2 threads (``rmsprop_second_core``).

Every timing prints wall and CPU time: on a shared machine wall-time ratios are only
meaningful between rows of one run, and the CPU time shows how much of a core a row had.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # sleep's GEMMs on one core: the threads are ours

import argparse  # noqa: E402
import json  # noqa: E402
import queue  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from biograd.core.data import data_root  # noqa: E402
from biograd.learner.config import NMNIST_LEARNER, NMNIST_STREAMING  # noqa: E402
from biograd.learner.encoding import encode_nmnist  # noqa: E402
from biograd.learner.network import BioGradLearner  # noqa: E402
from biograd.sources.nmnist import list_split, read_nmnist  # noqa: E402


def clock():
    return time.perf_counter(), time.process_time()


def since(start):
    return time.perf_counter() - start[0], time.process_time() - start[1]


def bench_batch(rasters, labels, repeat, out):
    cfg = replace(NMNIST_LEARNER, batch_size=128, sleep=False)
    BioGradLearner(replace(cfg, threads=2)).train_batch(rasters[:3], labels[:3])  # compile
    ref = None
    best: dict[str, tuple[float, float]] = {}
    same = {}
    for _ in range(repeat):
        for name, threads in (("loop", 1), ("batch_1thread", 1), ("batch_2threads", 2)):
            learner = BioGradLearner(replace(cfg, threads=threads))
            t = clock()
            if name == "loop":
                for r, y in zip(rasters, labels):
                    learner.train_sample(r, y)
            else:
                learner.train_batch(rasters, labels)
            wall, cpu = since(t)
            if name == "loop":
                ref = [w.copy() for w in learner.weights]
            else:
                same[name] = all(np.array_equal(a, b) for a, b in zip(learner.weights, ref))
            if name not in best or wall < best[name][0]:
                best[name] = (wall, cpu)
    n = len(rasters)
    print(f"\nbatch training, {n} nmnist-1k samples, 2312-500-100-10, batch 128, sleep off (pre-binned)")
    print(f"{'run':>16} {'samples/s':>10} {'x loop':>7} {'CPU s':>7} {'cpu/wall':>9} {'same weights':>13}")
    for name, (wall, cpu) in best.items():
        out[f"train_{name}_samples_per_s"] = n / wall
        out[f"train_{name}_speedup"] = best["loop"][0] / wall
        out[f"train_{name}_cpu_s"] = cpu
        if name != "loop":
            out[f"train_{name}_same_weights"] = int(same[name])
        print(
            f"{name:>16} {n / wall:>10.0f} {best['loop'][0] / wall:>7.2f} {cpu:>7.2f} {cpu / wall:>9.2f} "
            f"{('yes' if same[name] else 'NO') if name in same else '-':>13}"
        )


def bench_epoch(rasters, labels, n_samples, batch, threads, out):
    cfg = replace(NMNIST_LEARNER, batch_size=batch, threads=threads)
    learner = BioGradLearner(cfg)
    learner.train_batch(rasters[:2], labels[:2])
    learner = BioGradLearner(cfg)
    slept = [0.0]
    plain_sleep = learner.sleep

    def timed_sleep():
        t = time.perf_counter()
        try:
            return plain_sleep()
        finally:
            slept[0] += time.perf_counter() - t

    learner.sleep = timed_sleep  # type: ignore[method-assign]
    rng = np.random.default_rng(0)
    done = 0
    t = clock()
    while done < n_samples:
        order = rng.permutation(len(rasters))[: n_samples - done]
        # one call per batch (as a data loader would hand them over)
        for a in range(0, len(order), batch):
            pick = order[a : a + batch]
            learner.train_batch([rasters[i] for i in pick], [labels[i] for i in pick])
        done += len(order)
    learner.flush()
    wall, cpu = since(t)
    out.update(
        {
            "epoch_samples": n_samples,
            "epoch_batch": batch,
            "epoch_threads": threads,
            "epoch_wall_s": wall,
            "epoch_cpu_s": cpu,
            "epoch_sleep_wall_s": slept[0],
            "epoch_sleeps": learner.sleeps,
            "epoch_samples_per_s": n_samples / wall,
        }
    )
    print(
        f"\nepoch: {n_samples} samples (nmnist-1k repeated), batch {batch}, sleep after every batch, "
        f"{threads} threads: {wall:.1f} s wall ({n_samples / wall:.0f} samples/s), {cpu:.1f} s CPU, "
        f"of which {learner.sleeps} sleeps {slept[0]:.1f} s wall"
    )


def bench_stream(events, labels, n, repeat, out):
    base = replace(NMNIST_STREAMING, threads=1)  # one core: the sleep's noise samples too
    rows = {opt: replace(base, optimizer=opt) for opt in ("sgd", "rmsprop", "adam", "layer_rms")}
    two_cores = replace(NMNIST_STREAMING, threads=2)
    for cfg in rows.values():
        BioGradLearner(cfg).train_sample(encode_nmnist(events[0]), labels[0])
    events, labels = events[:n], labels[:n]

    def loop(cfg):
        learner = BioGradLearner(cfg)
        for e, y in zip(events, labels):
            learner.train_sample(encode_nmnist(e), y)

    def threaded(cfg):
        # binning on a second thread (the Numba binning kernel releases the GIL)
        learner = BioGradLearner(cfg)
        q: queue.Queue = queue.Queue(maxsize=64)

        def produce():
            for e, y in zip(events, labels):
                q.put((encode_nmnist(e), y))
            q.put(None)

        worker = threading.Thread(target=produce, daemon=True)
        worker.start()
        while (item := q.get()) is not None:
            learner.train_sample(*item)
        worker.join()

    best: dict[str, tuple[float, float]] = {}
    for _ in range(repeat):
        for opt, cfg in rows.items():
            t = clock()
            loop(cfg)
            r = since(t)
            if opt not in best or r[0] < best[opt][0]:
                best[opt] = r
        for name, run in (
            ("sgd_binning_thread", lambda: threaded(rows["sgd"])),
            # what the second core takes on in streaming: binning, and the sleep's noise samples
            ("rmsprop_second_core", lambda: threaded(two_cores)),
        ):
            t = clock()
            run()
            r = since(t)
            if name not in best or r[0] < best[name][0]:
                best[name] = r
    print(f"\nstreaming, batch 1, {n} nmnist-1k samples from raw events, sleep every 128 samples")
    print(f"{'optimizer':>20} {'samples/s':>10} {'CPU s':>7} {'cpu/wall':>9} {'samples/CPU-s':>14}")
    for name, (wall, cpu) in best.items():
        out[f"stream_{name}_samples_per_s"] = n / wall
        out[f"stream_{name}_samples_per_cpu_s"] = n / cpu
        print(f"{name:>20} {n / wall:>10.0f} {cpu:>7.2f} {cpu / wall:>9.2f} {n / cpu:>14.0f}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("parts", nargs="*", default=["batch", "epoch", "stream"], choices=["batch", "epoch", "stream"])
    p.add_argument("--samples", type=int, default=1024, help="samples of the batch part")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--epoch-samples", type=int, default=60000)
    p.add_argument("--epoch-batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--stream-samples", type=int, default=1000)
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    items = list_split(data_root() / "nmnist-1k", "train")
    events = [read_nmnist(f) for f, _ in items]
    labels = [int(y) for _, y in items]
    rasters = [encode_nmnist(e) for e in events]
    out: dict[str, float] = {}
    reps = (args.samples + len(rasters) - 1) // len(rasters)
    if "batch" in args.parts:
        bench_batch((rasters * reps)[: args.samples], (labels * reps)[: args.samples], args.repeat, out)
    if "stream" in args.parts:
        bench_stream(events, labels, args.stream_samples, args.repeat, out)
    if "epoch" in args.parts:
        bench_epoch(rasters, labels, args.epoch_samples, args.epoch_batch, args.threads, out)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
