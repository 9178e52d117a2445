"""Reproduce BioGrad's headline numbers on this machine, against a BPTT baseline.

Subcommands (each appends JSON lines to a log under bench/exp_logs/ as it goes, so
partial runs count and an interrupted run resumes where it stopped):

  mnist      BioGrad 784-500-100-10 on full MNIST (train 50 000 / val 10 000 / test 10 000),
             epochs until --deadline (UTC HH:MM), resumable from a checkpoint
  nmnist     BioGrad vs BPTT 2312-500-100-10 on nmnist-1k, same seeds / epochs / batches
  cv         5-fold cross-validation of both methods on the 1 000 nmnist-1k training samples
  ablation   BioGrad sleep on/off x feedback init mirror/random: accuracy and feedback angle
  streaming  batch size 1 (update every sample, sleep every N samples), one pass; the learning
             rate is picked on a validation split carved from train, never on the test split
  report     tables (Markdown) + PNG plots from the logs; --json PATH writes flat name -> number

Run from the project root: ``BIOGRAD_DATA=../shared/data .venv/bin/python -m bench.experiments …``
"""

from __future__ import annotations

import os

# 2 cores shared by several people: one BLAS / Numba thread per experiment process.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import datetime as dt
import hashlib
import json
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from biograd.core.data import data_root, find_dataset
from biograd.core.errors import BioGradError
from biograd.sources.base import epoch_order

ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = ROOT / "bench" / "exp_logs"
WORK_DIR = ROOT / "bench" / "exp_logs" / "work"  # checkpoints; not committed
PAPER = {"mnist": 98.13, "nmnist": 97.59}


# --- logging -------------------------------------------------------------------


class Log:
    """Append-only JSON-lines log; every record is flushed to disk at once."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, record: dict) -> None:
        record = {"time": time.time(), **record}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        out = []
        for n, line in enumerate(self.path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    # A run killed mid-write leaves a torn last line; anything else is corruption.
                    if n != len(self.path.read_text().splitlines()):
                        raise BioGradError(f"{self.path}:{n}: not a JSON line") from None
        return out


def code_fingerprint() -> dict:
    """Git commit and the hashes of the learner sources the numbers came from."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        head = "unknown"
    files = {}
    for rel in ("learner/network.py", "learner/kernels.py", "learner/encoding.py", "learner/bptt_baseline.py"):
        p = ROOT / rel
        if p.exists():
            files[rel] = hashlib.sha1(p.read_bytes()).hexdigest()[:12]
    return {"git": head, "sources": files}


def command_line() -> str:
    return "python -m bench.experiments " + " ".join(sys.argv[1:])


# --- data ------------------------------------------------------------------------

_NMNIST_CACHE: dict = {}


def nmnist_data(args):
    """(train_rasters, train_labels, test_rasters, test_labels) of nmnist-1k, train in file order."""
    from bench.exp_data import load_nmnist_rasters

    root = find_dataset(data_root(args.data), "nmnist-1k", "nmnist")
    if root not in _NMNIST_CACHE:
        tr, ytr = load_nmnist_rasters(root, "Train")
        te, yte = load_nmnist_rasters(root, "Test")
        _NMNIST_CACHE[root] = (tr, ytr, te, yte)
    return _NMNIST_CACHE[root]


#: salt of the experiments' sample orders (sources.base.epoch_order; the same for every method
#: with the same seed; kept as it was: the logged results were made with these orders)
ORDER_SALT = 7919


# --- the two methods behind one interface ---------------------------------------------


class BioGradRun:
    name = "biograd"

    def __init__(self, config):
        from biograd.learner.network import BioGradLearner

        self.net = BioGradLearner(config)

    def train_epoch(self, rasters, labels, order, on_update=None):
        """One pass in ``order``; returns (train accuracy, mean loss) as seen while training."""
        correct, loss = 0, 0.0
        for i in order:
            res = self.net.train_sample(rasters[i], int(labels[i]))
            correct += res.prediction == labels[i]
            loss += res.loss
            if res.updated and on_update:
                on_update(self)
        # Same batches as BPTT: the last partial batch is applied at the epoch end.
        if self.net.flush() is not None and on_update:
            on_update(self)
        return correct / len(order), loss / len(order)

    def evaluate(self, rasters, labels) -> float:
        return float(np.mean([self.net.predict(r)[0] == y for r, y in zip(rasters, labels)]))

    def alignment(self):
        return self.net.feedback_alignment()


class BPTTRun:
    name = "bptt"

    def __init__(self, config):
        from biograd.learner.bptt_baseline import BPTTLearner

        self.net = BPTTLearner(config)

    def train_epoch(self, rasters, labels, order, on_update=None):
        bs = self.net.config.batch_size
        correct, loss = 0, 0.0
        for start in range(0, len(order), bs):
            idx = order[start : start + bs]
            batch_loss, pred = self.net.train_batch([rasters[i] for i in idx], labels[idx])
            correct += int(np.sum(pred == labels[idx]))
            loss += batch_loss * len(idx)
            if on_update:
                on_update(self)
        return correct / len(order), loss / len(order)

    def evaluate(self, rasters, labels) -> float:
        correct = 0
        for start in range(0, len(rasters), 100):
            pred, _ = self.net.predict_batch(rasters[start : start + 100])
            correct += int(np.sum(pred == np.asarray(labels[start : start + 100])))
        return correct / len(rasters)


