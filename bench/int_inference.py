"""Quantised inference: int8 event kernel (the Loihi export's integers) against float32, speed and accuracy.

    BIOGRAD_DATA=../shared/data .venv/bin/python bench/int_inference.py [--json PATH]

1. Trains a float32 BioGrad network on nmnist-1k Train (2312-500-100-10, batch 32,
   ``--nmnist-epochs``) and one on MNIST train digits (784-500-100-10, batch 128,
   ``--mnist-train`` digits, one epoch), or loads them (``--nmnist-ckpt``/``--mnist-ckpt``).
2. Quantises each with ``deploy.quantize.quantize_network`` (the chip's integers) and runs
   them with ``learner.int_inference`` through ``deploy.cpu_inference``.
3. Accuracy: float32 learner vs integer kernel on nmnist-1k Test and the MNIST test set
   (the same binned/rate-coded input for both), and how many predictions agree.
4. Speed, one core (BLAS/Numba threads pinned to 1), raw N-MNIST events per second with the
   binning included, all rows side by side in one run (taking turns in every round), best of
   ``--repeat``: float32 event engine (encode + predict), int8 via the CSR raster (encode +
   counts), int8 fused (events straight into the kernel, one call per sample) and int8 fused
   packed (one call for the whole set). Wall time and CPU time (``process_time``) are both given: on a shared
   machine the CPU-time rate is the steadier one.
5. Exactness: on every timed sample the fused, packed and raster paths give the same counts,
   and on a few the NumPy integer oracle of ``deploy.inference.reference_counts`` agrees.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from biograd.core.data import data_root  # noqa: E402
from biograd.core.events import NMNIST_GEOMETRY  # noqa: E402
from biograd.deploy.cpu_inference import cpu_network  # noqa: E402
from biograd.deploy.inference import reference_counts  # noqa: E402
from biograd.deploy.params import NetworkParams  # noqa: E402
from biograd.deploy.quantize import quantize_network  # noqa: E402
from biograd.learner.config import MNIST_LEARNER, NMNIST_LEARNER  # noqa: E402
from biograd.learner.encoding import NMNIST_BIN_US, encode_nmnist, mnist_rate_raster  # noqa: E402
from biograd.learner.network import BioGradLearner  # noqa: E402
from biograd.sources.mnist import read_idx  # noqa: E402
from biograd.sources.nmnist import list_split, read_nmnist  # noqa: E402


def train(cfg, samples, epochs, seed=0):
    learner = BioGradLearner(cfg)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        for i in rng.permutation(len(samples)):
            learner.train_sample(*samples[i])
        learner.flush()
    return learner


def accuracy(name, learner, rasters, labels, out):
    fixed = quantize_network(NetworkParams.from_learner(learner))
    net = cpu_network(fixed, learner.config.timesteps)
    pf = np.array([learner.predict(r)[0] for r in rasters])
    pi = np.array([net.predict(r)[0] for r in rasters])
    labels = np.asarray(labels)
    out[f"{name}_float32_accuracy"] = float(np.mean(pf == labels))
    out[f"{name}_int8_accuracy"] = float(np.mean(pi == labels))
    out[f"{name}_int8_minus_float32_points"] = 100 * (out[f"{name}_int8_accuracy"] - out[f"{name}_float32_accuracy"])
    out[f"{name}_same_prediction"] = float(np.mean(pf == pi))
    out[f"{name}_test_samples"] = len(labels)
    return net, fixed


def timed(rows, repeat):
    """Best wall and CPU time of each row; the rows take turns in every round, so load from
    other processes on a shared machine falls on all of them alike."""
    best = {name: [float("inf"), float("inf")] for name in rows}
    for _ in range(repeat):
        for name, fn in rows.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            best[name][0] = min(best[name][0], time.perf_counter() - t0)
            best[name][1] = min(best[name][1], time.process_time() - c0)
    return best


def speed(learner, net, fixed, events, repeat, out):
    n_events = sum(len(e) for e in events)
    packed = np.concatenate(events)
    starts = np.cumsum([0] + [len(e) for e in events])
    g, b = NMNIST_GEOMETRY, NMNIST_BIN_US
    fused = np.array([net.counts_events(e, g, b) for e in events])
    assert np.array_equal(fused, np.array([net.counts(encode_nmnist(e)) for e in events])), "fused != raster"
    assert np.array_equal(fused, net.counts_events_packed(packed, starts, g, b)), "packed != per sample"
    params = NetworkParams.from_learner(learner)
    for i in range(3):
        assert np.array_equal(fused[i], reference_counts(params, encode_nmnist(events[i]), fixed)), "kernel != oracle"
    out["int8_paths_bit_identical"] = 1
    rows = {
        "float32_event_engine": lambda: [learner.predict(encode_nmnist(e)) for e in events],
        "int8_raster": lambda: [net.counts(encode_nmnist(e)) for e in events],
        "int8_fused": lambda: [net.counts_events(e, g, b) for e in events],
        "int8_fused_packed": lambda: net.counts_events_packed(packed, starts, g, b),
    }
    res = timed(rows, repeat)
    base_wall, base_cpu = res["float32_event_engine"]
    print(f"\nN-MNIST inference, {len(events)} samples, {n_events / len(events):.0f} raw events/sample, one core")
    print(f"{'path':>22} {'M ev/s wall':>12} {'M ev/CPU-s':>11} {'cpu/wall':>9} {'x float32 (CPU)':>16}")
    for name, (wall, cpu) in res.items():
        out[f"{name}_events_per_s"] = n_events / wall
        out[f"{name}_events_per_cpu_s"] = n_events / cpu
        out[f"{name}_speedup_vs_float32_cpu"] = base_cpu / cpu
        print(
            f"{name:>22} {n_events / wall / 1e6:>12.1f} {n_events / cpu / 1e6:>11.1f} {cpu / wall:>9.2f} "
            f"{base_cpu / cpu:>16.2f}"
        )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nmnist-epochs", type=int, default=15)
    p.add_argument("--mnist-train", type=int, default=20000, help="MNIST train digits for the one training epoch")
    p.add_argument("--nmnist-ckpt", help="use this float checkpoint instead of training (saved there if missing)")
    p.add_argument("--mnist-ckpt", help="as --nmnist-ckpt, for MNIST")
    p.add_argument("--speed-samples", type=int, default=1000, help="nmnist-1k Train samples timed")
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--skip-mnist", action="store_true")
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    root = data_root()
    out: dict[str, float] = {}

    nroot = root / "nmnist-1k"
    train_items = list_split(nroot, "train")
    train_events = [read_nmnist(f) for f, _ in train_items]
    test_items = list_split(nroot, "test")
    test_rasters = [encode_nmnist(read_nmnist(f)) for f, _ in test_items]

    def load_or_train(path, make):
        if path and Path(path).exists():
            return BioGradLearner.load(path)
        learner = make()
        if path:
            learner.save(path)
        return learner

    t0 = time.perf_counter()
    nmnist = load_or_train(
        args.nmnist_ckpt,
        lambda: train(
            replace(NMNIST_LEARNER, batch_size=32),
            [(encode_nmnist(e), y) for e, (_, y) in zip(train_events, train_items)],
            args.nmnist_epochs,
        ),
    )
    print(f"N-MNIST network ready in {time.perf_counter() - t0:.0f} s")
    net, fixed = accuracy("nmnist1k_test", nmnist, test_rasters, [y for _, y in test_items], out)
    speed(nmnist, net, fixed, train_events[: args.speed_samples], args.repeat, out)

    if not args.skip_mnist:
        mroot = root / "mnist"
        images = read_idx(mroot / "train-images-idx3-ubyte.gz")
        labels = read_idx(mroot / "train-labels-idx1-ubyte.gz")
        rng = np.random.default_rng(0)
        pick = rng.permutation(len(labels))[: args.mnist_train]
        t0 = time.perf_counter()

        def make_mnist():
            enc = np.random.default_rng(1)
            data = [(mnist_rate_raster(images[i], MNIST_LEARNER.timesteps, enc), int(labels[i])) for i in pick]
            return train(MNIST_LEARNER, data, 1)

        mnist = load_or_train(args.mnist_ckpt, make_mnist)
        print(f"MNIST network ready in {time.perf_counter() - t0:.0f} s")
        timg = read_idx(mroot / "t10k-images-idx3-ubyte.gz")
        tlab = read_idx(mroot / "t10k-labels-idx1-ubyte.gz")
        enc = np.random.default_rng(2)
        rasters = [mnist_rate_raster(timg[i], MNIST_LEARNER.timesteps, enc) for i in range(len(tlab))]
        accuracy("mnist_test", mnist, rasters, [int(y) for y in tlab], out)

    print(f"\n{'test set':>14} {'samples':>8} {'float32':>8} {'int8':>8} {'int8-float (pt)':>16} {'same pred':>10}")
    for name in ("nmnist1k_test", "mnist_test"):
        if f"{name}_int8_accuracy" in out:
            print(
                f"{name:>14} {out[f'{name}_test_samples']:>8} {out[f'{name}_float32_accuracy']:>8.4f} "
                f"{out[f'{name}_int8_accuracy']:>8.4f} {out[f'{name}_int8_minus_float32_points']:>16.2f} "
                f"{out[f'{name}_same_prediction']:>10.4f}"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
