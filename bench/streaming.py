"""Streaming throughput: samples learned per CPU second at batch 1, per optimizer, side by side.

Every row trains the same N-MNIST (and MNIST) samples from their rasters with the streaming preset
(an update after every sample, a sleep every ``sleep_every`` samples) and only the optimizer
changed, so the ratios between rows hold on a loaded machine. One process, one thread (BLAS /
Numba pinned to 1 before NumPy loads). CPU time (``process_time``) is reported, and the wall rate
with cpu/wall, so a shared core shows.

    BIOGRAD_DATA=../shared/data nice -n 10 .venv/bin/python -m bench.streaming [--samples 300] [--json PATH]
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from bench.exp_data import load_mnist, load_nmnist_rasters
from biograd.core.data import data_root, find_dataset
from biograd.core.errors import BioGradError
from biograd.learner.config import MNIST_STREAMING, NMNIST_STREAMING
from biograd.learner.encoding import mnist_rate_raster
from biograd.learner.network import BioGradLearner

OPTIMIZERS = ("sgd", "rmsprop", "adam", "layer_rms")


def measure(cfg, rasters, labels, repeats: int) -> tuple[float, float]:
    """Best of ``repeats`` passes: (samples per CPU second, samples per wall second); warm-up first."""
    best_cpu = best_wall = 0.0
    for _ in range(repeats):
        net = BioGradLearner(cfg)
        for r, y in zip(rasters[:10], labels[:10]):  # compile / warm caches
            net.train_sample(r, int(y))
        c0, w0 = time.process_time(), time.perf_counter()
        for r, y in zip(rasters, labels):
            net.train_sample(r, int(y))
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        best_cpu, best_wall = max(best_cpu, len(rasters) / cpu), max(best_wall, len(rasters) / wall)
    return best_cpu, best_wall


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data")
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    root = data_root(args.data)
    tr, ytr = load_nmnist_rasters(find_dataset(root, "nmnist-1k", "nmnist"), "Train", limit=args.samples, seed=0)
    sets = {"nmnist": (NMNIST_STREAMING, tr, ytr)}
    try:
        xtr, ytr_m, _, _ = load_mnist(find_dataset(root, "mnist"))
        rng = np.random.default_rng(0)
        m = [mnist_rate_raster(x, MNIST_STREAMING.timesteps, rng) for x in xtr[: args.samples]]
        sets["mnist"] = (MNIST_STREAMING, m, ytr_m[: args.samples])
    except BioGradError as exc:  # MNIST is optional here; said, not hidden
        print(f"MNIST skipped: {exc}")
    out = {}
    for name, (base, rasters, labels) in sets.items():
        print(f"\n{name}: {len(rasters)} samples, batch 1, sleep every {base.sleep_every} (preset: {base.optimizer})")
        print("| optimizer | sleep | samples / CPU s | samples / wall s | cpu/wall | vs sgd |")
        print("|---|---|---:|---:|---:|---:|")
        for sleep in (True, False):
            ref = None
            for opt in OPTIMIZERS:
                cpu, wall = measure(replace(base, optimizer=opt, sleep=sleep), rasters, labels, args.repeats)
                ref = ref or cpu
                print(
                    f"| {opt} | {'on' if sleep else 'off'} | {cpu:.0f} | {wall:.0f} | {wall / cpu:.2f} | {cpu / ref:.2f} |"
                )
                out[f"{name}_{opt}_{'sleep' if sleep else 'nosleep'}_samples_per_cpu_s"] = cpu
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