def make_run(method: str, seed: int, batch: int, preset: str = "nmnist", **learner_overrides):
    from biograd.learner.bptt_baseline import BPTTConfig
    from biograd.learner.config import MNIST_LEARNER, NMNIST_LEARNER

    base = NMNIST_LEARNER if preset == "nmnist" else MNIST_LEARNER
    if method == "biograd":
        return BioGradRun(replace(base, seed=seed, batch_size=batch, **learner_overrides))
    if method == "bptt":
        return BPTTRun(BPTTConfig.from_learner(base, seed=seed, batch_size=batch, **learner_overrides))
    raise BioGradError(f"unknown method {method!r} (biograd or bptt)")


def run_epochs(run, tr, ytr, te, yte, epochs, seed, log, tag: dict, on_update=None):
    """Train ``epochs`` epochs, logging train/test accuracy and wall time per epoch."""
    total = 0.0
    for epoch in range(epochs):
        t0 = time.perf_counter()
        train_acc, loss = run.train_epoch(tr, ytr, epoch_order(len(tr), seed, epoch, salt=ORDER_SALT), on_update)
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        acc = run.evaluate(te, yte)
        eval_s = time.perf_counter() - t0
        total += train_s
        log.append(
            {
                "kind": "epoch",
                **tag,
                "epoch": epoch + 1,
                "train_acc": train_acc,
                "loss": loss,
                "eval_acc": acc,
                "train_s": train_s,
                "eval_s": eval_s,
                "samples_per_s": len(tr) / train_s,
            }
        )
        print(
            f"  {tag} epoch {epoch + 1}: train {train_acc:.3f} loss {loss:.3f} eval {acc:.3f} ({train_s:.1f}s)",
            flush=True,
        )
    return acc, total


def done_keys(log: Log, kind: str, fields: tuple[str, ...]) -> set:
    return {tuple(r[f] for f in fields) for r in log.read() if r.get("kind") == kind}


# --- experiments --------------------------------------------------------------------


def cmd_nmnist(args) -> int:
    tr, ytr, te, yte = nmnist_data(args)
    log = Log(args.log)
    log.append({"kind": "start", "command": command_line(), **code_fingerprint()})
    if args.lr_from_tune:
        # One method per call: the rate picked on validation by `tune` (mean of the last 5 epochs).
        tuned = [
            r
            for r in Log(LOG_DIR / "tune.jsonl").read()
            if r.get("kind") == "tune_done"
            and r["method"] == args.methods[0]
            and r["epochs"] == args.epochs
            and r["batch"] == args.batch
        ]
        if len(args.methods) != 1 or not tuned:
            raise BioGradError(
                "--lr-from-tune needs one --methods and a finished `tune` run with the same epochs and batch"
            )
        args.lr = max(tuned, key=lambda r: (r["val_last5"], -r["lr"]))["lr"]
        print(f"{args.methods[0]}: lr {args.lr:g} from the validation sweep", flush=True)
    recs = log.read()
    # lr None = the method's reference rate (BioGrad SGD 1e-3, BPTT Adam 1e-4).
    done = {(r["method"], r["seed"], r["epochs"], r["batch"], r.get("lr")) for r in recs if r.get("kind") == "run_done"}
    for seed in args.seeds:
        for method in args.methods:
            key = (method, seed, args.epochs, args.batch, args.lr)
            if key in done:
                print(f"skip {key}: already in {log.path}")
                continue
            # The sample order of epoch e depends only on (seed, e), so the first E epochs of a
            # longer run with the same seed and batch *are* an E-epoch run: reuse them.
            prior = {
                r["epoch"]: r
                for r in recs
                if r.get("kind") == "epoch"
                and r["method"] == method
                and r["seed"] == seed
                and r["batch"] == args.batch
                and r.get("lr") == args.lr
                and r["epoch"] <= args.epochs
            }
            if len(prior) == args.epochs:
                log.append(
                    {
                        "kind": "run_done",
                        "method": method,
                        "seed": seed,
                        "epochs": args.epochs,
                        "batch": args.batch,
                        "lr": args.lr,
                        "test_acc": prior[args.epochs]["eval_acc"],
                        "train_wall_s": sum(r["train_s"] for r in prior.values()),
                        "from_longer_run": max(r["epochs"] for r in prior.values()),
                    }
                )
                print(f"{key}: first {args.epochs} epochs of a longer logged run")
                continue
            tag = {"method": method, "seed": seed, "epochs": args.epochs, "batch": args.batch, "lr": args.lr}
            run = make_run(method, seed, args.batch, **({"lr": args.lr} if args.lr else {}))
            acc, wall = run_epochs(run, tr, ytr, te, yte, args.epochs, seed, log, tag)
            log.append({"kind": "run_done", **tag, "test_acc": acc, "train_wall_s": wall})
    return 0


def cmd_tune(args) -> int:
    """Learning rate on a validation split carved from train (the test split is never used)."""
    tr, ytr, _, _ = nmnist_data(args)
    log = Log(args.log)
    log.append({"kind": "start", "command": command_line(), **code_fingerprint()})
    perm = np.random.default_rng([args.select_seed, 15485863]).permutation(len(tr))
    fit_idx, val_idx = perm[: -args.val], perm[-args.val :]
    fit, val = [tr[i] for i in fit_idx], [tr[i] for i in val_idx]
    recs = log.read()
    for lr in args.lrs:
        tag = {
            "method": args.method,
            "lr": lr,
            "epochs": args.epochs,
            "batch": args.batch,
            "seed": args.select_seed,
            "val_samples": args.val,
        }
        if any(r.get("kind") == "tune_done" and all(r.get(k) == v for k, v in tag.items()) for r in recs):
            continue
        run = make_run(args.method, args.select_seed, args.batch, lr=lr)
        run_epochs(run, fit, ytr[fit_idx], val, ytr[val_idx], args.epochs, args.select_seed, log, tag)
        accs = [
            r["eval_acc"] for r in log.read() if r.get("kind") == "epoch" and all(r.get(k) == v for k, v in tag.items())
        ][-args.epochs :]
        # Mean of the last 5 epochs: single-epoch accuracy on 200 samples jumps by ±10 points.
        log.append({"kind": "tune_done", **tag, "val_last": accs[-1], "val_last5": float(np.mean(accs[-5:]))})
    return 0


