"""Quick accuracy check of the BioGrad learner on nmnist-1k: train E epochs on Train, test on Test.

    BIOGRAD_DATA=../shared/data .venv/bin/python bench/learner_accuracy.py [--batch-size 1 --lr 1e-3 ...]

Prints one line per epoch and, with --json PATH, writes a flat JSON of the figures.
Hyper-parameters are for a quick demonstration on 1 000 samples, not the paper's settings.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from biograd.core.data import data_root  # noqa: E402
from biograd.learner.config import NMNIST_STREAMING  # noqa: E402
from biograd.learner.encoding import encode_nmnist  # noqa: E402
from biograd.learner.network import BioGradLearner  # noqa: E402
from biograd.sources.nmnist import list_split, read_nmnist  # noqa: E402


def load_split(root: Path, split: str, limit: int = 0):
    items = list_split(root, split)
    if limit:
        items = items[:: max(1, len(items) // limit)][:limit]
    return [(encode_nmnist(read_nmnist(p), source=str(p)), label) for p, label in items]


def evaluate(learner, data):
    correct = sum(learner.predict(r)[0] == y for r, y in data)
    return correct / len(data)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="data root (default: $BIOGRAD_DATA)")
    ap.add_argument("--dataset", default="nmnist-1k")
    ap.add_argument("--epochs", type=int, default=1)
    # defaults = learner.config.NMNIST_STREAMING (chosen on validation, docs/results.md)
    ap.add_argument("--batch-size", type=int, default=NMNIST_STREAMING.batch_size)
    ap.add_argument("--optimizer", default=NMNIST_STREAMING.optimizer, choices=["sgd", "rmsprop", "adam", "layer_rms"])
    ap.add_argument("--lr", type=float, default=NMNIST_STREAMING.lr)
    ap.add_argument("--sleep-every", type=int, default=NMNIST_STREAMING.sleep_every)
    ap.add_argument("--no-sleep", action="store_true")
    ap.add_argument("--feedback-init", default="mirror", choices=["mirror", "random"])
    ap.add_argument("--hidden", default="500,100", help="hidden layer sizes")
    ap.add_argument("--engine", default="event", choices=["event", "synapse"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--val",
        type=int,
        default=0,
        help="hold out N random Train samples and report accuracy on them instead of Test "
        "(for choosing hyper-parameters; never tune on Test)",
    )
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    root = data_root(args.data) / args.dataset
    train = load_split(root, "train")
    if args.val:
        perm = np.random.default_rng(12345).permutation(len(train))
        test = [train[i] for i in perm[: args.val]]
        train = [train[i] for i in perm[args.val :]]
        split_name = "val"
    else:
        test = load_split(root, "test")
        split_name = "test"
    hidden = tuple(int(h) for h in args.hidden.split(","))
    cfg = replace(
        NMNIST_STREAMING,
        layer_sizes=(2312, *hidden, 10),
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        lr=args.lr,
        sleep_every=args.sleep_every,
        engine=args.engine,
        seed=args.seed,
        sleep=not args.no_sleep,
        feedback_init=args.feedback_init,
    )
    learner = BioGradLearner(cfg)
    rng = np.random.default_rng(args.seed)
    out = {"train_samples": len(train), f"{split_name}_samples": len(test)}
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        hits = 0
        for i in rng.permutation(len(train)):
            raster, label = train[i]
            hits += learner.train_sample(raster, label).prediction == label
        learner.flush()
        elapsed = time.perf_counter() - t0
        acc = evaluate(learner, test)
        angles = [round(a, 1) for a, _ in learner.feedback_alignment()]
        print(
            f"epoch {epoch + 1}: train running acc {hits / len(train):.3f}  {split_name} acc {acc:.3f}  "
            f"({elapsed:.1f} s, {len(train) / elapsed:.0f} samples/s, {learner.sleeps} sleeps, "
            f"feedback angles {angles} deg)",
            flush=True,
        )
        out[f"epoch{epoch + 1}_{split_name}_accuracy"] = acc
        out[f"epoch{epoch + 1}_train_running_accuracy"] = hits / len(train)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
