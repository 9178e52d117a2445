"""Learning experiments of issue 11: streaming presets, optimizers, BioGrad vs BPTT with the same optimizer.

Subcommands (each appends JSON lines to bench/exp_logs/learning.jsonl and skips what is logged):

  select      streaming (batch 1, one pass) on nmnist-1k: optimizer x lr (x sleep interval) scored
              on a validation split of the training files (800 fit / 200 val); the test split is
              never used to choose
  stream      one pass over all 1 000 training samples, test on the 100 test samples, 3 seeds, for
              the best validation setting of each optimizer, and random feedback init with and
              without sleep
  mnist-select / mnist-stream   the same on MNIST (fit = first 10 000 / val = last 10 000 training
              images for selection; the final pass is over the first 50 000, test on the 10 000)
  tune15      15 epochs, batch 32, on the 800/200 split: lr of one method + optimizer
  epochs15    15 epochs, batch 32, all 1 000 / test 100, 3 seeds, at the validation-chosen lr
  mnist-epochs  MNIST 50 000 / 10 000 / 10 000, epochs until --deadline, test at the best-val epoch
  report      Markdown tables of everything above (for docs/results.md); --json PATH

Run from the project root: ``BIOGRAD_DATA=../shared/data nice -n 19 .venv/bin/python -m bench.learning …``
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import datetime as dt
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from bench.experiments import ORDER_SALT, Log, code_fingerprint, nmnist_data
from biograd.core.data import data_root, find_dataset
from biograd.sources.base import epoch_order as _epoch_order

ROOT = Path(__file__).resolve().parent.parent
LOG = ROOT / "bench" / "exp_logs" / "learning.jsonl"
SELECT_SEEDS = (100, 101)  # init seeds averaged when scoring a setting on validation
FINAL_SEEDS = (0, 1, 2)
GRID = {
    "sgd": [1e-4, 3e-4, 1e-3],
    "rmsprop": [3e-5, 1e-4, 3e-4],
    "adam": [3e-5, 1e-4, 3e-4],
    "layer_rms": [1e-4, 3e-4, 1e-3],
}


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """bench.experiments' sample orders (same salt), so runs of both scripts see the same batches."""
    return _epoch_order(n, seed, epoch, salt=ORDER_SALT)


def _log(args) -> Log:
    log = Log(Path(args.log))
    log.append({"kind": "start", "command": "python -m bench.learning " + " ".join(sys.argv[1:]), **code_fingerprint()})
    return log


def _done(log: Log, kind: str, tag: dict) -> dict | None:
    for r in log.read():
        if r.get("kind") == kind and all(r.get(k) == v for k, v in tag.items()):
            return r
    return None


def _split(n: int, n_val: int, seed: int = 100):
    perm = np.random.default_rng([seed, 15485863]).permutation(n)
    return perm[:-n_val], perm[-n_val:]


def streaming_cfg(preset: str, seed: int, **kw):
    from biograd.learner.config import MNIST_STREAMING, NMNIST_STREAMING

    base = NMNIST_STREAMING if preset == "nmnist" else MNIST_STREAMING
    return replace(base, seed=seed, **kw)


def one_pass(cfg, samples, labels, order, evaluate_sets=(), progress=None):
    """Train once over ``order`` (streaming); returns (online acc, wall s, [accuracy per eval set]).

    ``progress(k, online_acc)`` is called every 5 000 samples (long passes log as they go).
    """
    from biograd.learner.network import BioGradLearner

    net = BioGradLearner(cfg)
    t0 = time.perf_counter()
    correct = 0
    for k, i in enumerate(order, 1):
        res = net.train_sample(samples(i), int(labels[i]))
        correct += res.prediction == labels[i]
        if progress is not None and k % 5000 == 0:
            progress(k, correct / k)
    net.flush()
    wall = time.perf_counter() - t0
    accs = [float(np.mean([net.predict(x)[0] == y for x, y in zip(xs, ys)])) for xs, ys in evaluate_sets]
    return correct / len(order), wall, accs, net


# --- nmnist-1k streaming ---------------------------------------------------------------------