def cmd_cv(args) -> int:
    tr, ytr, _, _ = nmnist_data(args)
    log = Log(args.log)
    log.append({"kind": "start", "command": command_line(), **code_fingerprint()})
    done = done_keys(log, "fold_done", ("method", "fold", "seed", "epochs", "batch"))
    perm = np.random.default_rng([args.seed, 104729]).permutation(len(tr))
    folds = np.array_split(perm, args.folds)
    for k, held in enumerate(folds):
        train_idx = np.concatenate([f for j, f in enumerate(folds) if j != k])
        ftr = [tr[i] for i in train_idx]
        fte = [tr[i] for i in held]
        for method in args.methods:
            key = (method, k, args.seed, args.epochs, args.batch)
            if key in done:
                continue
            tag = {"method": method, "fold": k, "seed": args.seed, "epochs": args.epochs, "batch": args.batch}
            run = make_run(method, args.seed, args.batch)
            acc, wall = run_epochs(run, ftr, ytr[train_idx], fte, ytr[held], args.epochs, args.seed, log, tag)
            log.append({"kind": "fold_done", **tag, "heldout_acc": acc, "train_wall_s": wall})
    return 0


def cmd_ablation(args) -> int:
    tr, ytr, te, yte = nmnist_data(args)
    log = Log(args.log)
    log.append({"kind": "start", "command": command_line(), **code_fingerprint()})
    done = done_keys(log, "run_done", ("sleep", "init", "seed", "epochs", "batch"))
    for seed in args.seeds:
        for sleep in (True, False):
            for init in ("mirror", "random"):
                key = (sleep, init, seed, args.epochs, args.batch)
                if key in done:
                    continue
                tag = {"sleep": sleep, "init": init, "seed": seed, "epochs": args.epochs, "batch": args.batch}
                run = make_run("biograd", seed, args.batch, sleep=sleep, feedback_init=init)
                counter = {"updates": 0}

                def on_update(r, tag=tag, counter=counter):
                    counter["updates"] += 1
                    al = r.alignment()
                    log.append(
                        {
                            "kind": "angle",
                            **tag,
                            "update": counter["updates"],
                            "samples": r.net.samples_seen,
                            "angle_deg": [a for a, _ in al],
                            "norm_ratio": [q for _, q in al],
                        }
                    )

                on_update(run)  # the starting point, before any update
                counter["updates"] = 0
                acc, wall = run_epochs(run, tr, ytr, te, yte, args.epochs, seed, log, tag, on_update)
                al = run.alignment()
                log.append(
                    {
                        "kind": "run_done",
                        **tag,
                        "test_acc": acc,
                        "train_wall_s": wall,
                        "final_angle_deg": [a for a, _ in al],
                        "final_norm_ratio": [q for _, q in al],
                    }
                )
    return 0


def cmd_streaming(args) -> int:
    """Pick the streaming learning rate on a validation split of train, then one pass per seed."""
    tr, ytr, te, yte = nmnist_data(args)
    log = Log(args.log)
    log.append({"kind": "start", "command": command_line(), **code_fingerprint()})
    recs = log.read()
    n_val = args.val
    # Selection split: a fixed seeded permutation of train, last n_val samples held out.
    perm = np.random.default_rng([args.select_seed, 15485863]).permutation(len(tr))
    fit_idx, val_idx = perm[:-n_val], perm[-n_val:]
    fit = [tr[i] for i in fit_idx]
    val = [tr[i] for i in val_idx]
    overrides = {"sleep_every": args.sleep_every}
    scores = {r["lr"]: r["val_acc"] for r in recs if r.get("kind") == "select" and r["sleep_every"] == args.sleep_every}
    for lr in args.lrs:
        if lr in scores:
            continue
        run = make_run("biograd", args.select_seed, 1, lr=lr, **overrides)
        t0 = time.perf_counter()
        run.train_epoch(fit, ytr[fit_idx], np.arange(len(fit)))
        acc = run.evaluate(val, ytr[val_idx])
        scores[lr] = acc
        log.append(
            {
                "kind": "select",
                "lr": lr,
                "sleep_every": args.sleep_every,
                "val_acc": acc,
                "fit_samples": len(fit),
                "val_samples": n_val,
                "train_s": time.perf_counter() - t0,
            }
        )
        print(f"  select lr={lr:g}: val {acc:.3f}", flush=True)
    best = max(args.lrs, key=lambda lr: (scores[lr], -lr))
    log.append({"kind": "selected", "lr": best, "sleep_every": args.sleep_every})
    print(f"selected streaming lr = {best:g} on {n_val} validation samples", flush=True)

    done = done_keys(log, "pass_done", ("mode", "seed", "lr", "batch", "sleep_every"))
    modes = [("streaming", 1, best, args.sleep_every), ("batch", args.batch, args.batch_lr, 0)]
    for seed in args.seeds:
        for mode, batch, lr, every in modes:
            key = (mode, seed, lr, batch, every)
            if key in done:
                continue
            run = make_run("biograd", seed, batch, lr=lr, sleep_every=every)
            t0 = time.perf_counter()
            train_acc, _ = run.train_epoch(tr, ytr, epoch_order(len(tr), seed, 0, salt=ORDER_SALT))
            wall = time.perf_counter() - t0
            acc = run.evaluate(te, yte)
            log.append(
                {
                    "kind": "pass_done",
                    "mode": mode,
                    "seed": seed,
                    "lr": lr,
                    "batch": batch,
                    "sleep_every": every,
                    "test_acc": acc,
                    "online_train_acc": train_acc,
                    "train_wall_s": wall,
                    "samples_per_s": len(tr) / wall,
                    "updates": run.net.updates,
                    "sleeps": run.net.sleeps,
                }
            )
            print(f"  {mode} seed {seed}: online {train_acc:.3f} test {acc:.3f} ({wall:.1f}s)", flush=True)
    return 0


