"""Streaming (batch 1) per optimizer: where a sample's CPU time goes, the optimizer step apart.

N-MNIST 2312-500-100-10 from raw events with the streaming preset (an update after every sample,
a sleep every 128), one core. Each sample is timed in phases with ``process_time``:
encode + forward + error phase, backward (δ·E into the gradient), the optimizer step, the sleep
(one per 128 samples, so its per-sample figure is the amortised cost). The optimizers' runs
alternate, ``--repeat`` times; each phase is reported as the mean over samples of the
per-sample **minimum over the repeats**, which filters out what other jobs on a shared machine
add to single samples. ``samples/CPU-s`` is the plain rate of the fastest whole run.

The phases are :meth:`BioGradLearner.train_sample`'s own calls, made one by one here.
``--former`` adds rows ``<name>_former`` with the step as it was before the one-call-per-layer
kernels (the reference kept in ``tests/learner/test_optim_fused.py``, which checks that both
give the same bits), alternating with the current one in the same process: a before/after
ratio that holds on a shared machine.

    BIOGRAD_DATA=../shared/data .venv/bin/python bench/optim_step.py [--samples 400] [--repeat 3] [--former] [--json PATH]
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from biograd.core.data import data_root  # noqa: E402
from biograd.learner import kernels  # noqa: E402
from biograd.learner.config import NMNIST_STREAMING  # noqa: E402
from biograd.learner.encoding import encode_nmnist  # noqa: E402
from biograd.learner.network import BioGradLearner  # noqa: E402
from biograd.sources.nmnist import list_split, read_nmnist  # noqa: E402

OPTIMIZERS = ("sgd", "rmsprop", "adam", "layer_rms")
PHASES = ("forward", "backward", "step", "sleep")


def former_optimizer(cfg, layers):
    """The step before the one-call-per-layer kernels (the bit-identity test's reference)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "learner"))
    from test_optim_fused import former_optimizer as reference  # noqa: PLC0415

    return reference(cfg, layers)


def run(row: str, events, labels) -> np.ndarray:
    """One streaming pass; CPU µs per sample and phase, shape (samples, 5): the phases, then the total."""
    optimizer, former = row.removesuffix("_former"), row.endswith("_former")
    cfg = replace(NMNIST_STREAMING, optimizer=optimizer, threads=1)  # one core, the sleep's too
    learner = BioGradLearner(cfg)
    if former and optimizer != "sgd":
        learner.optimizer = former_optimizer(cfg, learner.layers)
    n_out = learner.config.layer_sizes[-1]
    clock = time.process_time_ns
    out = np.zeros((len(events), 5))
    for k, (ev, y) in enumerate(zip(events, labels)):
        t0 = clock()
        ptr, idx = learner.check_raster(encode_nmnist(ev))
        learner.engine.train_forward(ptr, idx)
        rec = learner.recs[-1]
        _, d_out, _ = kernels.error_phase(rec.out_ptr, rec.out_idx, n_out, learner.config.error_start, y)
        t1 = clock()
        learner.engine.accumulate(ptr, idx, learner.deltas(d_out), learner.grads)
        learner.samples_seen += 1
        learner.batch_fill += 1
        learner.samples_since_sleep += 1
        t2 = clock()
        learner.apply_update()
        t3 = clock()
        learner._maybe_sleep(True)
        t4 = clock()
        out[k] = (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0)
    return out / 1e3


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--optimizers", default=",".join(OPTIMIZERS))
    ap.add_argument("--former", action="store_true", help="also time the former step, runs alternating")
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args(argv)
    names = args.optimizers.split(",")
    if args.former:
        names = [n for name in names for n in (f"{name}_former", name) if name != "sgd" or n == "sgd"]
    items = list_split(data_root() / "nmnist-1k", "train")[: args.samples]
    events = [read_nmnist(f) for f, _ in items]
    labels = [int(y) for _, y in items]
    for name in names:  # compile and warm up
        run(name, events[:5], labels[:5])
    runs: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for _ in range(args.repeat):
        for name in names:
            runs[name].append(run(name, events, labels))
    out: dict[str, float] = {}
    print(f"streaming, batch 1, {len(events)} nmnist-1k samples, sleep every 128; CPU µs per sample")
    print(f"{'optimizer':>16} " + " ".join(f"{p:>9}" for p in PHASES) + f" {'total':>9} {'samples/CPU-s':>14}")
    for name in names:
        per_sample = np.min(np.stack(runs[name]), axis=0).mean(axis=0)
        rate = len(events) / (min(r[:, 4].sum() for r in runs[name]) / 1e6)
        for p, x in zip(PHASES, per_sample):
            out[f"optim_{name}_{p}_us"] = float(x)
        out[f"optim_{name}_samples_per_cpu_s"] = rate
        print(f"{name:>16} " + " ".join(f"{x:9.1f}" for x in per_sample) + f" {rate:14.0f}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