def cmd_select(args) -> int:
    tr, ytr, _, _ = nmnist_data(args)
    log = _log(args)
    fit, val = _split(len(tr), 200)
    vx, vy = [tr[i] for i in val], ytr[val]
    settings = [(o, lr, args.sleep_every, 0.999) for o, lrs in GRID.items() for lr in lrs]
    settings += [("rmsprop", lr, args.sleep_every, 0.99) for lr in GRID["rmsprop"]]
    if args.optimizers:
        settings = [s for s in settings if s[0] in args.optimizers]
    if args.lrs:
        settings = [s for s in settings if s[1] in args.lrs]
    for opt, lr, every, beta2 in settings:
        for seed in SELECT_SEEDS:
            tag = {"exp": "select", "optimizer": opt, "lr": lr, "sleep_every": every, "beta2": beta2, "seed": seed}
            if _done(log, "select", tag):
                continue
            cfg = streaming_cfg("nmnist", seed, optimizer=opt, lr=lr, sleep_every=every, beta2=beta2)
            online, wall, (acc,), _ = one_pass(cfg, lambda i: tr[i], ytr, fit, [(vx, vy)])
            log.append({"kind": "select", **tag, "val_acc": acc, "online_acc": online, "wall_s": wall})
            print(f"  {tag}: val {acc:.3f} online {online:.3f} ({wall:.1f}s)", flush=True)
    return 0


def best_settings(log: Log, exp: str = "select") -> dict:
    """Per optimizer: the (lr, sleep_every, beta2) with the best mean validation accuracy over the seeds."""
    scores: dict = {}
    for r in log.read():
        if r.get("kind") == exp:
            key = (r["optimizer"], r["lr"], r["sleep_every"], r["beta2"])
            scores.setdefault(key, []).append(r["val_acc"])
    best: dict = {}
    for key, accs in scores.items():
        if len(accs) < len(SELECT_SEEDS):
            continue
        cur = best.get(key[0])
        if cur is None or (np.mean(accs), -key[1]) > (cur[1], -cur[0][1]):
            best[key[0]] = (key, float(np.mean(accs)))
    return {opt: {"lr": k[1], "sleep_every": k[2], "beta2": k[3], "val_acc": acc} for opt, (k, acc) in best.items()}


def cmd_stream(args) -> int:
    tr, ytr, te, yte = nmnist_data(args)
    log = _log(args)
    best = best_settings(log)
    rows = []
    for opt, s in best.items():
        for init, sleep in (("mirror", True), ("random", True), ("random", False)):
            if init == "random" and opt not in ("sgd", args.adaptive):
                continue
            rows.append((opt, s, init, sleep))
    for opt, s, init, sleep in rows:
        for seed in FINAL_SEEDS:
            tag = {"exp": "stream", "optimizer": opt, "lr": s["lr"], "sleep_every": s["sleep_every"]}
            tag.update(beta2=s["beta2"], feedback_init=init, sleep=sleep, seed=seed)
            if _done(log, "stream", tag):
                continue
            cfg = streaming_cfg(
                "nmnist",
                seed,
                optimizer=opt,
                lr=s["lr"],
                sleep_every=s["sleep_every"],
                beta2=s["beta2"],
                feedback_init=init,
                sleep=sleep,
            )
            order = epoch_order(len(tr), seed, 0)
            online, wall, (acc,), net = one_pass(cfg, lambda i: tr[i], ytr, order, [(te, yte)])
            angles = [a for a, _ in net.feedback_alignment()]
            log.append(
                {"kind": "stream", **tag, "test_acc": acc, "online_acc": online, "wall_s": wall, "angle": angles}
            )
            print(f"  {tag}: test {acc:.3f} online {online:.3f} angle {angles} ({wall:.1f}s)", flush=True)
    return 0


# --- MNIST streaming ---------------------------------------------------------------------------


def _mnist(args):
    from bench.exp_data import load_mnist

    xtr, ytr, xte, yte = load_mnist(find_dataset(data_root(args.data), "mnist"))
    return xtr, ytr, xte, yte


def _mnist_eval_set(images, labels, seed, salt, T):
    from biograd.learner.encoding import mnist_rate_raster

    # fixed encoding noise per split, as in bench.experiments mnist
    return [mnist_rate_raster(img, T, np.random.default_rng([seed, salt, i])) for i, img in enumerate(images)], labels


def _mnist_pass(cfg, xtr, ytr, order, evals, seed, progress=None):
    from biograd.learner.encoding import mnist_rate_raster

    def sample(i):
        return mnist_rate_raster(xtr[i], cfg.timesteps, np.random.default_rng([seed, 0, i]))

    return one_pass(cfg, sample, ytr, order, evals, progress)