def cmd_mnist(args) -> int:
    """Full MNIST, resumable: checkpoint + position file every --progress-every samples."""
    from bench.exp_data import load_mnist
    from biograd.learner.config import MNIST_LEARNER
    from biograd.learner.encoding import mnist_rate_raster
    from biograd.learner.network import BioGradLearner

    root = find_dataset(data_root(args.data), "mnist")
    xtr_all, ytr_all, xte, yte = load_mnist(root)
    n_train = args.limit or 50_000
    xtr, ytr = xtr_all[:n_train], ytr_all[:n_train]
    xval, yval = (
        xtr_all[50_000 : 50_000 + (args.limit_eval or 10_000)],
        ytr_all[50_000 : 50_000 + (args.limit_eval or 10_000)],
    )
    xte, yte = xte[: args.limit_eval or 10_000], yte[: args.limit_eval or 10_000]
    cfg = replace(MNIST_LEARNER, seed=args.seed, batch_size=args.batch)
    T = cfg.timesteps
    log = Log(args.log)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    ckpt, pos_file = work / "mnist.npz", work / "mnist_pos.json"
    deadline = None
    if args.deadline:
        hh, mm = map(int, args.deadline.split(":"))
        now = dt.datetime.now(dt.timezone.utc)
        deadline = now.replace(hour=hh, minute=mm, second=0, microsecond=0)
        if deadline < now - dt.timedelta(hours=12):
            deadline += dt.timedelta(days=1)
        deadline = deadline.timestamp()

    if pos_file.exists() and ckpt.exists():
        pos = json.loads(pos_file.read_text())
        net = BioGradLearner.load(ckpt, cfg)
        print(f"resumed at epoch {pos['epoch'] + 1}, sample {pos['index']}", flush=True)
    else:
        pos = {"epoch": 0, "index": 0, "correct": 0, "loss": 0.0, "train_s": 0.0}
        net = BioGradLearner(cfg)
    log.append(
        {
            "kind": "start",
            "command": command_line(),
            "config": asdict(cfg),
            "resume": pos,
            "n_train": n_train,
            "n_val": len(xval),
            "n_test": len(xte),
            **code_fingerprint(),
        }
    )

    def evaluate(images, labels, salt):
        # Fixed encoding noise per split, so every epoch is scored on the same spike trains.
        correct = 0
        for i, (img, y) in enumerate(zip(images, labels)):
            r = mnist_rate_raster(img, T, np.random.default_rng([args.seed, salt, i]))
            correct += net.predict(r)[0] == y
        return correct / len(images)

    def save(pos):
        net.save(ckpt)
        tmp = pos_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(pos))
        os.replace(tmp, pos_file)

    last_epoch_s = None
    while pos["epoch"] < args.epochs:
        epoch = pos["epoch"]
        if deadline and last_epoch_s and pos["index"] == 0 and time.time() + last_epoch_s > deadline:
            print("next epoch would end after the deadline: stopping", flush=True)
            break
        order = epoch_order(n_train, args.seed, epoch, salt=ORDER_SALT)
        t_seg = time.perf_counter()
        seg_start = pos["index"]
        stopped = False
        while pos["index"] < n_train:
            i = int(order[pos["index"]])
            r = mnist_rate_raster(xtr[i], T, np.random.default_rng([args.seed, epoch, i]))
            res = net.train_sample(r, int(ytr[i]))
            pos["correct"] += int(res.prediction == ytr[i])
            pos["loss"] += res.loss
            pos["index"] += 1
            if pos["index"] % args.progress_every == 0 or pos["index"] == n_train:
                seg_s = time.perf_counter() - t_seg
                pos["train_s"] += seg_s
                if pos["index"] == n_train:
                    net.flush()
                save(pos)
                log.append(
                    {
                        "kind": "progress",
                        "epoch": epoch + 1,
                        "samples": pos["index"],
                        "train_acc_running": pos["correct"] / pos["index"],
                        "loss_running": pos["loss"] / pos["index"],
                        "samples_per_s": (pos["index"] - seg_start) / seg_s,
                        "sleeps": net.sleeps,
                        "angle_deg": [a for a, _ in net.feedback_alignment()],
                    }
                )
                print(
                    f"  epoch {epoch + 1} {pos['index']}/{n_train}: running train acc "
                    f"{pos['correct'] / pos['index']:.4f}, {(pos['index'] - seg_start) / seg_s:.0f} samples/s",
                    flush=True,
                )
                t_seg = time.perf_counter()
                seg_start = pos["index"]
                if deadline and time.time() > deadline and pos["index"] < n_train:
                    stopped = True
                    break
        t0 = time.perf_counter()
        val_acc = evaluate(xval, yval, 1)
        test_acc = evaluate(xte, yte, 2)
        eval_s = time.perf_counter() - t0
        log.append(
            {
                "kind": "epoch",
                "epoch": epoch + 1,
                "complete": not stopped,
                "samples": pos["index"],
                "train_acc": pos["correct"] / max(pos["index"], 1),
                "loss": pos["loss"] / max(pos["index"], 1),
                "train_s": pos["train_s"],
                "samples_per_s": pos["index"] / pos["train_s"],
                "val_acc": val_acc,
                "test_acc": test_acc,
                "eval_s": eval_s,
                "eval_samples_per_s": (len(xval) + len(xte)) / eval_s,
                "angle_deg": [a for a, _ in net.feedback_alignment()],
            }
        )
        print(
            f"epoch {epoch + 1}{'' if not stopped else ' (partial)'}: val {val_acc:.4f} test {test_acc:.4f} "
            f"train {pos['train_s']:.0f}s eval {eval_s:.0f}s",
            flush=True,
        )
        if stopped:
            break
        last_epoch_s = pos["train_s"] + eval_s
        pos = {"epoch": epoch + 1, "index": 0, "correct": 0, "loss": 0.0, "train_s": 0.0}
        save(pos)
        if deadline and time.time() > deadline:
            break
    return 0


