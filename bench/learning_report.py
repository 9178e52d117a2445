"""Markdown tables of bench/learning.py's log (one function per section), for docs/results.md."""

from __future__ import annotations

from collections import defaultdict

import numpy as np


def _ms(values, scale=100.0, digits=1) -> str:
    v = np.asarray(values, dtype=float) * scale
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def _kind(recs, kind):
    return [r for r in recs if r.get("kind") == kind]


def report_select(recs, out) -> None:
    rows = defaultdict(list)
    for r in _kind(recs, "select"):
        rows[(r["optimizer"], r["lr"], r["beta2"], r["sleep_every"])].append(r["val_acc"])
    if not rows:
        return
    print("\n### Streaming settings chosen on validation (nmnist-1k: 800 fit / 200 validation, one pass)")
    print("| optimizer | lr | β2 | sleep every | validation % (seeds 100, 101) | mean |")
    print("|---|---|---|---|---|---|")
    for (opt, lr, b2, every), accs in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        beta = "–" if opt == "sgd" else f"{b2:g}"
        shown = ", ".join(f"{a * 100:.1f}" for a in accs)
        print(f"| {opt} | {lr:g} | {beta} | {every} | {shown} | {np.mean(accs) * 100:.1f} |")


def report_stream(recs, out) -> None:
    rows = defaultdict(list)
    for r in _kind(recs, "stream"):
        key = (r["optimizer"], r["lr"], r["beta2"], r["sleep_every"], r["feedback_init"], r["sleep"])
        rows[key].append(r)
    if not rows:
        return
    print("\n### nmnist-1k streaming: one pass over the 1 000 training samples, test on 100 (3 seeds)")
    print("| optimizer | lr | feedback init | sleep | test % | online % | final angle hidden 1 / 2 | train wall s |")
    print("|---|---|---|---|---|---|---|---|")
    for key, rs in sorted(rows.items(), key=lambda kv: (kv[0][4], not kv[0][5], kv[0][0])):
        opt, lr, _, every, init, sleep = key
        ang = np.mean([r["angle"] for r in rs], axis=0)
        sl = f"every {every}" if sleep else "off"
        print(
            f"| {opt} | {lr:g} | {init} | {sl} | {_ms([r['test_acc'] for r in rs])} | "
            f"{_ms([r['online_acc'] for r in rs])} | {ang[0]:.0f}° / {ang[1]:.0f}° | {np.mean([r['wall_s'] for r in rs]):.1f} |"
        )
        tag = f"stream_{opt}_{init}_{'sleep' if sleep else 'nosleep'}"
        out[f"{tag}_test_mean"] = float(np.mean([r["test_acc"] for r in rs]))
        out[f"{tag}_test_std"] = float(np.std([r["test_acc"] for r in rs], ddof=1)) if len(rs) > 1 else 0.0


def report_mnist_stream(recs, out) -> None:
    sel = _kind(recs, "mnist_select")
    if sel:
        print(
            "\n### MNIST streaming: settings on validation (one pass over the first 10 000, validation = last 10 000)"
        )
        print("| optimizer | lr | validation % | online % | wall s |")
        print("|---|---|---|---|---|")
        for r in sorted(sel, key=lambda r: (r["optimizer"], r["lr"])):
            print(
                f"| {r['optimizer']} | {r['lr']:g} | {r['val_acc'] * 100:.2f} | {r['online_acc'] * 100:.2f} | {r['wall_s']:.0f} |"
            )
    rows = defaultdict(list)
    for r in _kind(recs, "mnist_stream"):
        rows[(r["optimizer"], r["lr"])].append(r)
    if rows:
        print("\n### MNIST streaming: one pass over 50 000, test on 10 000")
        print("| optimizer | lr | seeds | test % | online % | train wall s / pass |")
        print("|---|---|---|---|---|---|")
        for (opt, lr), rs in sorted(rows.items()):
            print(
                f"| {opt} | {lr:g} | {len(rs)} | {_ms([r['test_acc'] for r in rs], digits=2)} | "
                f"{_ms([r['online_acc'] for r in rs], digits=2)} | {np.mean([r['wall_s'] for r in rs]):.0f} |"
            )
            out[f"mnist_stream_{opt}_test_mean"] = float(np.mean([r["test_acc"] for r in rs]))


