"""Continual-learning benchmark: every protocol of ``biograd continual`` with its methods side by side.

    nice -n 19 python -m bench.continual run [--protocols ...] [--seeds 0 1 2]   # → bench/exp_logs/continual/
    python -m bench.continual report [--json PATH]                              # tables + plots → docs/

``run`` calls ``biograd continual`` once per protocol (the same stream, seeds and samples for
every method) and appends to ``bench/exp_logs/continual/<protocol>/results.jsonl``; a
(protocol, method, seed) already logged is skipped, so an interrupted run resumes. ``report``
prints one Markdown table per protocol (mean ± std over seeds), the gain of the best local
mitigation over naive fine-tuning, draws the accuracy matrices and the live-stream curve into
docs/, and with ``--json`` writes one flat JSON object name -> number.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LOG_DIR = ROOT / "bench" / "exp_logs" / "continual"
DOCS = ROOT / "docs"

FULL = [
    "biograd",
    "biograd-adam",
    "biograd-rmsprop",
    "biograd-replay",
    "biograd-adam-replay",
    "onchip",
    "onchip-replay",
    "bptt",
    "bptt-replay",
    "joint",
    "joint-adam",
    "clp",
]
#: per protocol: methods and sizes (2 cores shared: small, stated in docs/continual.md)
PLAN = {
    "split-mnist": dict(
        methods=FULL,
        train_per_class=100,
        test_per_class=50,
    ),
    "split-nmnist": dict(
        methods=FULL,
        train_per_class=0,
        test_per_class=0,
    ),
    "permuted-mnist": dict(
        methods=[
            "biograd",
            "biograd-adam",
            "biograd-replay",
            "biograd-adam-replay",
            "onchip",
            "bptt",
            "joint",
            "joint-adam",
        ],
        train_per_class=100,
        test_per_class=30,
    ),
    "new-class-mnist": dict(
        methods=["biograd", "biograd-adam", "biograd-replay", "biograd-adam-replay", "onchip", "bptt", "clp"],
        train_per_class=100,
        test_per_class=50,
    ),
}
NAIVE, MITIGATIONS = "biograd", ("biograd-replay", "biograd-adam-replay")


def _read(protocol: str) -> list[dict]:
    path = LOG_DIR / protocol / "results.jsonl"
    if not path.exists():
        return []
    rows: dict = {}
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            rows.setdefault((r["method"], r["seed"]), r)  # a rerun of a logged pair: the first wins
    return list(rows.values())


def cmd_run(args) -> int:
    from biograd.pipeline.cli import main as biograd

    for protocol in args.protocols:
        plan = PLAN[protocol]
        done = {(r["method"], r["seed"]) for r in _read(protocol)}
        methods = [m for m in plan["methods"] if m in (args.methods or plan["methods"])]
        for seed in args.seeds:
            todo = [m for m in methods if (m, seed) not in done]
            if not todo:
                continue
            argv = ["continual", "--protocol", protocol, "--methods", *todo, "--seeds", str(seed)]
            argv += ["--train-per-class", str(plan["train_per_class"]), "--test-per-class", str(plan["test_per_class"])]
            argv += ["--out", str(LOG_DIR / protocol)] + (["--data", args.data] if args.data else [])
            print(f"$ biograd {' '.join(argv)}", flush=True)
            if biograd(argv) != 0:
                return 2
    return 0


def _ms(values) -> str:
    v = [x for x in values if x is not None]
    if not v:
        return "-"
    v = np.asarray(v) * 100
    return f"{v.mean():.1f}" if len(v) == 1 else f"{v.mean():.1f} ± {v.std(ddof=1):.1f}"


def report_protocol(protocol: str, out: dict) -> None:
    from biograd.pipeline.commands.continual import summary_table
    from biograd.pipeline.continual.run import plot_matrices

    rs = _read(protocol)
    if not rs:
        return
    order = [m for m in PLAN[protocol]["methods"] if any(r["method"] == m for r in rs)]
    rs = sorted(rs, key=lambda r: (order.index(r["method"]), r["seed"]))
    print(f"\n## {protocol} ({rs[0]['kind']}): {rs[0]['sizes']}\n")
    print(summary_table(rs))
    for name in order:
        mine = [r for r in rs if r["method"] == name]
        for key in ("average_accuracy", "forgetting", "backward_transfer"):
            vals = [r[key] for r in mine if r[key] is not None]
            if vals:
                out[f"{protocol}_{name}_{key}"] = float(np.mean(vals))
        out[f"{protocol}_{name}_seconds"] = float(np.mean([r["seconds"] for r in mine]))
    naive = [r["average_accuracy"] for r in rs if r["method"] == NAIVE]
    best = max(
        (m for m in MITIGATIONS if any(r["method"] == m for r in rs)),
        key=lambda m: np.mean([r["average_accuracy"] for r in rs if r["method"] == m]),
        default=None,
    )
    if naive and best:
        gain = np.mean([r["average_accuracy"] for r in rs if r["method"] == best]) - np.mean(naive)
        seeds = sorted({r["seed"] for r in rs if r["method"] == best})
        print(
            f"\n- best local mitigation `{best}` vs naive `{NAIVE}`: {gain * 100:+.1f} points average accuracy ({len(seeds)} seeds)"
        )
        out[f"{protocol}_mitigation_gain_points"] = float(gain * 100)
    seed0 = min(r["seed"] for r in rs)
    plot_matrices([r for r in rs if r["seed"] == seed0], DOCS / f"continual_{protocol}.png")
    curves = [r for r in rs if r["curve"]]
    if curves:
        _plot_curves(protocol, curves)


def _plot_curves(protocol: str, rs: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.3), sharey=True)
    tasks = rs[0]["tasks"]
    for k, name in enumerate(dict.fromkeys(r["method"] for r in rs)):
        mine = [r for r in rs if r["method"] == name]
        x = [p["samples"] for p in mine[0]["curve"]]
        for ax, t in zip(axes, tasks):
            y = np.mean([[p[t] * 100 for p in r["curve"]] for r in mine], axis=0)
            ax.plot(x, y, "o-", color=f"C{k}", label=f"{name} ({len(mine)} seeds)")
    for ax, t in zip(axes, tasks):
        ax.set_title(f"test accuracy on {t}", fontsize=9)
        ax.set_xlabel(f"samples into the second half of the stream ({tasks[1]})", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy %")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(DOCS / f"continual_{protocol}_curve.png", dpi=110)
    plt.close(fig)


def cmd_report(args) -> int:
    out: dict[str, float] = {}
    for protocol in PLAN:
        report_protocol(protocol, out)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    return 0


def cmd_lava_check(args) -> int:
    """The on-chip method's first ``--samples`` of the split-MNIST stream through the Lava graph
    itself (fixed_pt) and through the emulator: every learned integer weight must agree."""
    import time

    from biograd.core.data import data_root
    from biograd.deploy.lava_graph import LavaOnChip
    from biograd.pipeline.continual.methods import MethodSettings, OnChipMethod, learner_config
    from biograd.pipeline.continual.protocols import build_protocol

    plan = PLAN["split-mnist"]
    proto = build_protocol(
        "split-mnist", data_root(args.data), args.seed, plan["train_per_class"], plan["test_per_class"]
    )
    stream = [(r, int(y)) for t in proto.tasks for r, y in zip(t.train, t.train_labels)][: args.samples]
    s = MethodSettings()
    cfg = learner_config(proto.n_inputs, proto.timesteps, s, args.seed)
    from dataclasses import replace

    emu = OnChipMethod(replace(cfg, dtype="float64", sleep=False), s.onchip_lr, len(stream) + 1)
    t0 = time.perf_counter()
    for r, y in stream:
        emu.learn(r, y)
    t_emu = time.perf_counter() - t0
    t0 = time.perf_counter()
    state, counts = LavaOnChip(emu.plan, [r for r, _ in stream], [y for _, y in stream]).run_all()
    t_lava = time.perf_counter() - t0
    same = all(np.array_equal(state["weights"][l], emu.emu.w[l]) for l in range(emu.plan.n_layers))
    changed = sum(int((emu.emu.w[l] != emu.plan.layers[l].weights).sum()) for l in range(emu.plan.n_layers))
    print(
        f"split-mnist seed {args.seed}, first {len(stream)} samples of the stream: Lava fixed_pt and the emulator "
        f"learned {'IDENTICAL' if same else 'DIFFERENT'} integer weights ({changed} weights changed); "
        f"Lava {t_lava:.1f} s, emulator {t_emu:.2f} s (ratio {t_lava / max(t_emu, 1e-9):.0f}x, same load)"
    )
    return 0 if same else 1


def cmd_clp_sweep(args) -> int:
    """CLP's similarity threshold on a validation split of the *training* samples (never the test
    split), with a NumPy model of the allocation rule (allocate on no match or a wrong label)."""
    from biograd.core.data import data_root
    from biograd.pipeline.continual.clp import clp_features
    from biograd.pipeline.continual.protocols import build_protocol

    print("| protocol | sim threshold | prototypes | val acc winner-take-all | val acc lowest-index readout |")
    print("|---|---|---|---|---|")
    for name in ("split-mnist", "split-nmnist"):
        plan = PLAN[name]
        proto = build_protocol(name, data_root(args.data), 0, plan["train_per_class"], 0)
        X = np.array([clp_features(r) for t in proto.tasks for r in t.train])
        Y = np.concatenate([t.train_labels for t in proto.tasks])
        idx = np.random.default_rng(1).permutation(len(Y))
        va, tr = idx[: args.val], idx[args.val :]
        for sim in args.sims:
            vth = sim * 127**2
            W: list = []
            L: list = []
            for i in tr:
                if W:
                    fires = np.flatnonzero(np.array(W) @ X[i] > vth)
                    if fires.size and L[fires[0]] == Y[i]:
                        continue
                W.append(X[i])
                L.append(Y[i])
            a = X[va] @ np.array(W).T
            wta = np.array(L)[np.argmax(a, axis=1)]
            first = np.array([L[np.flatnonzero(r > vth)[0]] if (r > vth).any() else -1 for r in a])
            print(
                f"| {name} | {sim:g} | {len(W)} | {np.mean(wta == Y[va]) * 100:.1f} | "
                f"{np.mean(first == Y[va]) * 100:.1f} |"
            )
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="bench.continual", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run the protocols (resumes: logged runs are skipped)")
    r.add_argument("--protocols", nargs="+", choices=list(PLAN), default=list(PLAN))
    r.add_argument("--methods", nargs="+", help="only these methods (default: each protocol's list)")
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    r.add_argument("--data", help="dataset root (default $BIOGRAD_DATA)")
    r.set_defaults(func=cmd_run)
    lc = sub.add_parser("lava-check", help="on-chip method: the Lava graph itself vs the emulator on the stream")
    lc.add_argument("--samples", type=int, default=30)
    lc.add_argument("--seed", type=int, default=0)
    lc.add_argument("--data", help="dataset root (default $BIOGRAD_DATA)")
    lc.set_defaults(func=cmd_lava_check)
    cs = sub.add_parser("clp-sweep", help="CLP similarity threshold on a validation split of training samples")
    cs.add_argument("--sims", type=float, nargs="+", default=[0.8, 0.85, 0.88, 0.9, 0.92])
    cs.add_argument("--val", type=int, default=200)
    cs.add_argument("--data", help="dataset root (default $BIOGRAD_DATA)")
    cs.set_defaults(func=cmd_clp_sweep)
    rep = sub.add_parser("report", help="tables and plots from the logs")
    rep.add_argument("--json", help="write the figures as one flat JSON object")
    rep.set_defaults(func=cmd_report)
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