def cmd_gradcheck(args) -> int:
    """BPTT gradient vs central differences on the surrogate-consistent relaxation (float64)."""
    from biograd.learner.bptt_baseline import BPTTConfig, cross_entropy, forward, loss_and_grads

    rows = []
    for seed in args.seeds:
        rng = np.random.default_rng(seed)
        sizes, T, B = tuple(args.sizes), args.timesteps, 4
        cfg = BPTTConfig(layer_sizes=sizes, timesteps=T, dtype="float64")
        params = [cfg.neuron(l) for l in range(len(sizes) - 1)]
        weights = [rng.normal(0, 1.2 / np.sqrt(a), (b, a)) for a, b in zip(sizes[:-1], sizes[1:])]
        biases = [rng.normal(0.1, 0.1, b) for b in sizes[1:]]
        x = (rng.random((T, B, sizes[0])) < 0.35).astype(np.float64)
        labels = rng.integers(0, sizes[-1], B)

        def loss(weights=weights, biases=biases, x=x, params=params, labels=labels):
            return cross_entropy(forward(weights, biases, x, params, relaxed=True)[-1].s.sum(axis=0), labels)

        _, _, gw, gb = loss_and_grads(weights, biases, x, labels, params, relaxed=True)
        ana, num = [], []
        for group, grads in ((weights, gw), (biases, gb)):
            for p, g in zip(group, grads):
                flat = p.reshape(-1)
                for i in range(flat.size):
                    old = flat[i]
                    flat[i] = old + 1e-6
                    up = loss()
                    flat[i] = old - 1e-6
                    down = loss()
                    flat[i] = old
                    num.append((up - down) / 2e-6)
                    ana.append(g.reshape(-1)[i])
        ana, num = np.array(ana), np.array(num)
        rel = np.linalg.norm(ana - num) / np.linalg.norm(num)
        rows.append((seed, ana.size, np.abs(ana - num).max(), rel))
    print("| seed | parameters checked | max abs error | relative error ‖g_bptt - g_fd‖/‖g_fd‖ |")
    print("|---|---|---|---|")
    for seed, n, mx, rel in rows:
        print(f"| {seed} | {n} | {mx:.1e} | {rel:.1e} |")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "gradcheck_max_rel_error": float(max(r[3] for r in rows)),
                    "gradcheck_max_abs_error": float(max(r[2] for r in rows)),
                }
            )
            + "\n"
        )
    return 0


# --- report -------------------------------------------------------------------------------


def _ms(values) -> str:
    values = np.asarray(values, dtype=float) * 100
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{values.mean():.2f} ± {values.std(ddof=1):.2f}"


def _log(name: str) -> list[dict]:
    return Log(LOG_DIR / f"{name}.jsonl").read()


def report_mnist(out: dict[str, float], plt, docs: Path) -> None:
    """MNIST: the epoch table, its figures and results_mnist.png."""
    # A run stopped mid-epoch and resumed logs that epoch twice: the later record wins.
    m = list({r["epoch"]: r for r in _log("mnist") if r.get("kind") == "epoch"}.values())
    if m:
        best = max(m, key=lambda r: (r["val_acc"], -r["epoch"]))
        last = m[-1]
        print("\n## MNIST (BioGrad 784-500-100-10)")
        sps = [r["samples_per_s"] for r in m]
        print(
            "| epochs run | best-val epoch | val % @best | test % @best-val epoch | test % @last epoch | "
            "train wall (all epochs) | train samples/s mean (max) | eval samples/s mean | paper |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        print(
            f"| {len(m)}{'' if last['complete'] else ' (last partial)'} | {best['epoch']} | "
            f"{best['val_acc'] * 100:.2f} | {best['test_acc'] * 100:.2f} | {last['test_acc'] * 100:.2f} | "
            f"{sum(r['train_s'] for r in m) / 60:.0f} min | {np.mean(sps):.0f} ({max(sps):.0f}) | "
            f"{np.mean([r['eval_samples_per_s'] for r in m]):.0f} | {PAPER['mnist']} |"
        )
        out.update(
            mnist_epochs=len(m),
            mnist_test_at_best_val=best["test_acc"],
            mnist_test_last=last["test_acc"],
            mnist_best_val=best["val_acc"],
            mnist_train_samples_per_s=float(np.mean([r["samples_per_s"] for r in m])),
            mnist_train_wall_s=float(sum(r["train_s"] for r in m)),
        )
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot([r["epoch"] for r in m], [r["val_acc"] * 100 for r in m], "o-", label="validation")
        ax.plot([r["epoch"] for r in m], [r["test_acc"] * 100 for r in m], "s-", label="test")
        ax.plot([r["epoch"] for r in m], [r["train_acc"] * 100 for r in m], "^-", label="train (online)")
        ax.axhline(PAPER["mnist"], color="gray", ls="--", label="paper 98.13")
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy %")
        ax.set_title("BioGrad on MNIST")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(docs / "results_mnist.png", dpi=110)
        plt.close(fig)