def report_epochs15(recs, out) -> None:
    tune = _kind(recs, "tune15")
    if tune:
        print(
            "\n### nmnist-1k, 15 epochs, batch 32: learning rate on validation (800 / 200, mean of the last 5 epochs)"
        )
        print("| method | optimizer | lr | validation % (last 5 epochs) | train wall s |")
        print("|---|---|---|---|---|")
        for r in sorted(tune, key=lambda r: (r["method"], r["optimizer"], r["lr"])):
            print(
                f"| {r['method']} | {r['optimizer']} | {r['lr']:g} | {r['val_last5'] * 100:.1f} | {r['wall_s']:.0f} |"
            )
    chosen: dict = {}
    for r in tune:
        key = (r["method"], r["optimizer"])
        if key not in chosen or (r["val_last5"], -r["lr"]) > (chosen[key]["val_last5"], -chosen[key]["lr"]):
            chosen[key] = r
    rows = defaultdict(list)
    for r in _kind(recs, "epochs15"):
        rows[(r["method"], r["optimizer"], r["lr"])].append(r)
    if rows:
        print("\n### nmnist-1k, 15 epochs, batch 32, all 1 000 / test 100: the same optimizer on both sides")
        print(
            "| method | optimizer | lr | seeds | test % mean of last 5 epochs | test % last epoch | train wall s / run |"
        )
        print("|---|---|---|---|---|---|---|")
        for (method, opt, lr), rs in sorted(rows.items()):
            pick = chosen.get((method, opt))
            if pick is not None and pick["lr"] == lr:
                how = "validation"
            elif all(r.get("from_log") for r in rs):
                how = "reference, not tuned"  # bench.experiments' logged baseline runs
            else:
                continue  # a rate validation did not choose (run before the choice was known)
            print(
                f"| {method} | {opt} | {lr:g} ({how}) | {len(rs)} | {_ms([r['test_last5'] for r in rs])} | "
                f"{_ms([r['test_accs'][-1] for r in rs])} | {np.mean([r['wall_s'] for r in rs]):.0f} |"
            )
            out[f"epochs15_{method}_{opt}_last5_mean"] = float(np.mean([r["test_last5"] for r in rs]))


def report_mnist_epochs(recs, out) -> None:
    runs = defaultdict(dict)
    for r in _kind(recs, "mnist_epoch"):
        runs[(r["optimizer"], r["lr"], r["batch"], r["seed"])][r["epoch"]] = r
    for (opt, lr, batch, seed), epochs in runs.items():
        eps = [epochs[k] for k in sorted(epochs)]
        best = max(eps, key=lambda r: (r["val_acc"], -r["epoch"]))
        print(f"\n### MNIST 50 000 / 10 000 / 10 000: {opt} lr {lr:g}, batch {batch}, seed {seed}")
        print("| epochs run | best-val epoch | val % @best | test % @best-val epoch | train wall (all epochs) |")
        print("|---|---|---|---|---|")
        print(
            f"| {len(eps)} | {best['epoch']} | {best['val_acc'] * 100:.2f} | {best['test_acc'] * 100:.2f} | "
            f"{sum(r['train_s'] for r in eps) / 60:.0f} min |"
        )
        out[f"mnist_epochs_{opt}_test_at_best_val"] = best["test_acc"]


SECTIONS = (report_select, report_stream, report_mnist_stream, report_epochs15, report_mnist_epochs)


def report(recs, best) -> dict:
    out: dict = {}
    for section in SECTIONS:
        section(recs, out)
    for opt, s in best.items():
        out[f"selected_{opt}_lr"] = s["lr"]
    return out