def cmd_mnist_select(args) -> int:
    xtr, ytr, _, _ = _mnist(args)
    log = _log(args)
    n_fit, n_val = args.fit, args.val
    settings = [("sgd", lr) for lr in (1e-4, 3e-4, 1e-3)] + [(args.adaptive, lr) for lr in (3e-5, 1e-4, 3e-4)]
    if args.only:  # e.g. rmsprop:1e-4 (to run settings as parallel processes)
        settings = [(o, float(lr)) for o, lr in (x.split(":") for x in args.only)]
    for opt, lr in settings:
        seed = SELECT_SEEDS[0]
        tag = {"exp": "mnist_select", "optimizer": opt, "lr": lr, "fit": n_fit, "val": n_val, "seed": seed}
        if _done(log, "mnist_select", tag):
            continue
        cfg = streaming_cfg("mnist", seed, optimizer=opt, lr=lr)
        val = _mnist_eval_set(xtr[60_000 - n_val :], ytr[60_000 - n_val :], seed, 1, cfg.timesteps)
        online, wall, (acc,), _ = _mnist_pass(cfg, xtr, ytr, np.arange(n_fit), [val], seed)
        log.append({"kind": "mnist_select", **tag, "val_acc": acc, "online_acc": online, "wall_s": wall})
        print(f"  {tag}: val {acc:.4f} online {online:.4f} ({wall:.1f}s)", flush=True)
    return 0


def cmd_mnist_stream(args) -> int:
    xtr, ytr, xte, yte = _mnist(args)
    log = _log(args)
    sel = [r for r in log.read() if r.get("kind") == "mnist_select"]
    for opt in args.optimizers or sorted({r["optimizer"] for r in sel}):
        # without a validation choice for this optimizer: the preset's rate (args.lr)
        cands = [r for r in sel if r["optimizer"] == opt] or [{"lr": args.lr, "val_acc": 0.0}]
        best = max(cands, key=lambda r: (r["val_acc"], -r["lr"]))
        for seed in args.seed_list or FINAL_SEEDS[: args.seeds]:
            tag = {"exp": "mnist_stream", "optimizer": opt, "lr": best["lr"], "seed": seed, "n_train": 50_000}
            if _done(log, "mnist_stream", tag):
                continue
            cfg = streaming_cfg("mnist", seed, optimizer=opt, lr=best["lr"])
            test = _mnist_eval_set(xte, yte, seed, 2, cfg.timesteps)
            order = epoch_order(50_000, seed, 0)
            t0 = time.perf_counter()

            def progress(k, online, tag=tag, t0=t0):
                log.append({"kind": "mnist_stream_progress", **tag, "samples": k, "online_acc": online})
                print(f"  {k} samples: online {online:.4f} ({time.perf_counter() - t0:.0f}s)", flush=True)

            online, wall, (acc,), _ = _mnist_pass(cfg, xtr, ytr, order, [test], seed, progress)
            log.append({"kind": "mnist_stream", **tag, "test_acc": acc, "online_acc": online, "wall_s": wall})
            print(f"  {tag}: test {acc:.4f} online {online:.4f} ({wall:.1f}s)", flush=True)
    return 0


# --- 15 epochs, batch 32: BioGrad vs BPTT with the same optimizer ------------------------------------


def _make(method, seed, batch, lr, optimizer):
    from bench.experiments import BioGradRun, BPTTRun
    from biograd.learner.bptt_baseline import BPTTConfig
    from biograd.learner.config import NMNIST_LEARNER

    if method == "biograd":
        return BioGradRun(replace(NMNIST_LEARNER, seed=seed, batch_size=batch, lr=lr, optimizer=optimizer))
    if optimizer != "adam":
        raise SystemExit("the BPTT baseline trains with Adam only")
    return BPTTRun(BPTTConfig.from_learner(NMNIST_LEARNER, seed=seed, batch_size=batch, lr=lr))


def _epochs(run, tr, ytr, te, yte, epochs, seed, log=None, tag=None):
    """Train ``epochs`` epochs; each epoch's accuracy is logged at once (a partial run counts)."""
    accs = []
    t0 = time.perf_counter()
    for e in range(epochs):
        run.train_epoch(tr, ytr, epoch_order(len(tr), seed, e))
        accs.append(run.evaluate(te, yte))
        if log is not None:
            log.append({"kind": "epoch15", **(tag or {}), "epoch": e + 1, "acc": accs[-1]})
        print(f"    epoch {e + 1}: {accs[-1]:.3f}", flush=True)
    return accs, time.perf_counter() - t0


def cmd_tune15(args) -> int:
    tr, ytr, _, _ = nmnist_data(args)
    log = _log(args)
    fit, val = _split(len(tr), 200)
    for lr in args.lrs:
        tag = {"exp": "tune15", "method": args.method, "optimizer": args.optimizer, "lr": lr, "epochs": args.epochs}
        tag.update(batch=args.batch, seed=SELECT_SEEDS[0])
        if _done(log, "tune15", tag):
            continue
        run = _make(args.method, SELECT_SEEDS[0], args.batch, lr, args.optimizer)
        accs, wall = _epochs(run, [tr[i] for i in fit], ytr[fit], [tr[i] for i in val], ytr[val], args.epochs, 100)
        log.append({"kind": "tune15", **tag, "val_accs": accs, "val_last5": float(np.mean(accs[-5:])), "wall_s": wall})
    return 0