def report_nmnist(out: dict[str, float], plt, docs: Path) -> None:
    """N-MNIST BioGrad vs BPTT: the table per (epochs, lr), the ratios and results_nmnist.png."""
    rows = [r for r in _log("nmnist") if r.get("kind") == "run_done"]
    if rows:
        print("\n## N-MNIST nmnist-1k: BioGrad vs BPTT")
        ep = [r for r in _log("nmnist") if r.get("kind") == "epoch"]

        def last5(method, seed, epochs, lr):
            # First record per epoch: the one the run_done of an E-epoch run was built from
            # (a later, longer run of the same seed logs those epochs again).
            rs: dict = {}
            for r in ep:
                if (
                    r["method"] == method
                    and r["seed"] == seed
                    and r.get("lr") == lr
                    and epochs - 5 < r["epoch"] <= epochs
                    and r["epochs"] >= epochs
                ):
                    rs.setdefault(r["epoch"], r["eval_acc"])
            rs = list(rs.values())
            return float(np.mean(rs[-5:]))

        print(
            "| method | lr | epochs | seeds | batch | test acc % at last epoch (mean ± std) | "
            "mean of last 5 epochs % | train wall s / run | paper |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        ref_lr = {"biograd": "1e-3 SGD (ref.)", "bptt": "1e-4 Adam (ref.)"}
        for epochs, lr in sorted({(r["epochs"], r.get("lr") or 0.0) for r in rows}):
            lr = lr or None
            for method in ("biograd", "bptt"):
                rs = {
                    r["seed"]: r for r in rows if r["method"] == method and r["epochs"] == epochs and r.get("lr") == lr
                }
                rs = [rs[s] for s in sorted(rs)]
                if not rs:
                    continue
                l5 = [last5(method, r["seed"], epochs, lr) for r in rs]
                print(
                    f"| {method} | {ref_lr[method] if lr is None else f'{lr:g} (val-tuned)'} | {epochs} | {len(rs)} ({', '.join(str(r['seed']) for r in rs)}) | "
                    f"{rs[0]['batch']} | {_ms([r['test_acc'] for r in rs])} | {_ms(l5)} | "
                    f"{np.mean([r['train_wall_s'] for r in rs]):.0f} | "
                    f"{PAPER['nmnist'] if method == 'biograd' else 'same level as BP'} |"
                )
                key = f"nmnist_{method}_e{epochs}" + ("" if lr is None else f"_lr{lr:g}")
                out[f"{key}_test_mean"] = float(np.mean([r["test_acc"] for r in rs]))
                out[f"{key}_test_std"] = float(np.std([r["test_acc"] for r in rs], ddof=1)) if len(rs) > 1 else 0.0
                out[f"{key}_last5_mean"] = float(np.mean(l5))
                out[f"{key}_train_wall_s"] = float(np.mean([r["train_wall_s"] for r in rs]))
        ep = [r for r in _log("nmnist") if r.get("kind") == "epoch"]
        for epochs in sorted({r["epochs"] for r in rows}):
            b, p = out.get(f"nmnist_biograd_e{epochs}_last5_mean"), out.get(f"nmnist_bptt_e{epochs}_last5_mean")
            tb, tp = out.get(f"nmnist_biograd_e{epochs}_train_wall_s"), out.get(f"nmnist_bptt_e{epochs}_train_wall_s")
            if b and p:
                if epochs == min(r["epochs"] for r in rows):
                    print()
                out[f"nmnist_e{epochs}_accuracy_ratio_biograd_vs_bptt"] = b / p
                out[f"nmnist_e{epochs}_train_time_ratio_biograd_vs_bptt"] = tb / tp
                print(
                    f"- {epochs} epochs, reference lr: BioGrad / BPTT accuracy (last 5 epochs) = {b / p:.2f}, "
                    f"training wall time = {tb / tp:.2f}"
                )
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for method, color in (("biograd", "C0"), ("bptt", "C3")):
            seeds = sorted({r["seed"] for r in ep if r["method"] == method})
            for s in seeds:
                rs = [r for r in ep if r["method"] == method and r["seed"] == s]
                # A longer run of the same seed covers the shorter one: plot the longest.
                longest = max(r["epochs"] for r in rs)
                rs = list({r["epoch"]: r for r in rs if r["epochs"] == longest and r.get("lr") is None}.values())
                ax.plot(
                    [r["epoch"] for r in rs],
                    [r["eval_acc"] * 100 for r in rs],
                    color=color,
                    alpha=0.7,
                    label=method if s == seeds[0] else None,
                )
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy % (100 samples)")
        ax.set_title("nmnist-1k: BioGrad vs BPTT")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(docs / "results_nmnist.png", dpi=110)
        plt.close(fig)


def report_cv(out: dict[str, float], plt, docs: Path) -> None:
    """N-MNIST cross-validation: held-out accuracy per method and epochs."""
    cv = [r for r in _log("cv") if r.get("kind") == "fold_done"]
    if cv:
        print("\n## N-MNIST 5-fold cross-validation on the 1 000 training samples")
        print("| method | folds | epochs | batch | held-out acc % (mean ± std over folds) |")
        print("|---|---|---|---|---|")
        for epochs in sorted({r["epochs"] for r in cv}):
            for method in ("biograd", "bptt"):
                rs = [r for r in cv if r["method"] == method and r["epochs"] == epochs]
                if rs:
                    print(
                        f"| {method} | {len(rs)} ({', '.join(str(r['fold']) for r in rs)}) | {epochs} | "
                        f"{rs[0]['batch']} | {_ms([r['heldout_acc'] for r in rs])} |"
                    )
                    out[f"cv_{method}_e{epochs}_mean"] = float(np.mean([r["heldout_acc"] for r in rs]))
                    out[f"cv_{method}_e{epochs}_std"] = (
                        float(np.std([r["heldout_acc"] for r in rs], ddof=1)) if len(rs) > 1 else 0.0
                    )


def report_ablation(out: dict[str, float], plt, docs: Path) -> None:
    """Ablation sleep x feedback init: the table and the two ablation plots."""
    ab = _log("ablation")
    ab_done = [r for r in ab if r.get("kind") == "run_done"]
    if ab_done:
        print("\n## Ablation: sleep x feedback init (BioGrad, nmnist-1k)")
        print(
            "| sleep | feedback init | seeds | epochs | test acc % at last epoch | mean of last 5 epochs % | "
            "final angle hidden1 / hidden2 (deg) | norm ratio h1 / h2 |"
        )
        print("|---|---|---|---|---|---|---|---|")

        def ab_last5(run):
            accs = {
                r["epoch"]: r["eval_acc"]
                for r in ab
                if r.get("kind") == "epoch"
                and all(r[k] == run[k] for k in ("sleep", "init", "seed", "epochs", "batch"))
            }
            return float(np.mean([accs[e] for e in sorted(accs)[-5:]]))

        for epochs in sorted({r["epochs"] for r in ab_done}):
            for sleep in (True, False):
                for init in ("mirror", "random"):
                    rs = [r for r in ab_done if r["sleep"] == sleep and r["init"] == init and r["epochs"] == epochs]
                    if not rs:
                        continue
                    name = f"sleep_{'on' if sleep else 'off'}_{init}_e{epochs}"
                    ang = np.array([r["final_angle_deg"] for r in rs])
                    nr = np.array([r["final_norm_ratio"] for r in rs])
                    print(
                        f"| {'on' if sleep else 'off'} | {init} | {len(rs)} | {epochs} | "
                        f"{_ms([r['test_acc'] for r in rs])} | {_ms([ab_last5(r) for r in rs])} | "
                        f"{ang[:, 0].mean():.1f} / {ang[:, 1].mean():.1f} | "
                        f"{nr[:, 0].mean():.2f} / {nr[:, 1].mean():.2f} |"
                    )
                    out[f"ablation_{name}_test_mean"] = float(np.mean([r["test_acc"] for r in rs]))
                    out[f"ablation_{name}_last5_mean"] = float(np.mean([ab_last5(r) for r in rs]))
                    out[f"ablation_{name}_angle1_deg"] = float(ang[:, 0].mean())
        # Plots: the longest runs, their first seed.
        longest = max(r["epochs"] for r in ab_done)
        seed0 = min(r["seed"] for r in ab_done if r["epochs"] == longest)
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
        for sleep in (True, False):
            for init in ("mirror", "random"):
                tr_ = [
                    r
                    for r in ab
                    if r.get("kind") == "angle"
                    and r["sleep"] == sleep
                    and r["init"] == init
                    and r["seed"] == seed0
                    and r["epochs"] == longest
                ]
                for layer, ax in enumerate(axes):
                    ax.plot(
                        [r["samples"] for r in tr_],
                        [r["angle_deg"][layer] for r in tr_],
                        label=f"sleep {'on' if sleep else 'off'}, {init}",
                        ls="-" if sleep else "--",
                    )
        for layer, ax in enumerate(axes):
            ax.set_title(f"hidden layer {layer + 1}: angle(B, (W_out…W_{layer + 2})ᵀ)")
            ax.set_xlabel(f"training samples ({longest} epochs, seed {seed0})")
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("angle (degrees)")
        axes[1].legend(fontsize=8, loc="center right")
        fig.tight_layout()
        fig.savefig(docs / "results_ablation_angle.png", dpi=110)
        plt.close(fig)
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ep = [r for r in ab if r.get("kind") == "epoch"]
        for sleep in (True, False):
            for init in ("mirror", "random"):
                rs = [
                    r
                    for r in ep
                    if r["sleep"] == sleep and r["init"] == init and r["seed"] == seed0 and r["epochs"] == longest
                ]
                if rs:
                    ax.plot(
                        [r["epoch"] for r in rs],
                        [r["eval_acc"] * 100 for r in rs],
                        label=f"sleep {'on' if sleep else 'off'}, {init}",
                        ls="-" if sleep else "--",
                    )
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy %")
        ax.set_title("Ablation accuracy (nmnist-1k)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(docs / "results_ablation_accuracy.png", dpi=110)
        plt.close(fig)


def report_streaming(out: dict[str, float], plt, docs: Path) -> None:
    """Streaming (batch 1) vs batch mode after one pass."""
    st = _log("streaming")
    sel = [r for r in st if r.get("kind") == "select"]
    passes = [r for r in st if r.get("kind") == "pass_done"]
    if passes:
        chosen = [r for r in st if r.get("kind") == "selected"][-1]
        print("\n## Streaming (batch 1) vs batch mode, one pass over nmnist-1k Train")
        print(
            "lr selection on a validation split of train: "
            + ", ".join(
                f"lr {r['lr']:g} → {r['val_acc'] * 100:.1f} %" for r in sel if r["sleep_every"] == chosen["sleep_every"]
            )
        )
        print()
        print("| mode | batch | lr | sleep | seeds | test acc % after 1 pass | online train acc % | samples/s |")
        print("|---|---|---|---|---|---|---|---|")
        for mode in ("streaming", "batch"):
            rs = [r for r in passes if r["mode"] == mode]
            if rs:
                sleep = f"every {rs[0]['sleep_every']} samples" if rs[0]["sleep_every"] else "after every batch"
                print(
                    f"| {mode} | {rs[0]['batch']} | {rs[0]['lr']:g} | {sleep} | {len(rs)} | "
                    f"{_ms([r['test_acc'] for r in rs])} | {_ms([r['online_train_acc'] for r in rs])} | "
                    f"{np.mean([r['samples_per_s'] for r in rs]):.0f} |"
                )
                out[f"streaming_{mode}_test_mean"] = float(np.mean([r["test_acc"] for r in rs]))
                out[f"streaming_{mode}_samples_per_s"] = float(np.mean([r["samples_per_s"] for r in rs]))
        out["streaming_selected_lr"] = float(chosen["lr"])


#: the report's sections in print order; each prints its table, draws its plots into docs/ and
#: adds its figures to the flat JSON object
REPORT_SECTIONS = (report_mnist, report_nmnist, report_cv, report_ablation, report_streaming)


def cmd_report(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, float] = {}
    for section in REPORT_SECTIONS:
        section(out, plt, ROOT / "docs")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    return 0


# --- CLI ------------------------------------------------------------------------------------


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="bench.experiments", description=__doc__.splitlines()[0])
    p.add_argument("--data", help="dataset root (default $BIOGRAD_DATA)")
    sub = p.add_subparsers(dest="cmd", required=True)

    m = sub.add_parser("mnist", help="BioGrad on full MNIST until the deadline")
    m.add_argument("--epochs", type=int, default=100)
    m.add_argument("--deadline", help="UTC HH:MM: start no epoch that would end after it; stop mid-epoch past it")
    m.add_argument("--batch", type=int, default=128)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--progress-every", type=int, default=5000)
    m.add_argument("--limit", type=int, help="train on the first N samples only (smoke test)")
    m.add_argument("--limit-eval", type=int, help="evaluate on the first N val/test samples only (smoke test)")
    m.add_argument("--log", default=str(LOG_DIR / "mnist.jsonl"))
    m.add_argument("--work", default=str(WORK_DIR), help="checkpoint folder (resume from here)")
    m.set_defaults(func=cmd_mnist)

    def common(sp, log, batch=32, epochs=20):
        sp.add_argument("--epochs", type=int, default=epochs)
        sp.add_argument("--batch", type=int, default=batch)
        sp.add_argument("--log", default=str(LOG_DIR / f"{log}.jsonl"))

    n = sub.add_parser("nmnist", help="BioGrad vs BPTT on nmnist-1k")
    common(n, "nmnist")
    n.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    n.add_argument("--methods", nargs="+", default=["biograd", "bptt"])
    n.add_argument("--lr", type=float, help="learning rate (default: each method's reference rate)")
    n.add_argument("--lr-from-tune", action="store_true", help="use the rate `tune` picked on validation")
    n.set_defaults(func=cmd_nmnist)

    c = sub.add_parser("cv", help="5-fold CV on the nmnist-1k training samples")
    common(c, "cv")
    c.add_argument("--folds", type=int, default=5)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--methods", nargs="+", default=["biograd", "bptt"])
    c.set_defaults(func=cmd_cv)

    a = sub.add_parser("ablation", help="sleep on/off x feedback init mirror/random")
    common(a, "ablation")
    a.add_argument("--seeds", type=int, nargs="+", default=[0])
    a.set_defaults(func=cmd_ablation)

    t = sub.add_parser("tune", help="learning rate on a validation split of nmnist-1k train")
    common(t, "tune", epochs=15)
    t.add_argument("--method", default="biograd")
    t.add_argument("--lrs", type=float, nargs="+", default=[3e-4, 1e-3, 3e-3])
    t.add_argument("--val", type=int, default=200)
    t.add_argument("--select-seed", type=int, default=100)
    t.set_defaults(func=cmd_tune)

    s = sub.add_parser("streaming", help="batch size 1, one pass, lr picked on validation")
    s.add_argument("--lrs", type=float, nargs="+", default=[1e-4, 3e-4, 1e-3, 3e-3])
    s.add_argument("--sleep-every", type=int, default=32)
    s.add_argument("--val", type=int, default=200, help="validation samples carved from train")
    s.add_argument("--select-seed", type=int, default=100)
    s.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    s.add_argument("--batch", type=int, default=32, help="batch size of the batch-mode comparison")
    s.add_argument("--batch-lr", type=float, default=1e-3)
    s.add_argument("--log", default=str(LOG_DIR / "streaming.jsonl"))
    s.set_defaults(func=cmd_streaming)

    g = sub.add_parser("gradcheck", help="BPTT gradient vs finite differences (relaxed network)")
    g.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    g.add_argument("--sizes", type=int, nargs="+", default=[20, 12, 8, 10])
    g.add_argument("--timesteps", type=int, default=12)
    g.add_argument("--json", help="write the figures as one flat JSON object")
    g.set_defaults(func=cmd_gradcheck)

    r = sub.add_parser("report", help="tables + PNG plots from the logs")
    r.add_argument("--json", help="write the figures as one flat JSON object")
    r.set_defaults(func=cmd_report)

    args = p.parse_args(argv)
    try:
        return args.func(args)
    except BioGradError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
