"""Learner throughput: event engine vs synapse engine vs a plain NumPy per-synapse baseline.

    BIOGRAD_DATA=../shared/data .venv/bin/python bench/learner.py [--samples 300] [--json PATH]

One run, the same samples for every engine, one core (BLAS and Numba threads
pinned to 1 before NumPy loads). Rows:

* train: encode raw events + one BioGrad training sample (forward, error phase,
  eligibility, δ·E accumulation; SGD steps at batch 128 included, sleep off: it is
  timed on its own, per call);
* infer: encode raw events + inference (no traces, no error).

N-MNIST: 2312-500-100-10 on nmnist-1k Train; events = raw sensor events of the
.bin files (binning included in every timing). MNIST: 784-500-100-10, T=20, rate
code drawn from the image inside the timing; events = expected spikes of that
code (T * sum(pixel / 255)).
The slow engines run on the first ``--slow-samples`` of the same samples: the
figures are rates. Timings use wall time (perf_counter), best of ``--repeat``.
``--profile`` adds a per-phase breakdown of the event engine. The cpu/wall
column is the process's CPU time over wall time in that timing: below 1 the
core was shared with other work and the wall-time rates understate the code.
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
from biograd.learner import kernels  # noqa: E402
from biograd.learner.config import MNIST_LEARNER, NMNIST_LEARNER  # noqa: E402
from biograd.learner.encoding import encode_nmnist, mnist_rate_raster  # noqa: E402
from biograd.learner.network import BioGradLearner  # noqa: E402
from biograd.learner.reference_numpy import NumpyReferenceLearner  # noqa: E402
from biograd.sources.mnist import read_idx  # noqa: E402
from biograd.sources.nmnist import list_split, read_nmnist  # noqa: E402

_CPU: dict[int, float] = {}


def _best(fn, repeat):
    """Best wall time of ``repeat`` runs; the CPU time of that run is kept in _CPU[id(result)]."""
    best, cpu = float("inf"), float("inf")
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        wall, used = time.perf_counter() - t0, time.process_time() - c0
        if wall < best:
            best, cpu = wall, used
    result = float(best)
    _CPU[id(result)] = cpu
    return result


def load_nmnist(root: Path, n: int):
    items = list_split(root, "train")
    pick = np.random.default_rng(0).permutation(len(items))[:n]
    return [(read_nmnist(items[i][0]), items[i][1]) for i in pick]


def load_mnist(root: Path, n: int):
    images = read_idx(root / "train-images-idx3-ubyte.gz")
    labels = read_idx(root / "train-labels-idx1-ubyte.gz")
    pick = np.random.default_rng(0).permutation(len(labels))[:n]
    return [(np.asarray(images[i]), int(labels[i])) for i in pick]


def run_dataset(name, cfg, samples, encode, n_events, args, out):
    """Time train/infer of the three implementations on ``samples``; fill ``out`` with figures."""
    slow = samples[: args.slow_samples]
    cfg = replace(cfg, sleep=False)
    total_events = sum(n_events(s) for s, _ in samples)
    slow_events = sum(n_events(s) for s, _ in slow)
    rows = []

    def learner(engine):
        return BioGradLearner(replace(cfg, engine=engine))

    # warm-up: compile / load the cached kernels outside the timings
    for engine in ("event", "synapse"):
        warm = learner(engine)
        r = encode(samples[0][0])
        warm.train_sample(r, samples[0][1])
        warm.predict(r)

    def time_train(engine, subset):
        def go():
            lr = learner(engine)
            for s, y in subset:
                lr.train_sample(encode(s), y)

        return _best(go, args.repeat)

    def time_infer(engine, subset):
        lr = learner(engine)
        return _best(lambda: [lr.predict(encode(s)) for s, _ in subset], args.repeat)

    def numpy_ref():
        base = learner("event")
        return NumpyReferenceLearner(cfg, base.weights, base.biases, base.feedback)

    def time_numpy_train(subset):
        def go():
            ref = numpy_ref()
            for s, y in subset:
                ref.train_sample(encode(s).to_dense(), y)

        return _best(go, 1)

    def time_numpy_infer(subset):
        ref = numpy_ref()
        return _best(lambda: [ref.predict(encode(s).to_dense()) for s, _ in subset], 1)

    t = {
        ("train", "event"): (time_train("event", samples), len(samples), total_events),
        ("train", "synapse"): (time_train("synapse", slow), len(slow), slow_events),
        ("train", "numpy"): (time_numpy_train(slow), len(slow), slow_events),
        ("infer", "event"): (time_infer("event", samples), len(samples), total_events),
        ("infer", "numpy"): (time_numpy_infer(slow), len(slow), slow_events),
    }
    for (phase, engine), (secs, n, ev) in t.items():
        sps, eps = n / secs, ev / secs
        cpu = _CPU.get(id(secs), secs)
        out[f"{name}_{phase}_{engine}_samples_per_s"] = sps
        out[f"{name}_{phase}_{engine}_events_per_s"] = eps
        out[f"{name}_{phase}_{engine}_cpu_busy_fraction"] = cpu / secs
        rows.append((phase, engine, n, sps, eps, cpu / secs))
    for phase in ("train", "infer"):
        ev_sps = out[f"{name}_{phase}_event_samples_per_s"]
        for engine in ("synapse", "numpy"):
            key = f"{name}_{phase}_{engine}_samples_per_s"
            if key in out:
                out[f"{name}_{phase}_speedup_event_vs_{engine}"] = ev_sps / out[key]
    # sleep: one call at the configured M_s, T_s (dense BLAS work, independent of the engine)
    sl = learner("event")
    sl.sleep()
    sleep_s = _best(sl.sleep, max(1, args.repeat))
    out[f"{name}_sleep_ms"] = sleep_s * 1e3
    out[f"{name}_mean_events_per_sample"] = total_events / len(samples)

    print(
        f"\n{name}: {'-'.join(map(str, cfg.layer_sizes))}, T={cfg.timesteps}, "
        f"{total_events / len(samples):.0f} events/sample, dtype {cfg.dtype}"
    )
    print(
        f"  {'phase':6s} {'engine':8s} {'samples':>7s} {'samples/s':>10s} {'events/s':>12s} "
        f"{'event engine is':>16s} {'cpu/wall':>9s}"
    )
    for phase, engine, n, sps, eps, busy in rows:
        ratio = out[f"{name}_{phase}_event_samples_per_s"] / sps
        print(f"  {phase:6s} {engine:8s} {n:7d} {sps:10.1f} {eps:12.3e} {ratio:15.1f}x {busy:9.2f}")
    print("  infer  synapse  (same inference kernel as the event engine: traces are training-only)")
    print(
        f"  sleep  {sleep_s * 1e3:.1f} ms per call (M_s={cfg.sleep_noise_samples}, T_s={cfg.sleep_steps}); "
        f"{sleep_s / cfg.batch_size * 1e3:.2f} ms per sample at one sleep per batch of {cfg.batch_size}"
    )


def profile_event_engine(name, cfg, samples, encode, out):
    """Per-phase CPU time (process_time: robust to a shared core) of the event engine, µs per sample."""
    lr = BioGradLearner(replace(cfg, sleep=False, batch_size=10**9))
    rasters = [(encode(s), y) for s, y in samples]
    n = len(samples)
    phases = {}
    phases["encode"] = _best(lambda: [encode(s) for s, _ in samples], 3)
    phases["encode"] = _CPU[id(phases["encode"])]
    checked = [(lr.check_raster(r), y) for r, y in rasters]

    def fwd(layer):
        # inputs of this layer for every sample, from a full forward pass
        inputs = []
        for (ptr, idx), _ in checked:
            lr.engine.infer(ptr, idx)
            inputs.append(
                (ptr, idx) if layer == 0 else (lr.recs[layer - 1].out_ptr.copy(), lr.recs[layer - 1].out_idx.copy())
            )
        lam, th, _, _ = lr.layers[layer].params
        c0 = time.process_time()
        for ptr, idx in inputs:
            kernels.layer_forward(
                ptr,
                idx,
                lr.layers[layer].wt,
                lr.biases[layer],
                lam,
                th,
                lr.recs[layer].v,
                lr.recs[layer].out_ptr,
                lr.recs[layer].out_idx,
            )
        return time.process_time() - c0

    for l in range(cfg.n_layers):
        phases[f"forward layer {l + 1}"] = fwd(l)
    # backward: record each sample's forward pass first, then time the error phase and
    # each layer's backward kernel over all samples in one stretch
    recs = []
    for (ptr, idx), y in checked:
        lr.engine.infer(ptr, idx)
        recs.append(
            (
                ptr,
                idx,
                y,
                [r.v.copy() for r in lr.recs],
                [r.out_ptr.copy() for r in lr.recs],
                [r.out_idx.copy() for r in lr.recs],
            )
        )
    c0 = time.process_time()
    all_deltas = []
    for _ptr, _idx, y, _, out_ptr, out_idx in recs:
        counts, d_out, _ = kernels.error_phase(out_ptr[-1], out_idx[-1], cfg.layer_sizes[-1], cfg.error_start, y)
        all_deltas.append(lr.deltas(d_out))
    t_err = time.process_time() - c0
    t_bwd = [0.0] * cfg.n_layers
    for l in range(cfg.n_layers):
        lam, th, win, amp = lr.layers[l].params
        c0 = time.process_time()
        for (ptr, idx, _y, v_rec, out_ptr, out_idx), deltas in zip(recs, all_deltas):
            in_ptr, in_idx = (ptr, idx) if l == 0 else (out_ptr[l - 1], out_idx[l - 1])
            lr.grads[l].n_rows = kernels.layer_backward_event(
                v_rec[l],
                in_ptr,
                in_idx,
                deltas[l],
                lam,
                th,
                win,
                amp,
                lr.recs[l].h,
                lr.grads[l].gwt,
                lr.grads[l].gb,
                lr.grads[l].touched,
                lr.grads[l].rows,
                lr.grads[l].n_rows,
                lr.recs[l].col_ptr,
                lr.recs[l].col_t,
            )
        t_bwd[l] = time.process_time() - c0
    phases["error phase + deltas"] = t_err
    for l in range(cfg.n_layers):
        phases[f"backward layer {l + 1}"] = t_bwd[l]
    lr.batch_fill = cfg.batch_size
    c0 = time.process_time()
    lr.apply_update()
    phases["SGD step (per 128-sample batch, amortised)"] = (time.process_time() - c0) * n / cfg.batch_size
    print(f"\n{name} event-engine profile (CPU µs per sample, {n} samples):")
    for k, v in phases.items():
        us = v / n * 1e6
        out[f"{name}_profile_{k.split(' (')[0].replace(' ', '_').replace('+', 'and')}_us"] = us
        print(f"  {k:45s} {us:9.1f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="data root (default: $BIOGRAD_DATA)")
    ap.add_argument("--samples", type=int, default=300, help="samples for the event engine (default 300)")
    ap.add_argument(
        "--slow-samples",
        type=int,
        default=6,
        help="first N of the same samples for the synapse and NumPy engines (default 6)",
    )
    ap.add_argument("--repeat", type=int, default=3, help="best of N timings of the fast engines")
    ap.add_argument("--dataset", choices=["nmnist", "mnist", "both"], default="both")
    ap.add_argument("--profile", action="store_true", help="per-phase breakdown of the event engine")
    ap.add_argument("--json", default=None, help="write the figures as one flat JSON object")
    args = ap.parse_args(argv)
    root = data_root(args.data)
    out: dict[str, float] = {"samples": args.samples, "slow_samples": args.slow_samples}

    if args.dataset in ("nmnist", "both"):
        data = load_nmnist(root / "nmnist-1k", args.samples)
        run_dataset("nmnist", NMNIST_LEARNER, data, encode_nmnist, lambda s: int(s.shape[0]), args, out)
        out["nmnist_infer_events_per_s"] = out["nmnist_infer_event_events_per_s"]
        if args.profile:
            profile_event_engine("nmnist", NMNIST_LEARNER, data, encode_nmnist, out)
    if args.dataset in ("mnist", "both"):
        data = load_mnist(root / "mnist", args.samples)
        enc_rng = np.random.default_rng(1)

        def encode_mnist(image):
            return mnist_rate_raster(image, MNIST_LEARNER.timesteps, enc_rng)

        def expected_spikes(image):
            # events of the rate code: its expected spike count T * sum(pixel / 255)
            return int(round(MNIST_LEARNER.timesteps * float(np.sum(image, dtype=np.float64)) / 255.0))

        run_dataset("mnist", MNIST_LEARNER, data, encode_mnist, expected_spikes, args, out)
        if args.profile:
            profile_event_engine("mnist", MNIST_LEARNER, data, encode_mnist, out)

    print()
    if "nmnist_infer_events_per_s" in out:
        busy = out["nmnist_infer_event_cpu_busy_fraction"]
        out["nmnist_infer_events_per_cpu_s"] = out["nmnist_infer_events_per_s"] / busy
        print(
            f"N-MNIST inference, event engine (binning included, one core): "
            f"{out['nmnist_infer_events_per_s'] / 1e6:.2f} M raw events/s of wall time (target >= 12 M); "
            f"{out['nmnist_infer_events_per_cpu_s'] / 1e6:.2f} M per CPU second (cpu/wall {busy:.2f})"
        )
        print(
            f"N-MNIST training speed-up, event engine vs NumPy per-synapse baseline: "
            f"{out['nmnist_train_speedup_event_vs_numpy']:.0f}x (target >= 30x)"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, sort_keys=True))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
