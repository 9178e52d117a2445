"""``biograd continual``: continual-learning protocols run with several methods side by side."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from biograd.core.errors import BioGradError


def register(subparsers) -> None:
    from biograd.pipeline.continual.methods import METHODS
    from biograd.pipeline.continual.protocols import PROTOCOLS

    p = subparsers.add_parser(
        "continual",
        help="continual learning: accuracy matrix, forgetting and backward transfer of several methods",
        description="Train each method on the protocol's tasks in order (one pass each, the same "
        "stream, seeds and samples for every method) and evaluate on every task seen so far after "
        "each task. See docs/continual.md.",
    )
    p.add_argument("--protocol", choices=PROTOCOLS, default="split-mnist")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=["biograd", "biograd-replay"], metavar="M")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--train-per-class", type=int, default=100, help="training samples per class (0 = all)")
    p.add_argument("--test-per-class", type=int, default=50, help="test samples per class (0 = all)")
    p.add_argument("--data-seed", type=int, default=0, help="which subset of samples (same for every method)")
    p.add_argument("--hidden", type=int, default=200)
    p.add_argument("--lr", type=float, default=1e-3, help="BioGrad learning rate per sample")
    p.add_argument("--replay-per-class", type=int, default=20)
    p.add_argument("--replay-k", type=int, default=32, help="stored samples replayed at each sleep")
    p.add_argument("--sleep-every", type=int, default=32)
    p.add_argument("--out", metavar="DIR", help="write results.jsonl and the accuracy-matrix plot here")
    p.add_argument("--data", metavar="PATH", help="dataset root folder (default: $BIOGRAD_DATA)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_continual)


def _ms(values) -> str:
    v = [x for x in values if x is not None]
    if not v:
        return "-"
    v = np.asarray(v) * 100
    return f"{v.mean():.1f}" if len(v) == 1 else f"{v.mean():.1f} ± {v.std(ddof=1):.1f}"


def summary_table(results: list[dict]) -> str:
    """Markdown table: per method, mean ± std over seeds of A, F and BWT (in %)."""
    lines = [
        "| method | seeds | average accuracy % | forgetting % | backward transfer % | train samples | s / run |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(r["method"] for r in results):
        rs = [r for r in results if r["method"] == name]
        lines.append(
            f"| {name} | {len(rs)} | {_ms([r['average_accuracy'] for r in rs])} | "
            f"{_ms([r['forgetting'] for r in rs])} | {_ms([r['backward_transfer'] for r in rs])} | "
            f"{int(np.mean([r['train_samples'] for r in rs]))} | {np.mean([r['seconds'] for r in rs]):.0f} |"
        )
    return "\n".join(lines)


def format_matrix(r: dict) -> str:
    head = "after \\ on " + " ".join(f"{t:>8}" for t in r["tasks"])
    rows = [head]
    for t, row in zip(r["tasks"], r["matrix"]):
        rows.append(f"{t:>11} " + " ".join("       -" if v is None else f"{v * 100:8.1f}" for v in row))
    return "\n".join(rows)


def cmd_continual(args) -> int:
    from biograd.core.data import data_root
    from biograd.pipeline.continual.methods import MethodSettings
    from biograd.pipeline.continual.protocols import build_protocol
    from biograd.pipeline.continual.run import plot_matrices, run_method

    if args.train_per_class < 0 or args.test_per_class < 0:
        raise BioGradError("--train-per-class and --test-per-class must be >= 0")
    settings = MethodSettings(
        hidden=args.hidden,
        lr=args.lr,
        sleep_every=args.sleep_every,
        replay_per_class=args.replay_per_class,
        replay_every=args.sleep_every,
        replay_k=args.replay_k,
    )
    root = data_root(args.data)
    say = (lambda _m: None) if args.quiet else (lambda m: print("  " + m, flush=True))
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    results = []
    for seed in args.seeds:
        proto = build_protocol(args.protocol, root, seed, args.train_per_class, args.test_per_class, args.data_seed)
        if seed == args.seeds[0]:
            print(
                f"{proto.name} ({proto.kind}, {proto.dataset}): {proto.sizes()}, tasks {[t.name for t in proto.tasks]}"
            )
        for name in args.methods:
            r = run_method(proto, name, settings, seed, progress=say)
            results.append(r)
            print(f"\n{name}, seed {seed} ({r['seconds']:.0f} s):\n{format_matrix(r)}")
            if out:
                with (out / "results.jsonl").open("a") as f:
                    f.write(json.dumps(r) + "\n")
    print(f"\n{args.protocol}: {len(args.seeds)} seed(s)\n" + summary_table(results))
    if out:
        plot_matrices([r for r in results if r["seed"] == args.seeds[0]], out / f"matrix-{args.protocol}.png")
        print(f"wrote {out / 'results.jsonl'} and {out / f'matrix-{args.protocol}.png'}")
    return 0