def cmd_epochs15(args) -> int:
    tr, ytr, te, yte = nmnist_data(args)
    log = _log(args)
    tuned = [
        r
        for r in log.read()
        if r.get("kind") == "tune15" and r["method"] == args.method and r["optimizer"] == args.optimizer
    ]
    if args.lr:  # a given rate (e.g. the baseline's reference rate), reported as not tuned here
        lr = args.lr
    elif not tuned:
        raise SystemExit(f"run tune15 --method {args.method} --optimizer {args.optimizer} first")
    else:
        lr = max(tuned, key=lambda r: (r["val_last5"], -r["lr"]))["lr"]
    if args.method == "bptt" and lr == 1e-4 and args.epochs == 15 and args.batch == 32:
        _reuse_logged_bptt(log, lr, args)
    for seed in args.seeds or FINAL_SEEDS:
        tag = {"exp": "epochs15", "method": args.method, "optimizer": args.optimizer, "lr": lr, "epochs": args.epochs}
        tag.update(batch=args.batch, seed=seed)
        if _done(log, "epochs15", tag):
            continue
        run = _make(args.method, seed, args.batch, lr, args.optimizer)
        accs, wall = _epochs(run, tr, ytr, te, yte, args.epochs, seed, log, tag)
        log.append(
            {"kind": "epochs15", **tag, "test_accs": accs, "test_last5": float(np.mean(accs[-5:])), "wall_s": wall}
        )
    return 0


def _reuse_logged_bptt(log: Log, lr: float, args) -> None:
    """BPTT + Adam 1e-4 at batch 32 is bench.experiments' reference run: its logged epochs (same
    code, seeds, sample orders and batches) are these runs; copy them instead of recomputing."""
    logged = Log(ROOT / "bench" / "exp_logs" / "nmnist.jsonl").read()
    for seed in FINAL_SEEDS:
        tag = {"exp": "epochs15", "method": "bptt", "optimizer": "adam", "lr": lr, "epochs": args.epochs}
        tag.update(batch=args.batch, seed=seed)
        if _done(log, "epochs15", tag):
            continue
        eps = {
            r["epoch"]: r
            for r in logged
            if r.get("kind") == "epoch"
            and r.get("method") == "bptt"
            and r.get("seed") == seed
            and r.get("batch") == args.batch
            and r.get("lr") is None  # the reference rate, 1e-4
            and r["epoch"] <= args.epochs
        }
        if len(eps) == args.epochs:
            accs = [eps[e]["eval_acc"] for e in range(1, args.epochs + 1)]
            wall = sum(eps[e]["train_s"] for e in eps)
            log.append(
                {"kind": "epochs15", **tag, "test_accs": accs, "test_last5": float(np.mean(accs[-5:])), "wall_s": wall}
                | {"from_log": "bench/exp_logs/nmnist.jsonl"}
            )


# --- MNIST multi-epoch -------------------------------------------------------------------------


def cmd_mnist_epochs(args) -> int:
    from biograd.learner.config import MNIST_LEARNER
    from biograd.learner.encoding import mnist_rate_raster
    from biograd.learner.network import BioGradLearner

    xtr, ytr, xte, yte = _mnist(args)
    log = _log(args)
    cfg = replace(MNIST_LEARNER, seed=args.seed, batch_size=args.batch, optimizer=args.optimizer, lr=args.lr)
    deadline = None
    if args.deadline:
        hh, mm = map(int, args.deadline.split(":"))
        deadline = dt.datetime.now(dt.timezone.utc).replace(hour=hh, minute=mm, second=0, microsecond=0).timestamp()
    tag = {"exp": "mnist_epochs", "optimizer": args.optimizer, "lr": args.lr, "batch": args.batch, "seed": args.seed}
    log.append({"kind": "mnist_epochs_start", **tag, "config": asdict(cfg)})
    val = _mnist_eval_set(xtr[50_000:], ytr[50_000:], args.seed, 1, cfg.timesteps)
    test = _mnist_eval_set(xte, yte, args.seed, 2, cfg.timesteps)
    net = BioGradLearner(cfg)
    t_start = time.perf_counter()
    last_epoch = 0.0
    for epoch in range(args.epochs):
        if deadline and time.time() + last_epoch > deadline:
            print("next epoch would end after the deadline: stopping", flush=True)
            break
        t0 = time.perf_counter()
        for i in epoch_order(50_000, args.seed, epoch):
            r = mnist_rate_raster(xtr[i], cfg.timesteps, np.random.default_rng([args.seed, epoch, i]))
            net.train_sample(r, int(ytr[i]))
        net.flush()
        train_s = time.perf_counter() - t0
        accs = [float(np.mean([net.predict(x)[0] == y for x, y in zip(xs, ys)])) for xs, ys in (val, test)]
        last_epoch = time.perf_counter() - t0
        log.append(
            {
                "kind": "mnist_epoch",
                **tag,
                "epoch": epoch + 1,
                "val_acc": accs[0],
                "test_acc": accs[1],
                "train_s": train_s,
            }
        )
        print(f"  epoch {epoch + 1}: val {accs[0]:.4f} test {accs[1]:.4f} ({train_s:.0f}s)", flush=True)
    log.append({"kind": "mnist_epochs_end", **tag, "wall_s": time.perf_counter() - t_start})
    return 0


# --- report ------------------------------------------------------------------------------------


def _ms(values) -> str:
    v = np.asarray(values, dtype=float) * 100
    return f"{v.mean():.1f} ± {v.std(ddof=1):.1f}" if len(v) > 1 else f"{v[0]:.1f}"


def cmd_report(args) -> int:
    import contextlib
    import io

    from bench.learning_report import report

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        out = report(Log(Path(args.log)).read(), best_settings(Log(Path(args.log))))
    text = buf.getvalue()
    print(text)
    if args.write:
        # the tables go between the markers of docs/results.md §0; the prose around them is kept
        doc = Path(args.write)
        body = doc.read_text()
        begin, end = "<!-- learning:begin -->", "<!-- learning:end -->"
        head, rest = body.split(begin, 1)
        _, tail = rest.split(end, 1)
        doc.write_text(f"{head}{begin}\n{text.strip()}\n{end}{tail}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--log", default=str(LOG))
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("select")
    s.add_argument("--sleep-every", type=int, default=128)
    s.add_argument("--optimizers", nargs="+", help="only these optimizers of the grid")
    s.add_argument("--lrs", type=float, nargs="+", help="only these rates of the grid")
    s.set_defaults(func=cmd_select)
    s = sub.add_parser("stream")
    s.add_argument("--adaptive", default="rmsprop", help="the adaptive optimizer of the random-feedback rows")
    s.set_defaults(func=cmd_stream)
    s = sub.add_parser("mnist-select")
    s.add_argument("--fit", type=int, default=10_000)
    s.add_argument("--val", type=int, default=10_000)
    s.add_argument("--adaptive", default="rmsprop")
    s.add_argument("--only", nargs="+", metavar="OPT:LR", help="only these settings")
    s.set_defaults(func=cmd_mnist_select)
    s = sub.add_parser("mnist-stream")
    s.add_argument("--seeds", type=int, default=3)
    s.add_argument("--optimizers", nargs="+", help="default: every optimizer of mnist-select")
    s.add_argument("--seed-list", type=int, nargs="+", help="these seeds (parallel processes)")
    s.add_argument("--lr", type=float, default=1e-4, help="rate when mnist-select has none for the optimizer")
    s.set_defaults(func=cmd_mnist_stream)
    for name, func in (("tune15", cmd_tune15), ("epochs15", cmd_epochs15)):
        s = sub.add_parser(name)
        s.add_argument("--method", choices=("biograd", "bptt"), required=True)
        s.add_argument("--optimizer", default="adam")
        s.add_argument("--epochs", type=int, default=15)
        s.add_argument("--batch", type=int, default=32)
        s.add_argument("--lrs", type=float, nargs="+", default=[3e-5, 1e-4, 3e-4])
        s.add_argument("--seeds", type=int, nargs="+", help="epochs15: only these seeds (parallel runs)")
        s.add_argument("--lr", type=float, help="epochs15: this rate instead of the validation choice")
        s.set_defaults(func=func)
    s = sub.add_parser("mnist-epochs")
    s.add_argument("--optimizer", default="adam")
    s.add_argument("--lr", type=float, default=1e-4)
    s.add_argument("--batch", type=int, default=32)
    s.add_argument("--epochs", type=int, default=50)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--deadline", help="UTC HH:MM: no epoch starts that would end after it")
    s.set_defaults(func=cmd_mnist_epochs)
    s = sub.add_parser("report")
    s.add_argument("--json")
    s.add_argument("--write", help="replace the tables between <!-- learning:begin/end --> in this file")
    s.set_defaults(func=cmd_report)
    args = ap.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
