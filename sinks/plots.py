"""Plots of a run, read back from its run directory (matplotlib Agg, PNG).

``make_plots(run_dir)`` writes into ``<run_dir>/plots/``:

- ``learning_curves.png``  running train accuracy and every evaluation (val/test) over samples
- ``confusion.png``        the latest test (else validation, else the run's own) confusion matrix
- ``feedback_angle.png``   angle between B_l and (W_out … W_{l+1})^T and their norm ratio, per hidden
                           layer, with 0° (B mirrors the forward weights: backprop) and 90° (unrelated,
                           as a random B starts) marked
- ``weights.png``          input weights of the most class-selective first-layer units, drawn on the
                           sensor (ON and OFF apart), from the latest checkpoint
- ``event_rate.png``       input events/s and samples/s against time since the run started

The plots folder is emptied of PNGs first, so nothing from an earlier run is left in it.

A plot whose data the run does not have (no sleep records, no checkpoint) is
not drawn; :func:`make_plots` returns why, and ``biograd report`` prints it.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from biograd.core.errors import DataFormatError  # noqa: E402
from biograd.sinks.checkpoints import latest_checkpoint, load_checkpoint  # noqa: E402
from biograd.sinks.metrics import find_metrics_log, read_metrics  # noqa: E402

log = logging.getLogger(__name__)

PLOT_NAMES = ("learning_curves", "confusion", "feedback_angle", "weights", "event_rate")
EVAL_COLOURS = {"val": "tab:orange", "validation": "tab:orange", "test": "tab:green", "train": "tab:blue"}


def make_plots(run_dir, weights_loader, out_dir=None, initial_weights=None) -> tuple[dict[str, Path], dict[str, str]]:
    """Draw every plot the run's data allows; return (name → PNG path, name → reason not drawn).

    ``weights_loader(npz_path)`` loads a learner checkpoint (``BioGradLearner.load``) for the weights
    plot; ``initial_weights(learner)`` gives its weights before learning (the same seed rebuilds
    them), so the plot shows what was learned rather than the random start.
    """
    run_dir = Path(run_dir)
    rows = read_metrics(find_metrics_log(run_dir))
    out = Path(out_dir) if out_dir else run_dir / "plots"
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.png"):  # a plot this run cannot draw must not show an earlier run's
        stale.unlink()
    made, skipped = {}, {}
    for name, draw in (
        ("learning_curves", _learning_curves),
        ("confusion", _confusion),
        ("feedback_angle", _feedback_angle),
        ("event_rate", _event_rate),
    ):
        fig = draw(rows, _run_start(run_dir, rows)) if draw is _event_rate else draw(rows)
        if isinstance(fig, str):
            skipped[name] = fig
            continue
        made[name] = _save(fig, out / f"{name}.png")
    fig = _weights(run_dir, weights_loader, initial_weights)
    if isinstance(fig, str):
        skipped["weights"] = fig
    else:
        made["weights"] = _save(fig, out / "weights.png")
    for name, reason in skipped.items():
        log.info("%s.png not drawn: %s", name, reason)
    return made, skipped


def _save(fig, path: Path) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    tmp.replace(path)  # a dashboard or viewer never sees a half-written PNG
    return path


def _of(rows, kind):
    return [r for r in rows if r.get("type") == kind]


def _learning_curves(rows):
    metrics = [
        r
        for r in _of(rows, "metrics")
        if r.get("accuracy_running") is not None and r.get("phase", "train") in ("train", "live")
    ]
    evals = [r for r in _of(rows, "eval") if r.get("accuracy") is not None]
    if not metrics and not evals:
        return "no metrics or eval rows with an accuracy"
    fig, ax = plt.subplots(figsize=(7, 4.2))
    # Test-phase rows all sit at one sample count (no learning during a test pass): the
    # eval records show them; running curves are drawn for the phases that learn.
    for phase in ("train", "live"):
        pts = [(r["samples"], r["accuracy_running"]) for r in metrics if r.get("phase", "train") == phase]
        if not pts:
            continue
        x, y = zip(*pts)
        ax.plot(x, 100 * np.asarray(y), label=f"{phase} (running)", lw=1.2, color=EVAL_COLOURS.get(phase))
    # An eval record's "samples" counts the evaluated samples; its place on the x axis is
    # the training samples seen when it ran: those of the last metrics row before it.
    seen, at = 0, {}
    for r in rows:
        if r.get("type") == "metrics" and r.get("samples") is not None:
            seen = r["samples"]
        elif r.get("type") == "eval":
            at[id(r)] = seen
    for split in sorted({r["split"] for r in evals}):
        pts = [(at[id(r)], r["accuracy"]) for r in evals if r["split"] == split]
        x, y = zip(*pts)
        ax.plot(x, 100 * np.asarray(y), "o--", label=f"{split} (evaluation)", ms=5, color=EVAL_COLOURS.get(split))
    ax.set_xlabel("training samples seen")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.axhline(10, color="0.7", lw=0.8, ls=":", label="chance (10 %)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    ax.set_title("Learning curves")
    fig.tight_layout()
    return fig


def _confusion(rows):
    chosen, title = None, None
    for split in ("test", "val", "validation"):
        found = [r for r in _of(rows, "eval") if r.get("split") == split and r.get("confusion") is not None]
        if found:
            chosen = found[-1]
            epoch = chosen.get("epoch")
            title = f"{split} evaluation" + (f" after epoch {epoch}" if epoch is not None else "")
            break
    if chosen is None:
        for phase in ("test", "live", "train"):
            found = [r for r in _of(rows, "confusion") if r.get("phase") == phase]
            if found:
                chosen = found[-1]
                title = f"all {phase} predictions of the run" + (" (while learning)" if phase == "train" else "")
                break
    if chosen is None:
        return "no eval record with a confusion matrix and no labelled predictions"
    matrix = np.asarray(chosen["confusion"], dtype=np.int64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise DataFormatError("metrics log", f"confusion matrix has shape {matrix.shape}, expected square")
    n = matrix.shape[0]
    total = matrix.sum()
    acc = np.trace(matrix) / total if total else float("nan")
    fig, ax = plt.subplots(figsize=(5.6, 5))
    im = ax.imshow(matrix, cmap="Blues")
    threshold = matrix.max() / 2 if matrix.size else 0
    for i in range(n):
        for j in range(n):
            if matrix[i, j]:
                ax.text(
                    j,
                    i,
                    str(matrix[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if matrix[i, j] > threshold else "black",
                )
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"Confusion: {title}\n{total} samples, accuracy {100 * acc:.1f} %", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def _feedback_angle(rows):
    sleeps = [r for r in _of(rows, "sleep") if r.get("angle_deg")]
    if not sleeps:
        return "no sleep records (sleep off, or no batch update yet)"
    x = np.array([r["samples"] for r in sleeps])
    angles = np.array([[np.nan if v is None else v for v in r["angle_deg"]] for r in sleeps], dtype=float)
    ratios = np.array([[np.nan if v is None else v for v in r["norm_ratio"]] for r in sleeps], dtype=float)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 5.2), sharex=True)
    for layer in range(angles.shape[1]):
        ax1.plot(x, angles[:, layer], ".-", ms=3, lw=1, label=f"hidden layer {layer + 1}")
        ax2.plot(x, ratios[:, layer], ".-", ms=3, lw=1, label=f"hidden layer {layer + 1}")
    ax1.set_ylabel("angle B vs (W…)ᵀ (deg)")
    ax1.set_ylim(-3, 100)
    ax1.set_yticks([0, 30, 45, 60, 90])
    ax1.axhline(90, color="tab:red", lw=1, ls="--", label="90°: unrelated (a random B)")
    ax1.axhline(0, color="tab:green", lw=1, ls="--", label="0°: mirror (B = (W…)ᵀ, as backprop)")
    ax1.legend(fontsize=7, loc="center right")
    ax1.grid(alpha=0.3)
    ax1.set_title("Feedback alignment after each sleep (lower = closer to backprop)")
    ax2.set_ylabel("norm ratio |B| / |(W…)ᵀ|")
    ax2.set_xlabel("training samples seen")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _run_start(run_dir: Path, rows) -> float | None:
    """When the run started: its config.toml is written first (earlier rows of a resumed run count)."""
    times = [r["time"] for r in rows if isinstance(r.get("time"), (int, float))]
    config = run_dir / "config.toml"
    if config.exists():
        times.append(config.stat().st_mtime)
    return min(times) if times else None


def _event_rate(rows, start: float | None = None):
    # Over wall-clock time: sample counts stand still during test passes, time does not.
    metrics = [r for r in _of(rows, "metrics") if r.get("events_per_s") is not None and r.get("time") is not None]
    if not metrics:
        return "no metrics rows with events_per_s and time"
    t = np.array([r["time"] for r in metrics], dtype=float)
    t0 = min(start, t[0]) if start is not None else t[0]
    # Each metrics row averages the span since the row before it (the first: since the start).
    t = np.concatenate([[t0], t]) - t0
    ev = np.array([r["events_per_s"] for r in metrics], dtype=float)
    sps = np.array([np.nan if r.get("samples_per_s") is None else r["samples_per_s"] for r in metrics], dtype=float)
    minutes = t[-1] > 300
    x = t / 60 if minutes else t
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    ax1.stairs(ev / 1e3, x, color="tab:purple", lw=1.3)
    ax1.set_ylabel("thousand input events / s")
    ax2.stairs(sps, x, color="tab:gray", lw=1.3)
    ax2.set_ylabel("samples / s")
    ax2.set_xlabel("time since the run started (" + ("min" if minutes else "s") + ")")
    x = x[1:]  # row i covers x[i-1] .. x[i]
    # Shade the spans of non-training phases (a test pass only predicts, so it runs faster).
    phases = [r.get("phase", "train") for r in metrics]
    shaded = set()
    start = 0
    for i in range(1, len(phases) + 1):
        if i == len(phases) or phases[i] != phases[start]:
            if phases[start] != "train":
                # A metrics row covers the samples since the previous row: the span starts there.
                left = x[start - 1] if start > 0 else 0.0
                for ax in (ax1, ax2):
                    ax.axvspan(
                        left,
                        x[i - 1],
                        color=EVAL_COLOURS.get(phases[start], "tab:orange"),
                        alpha=0.15,
                        label=None if phases[start] in shaded or ax is ax2 else f"{phases[start]} pass",
                    )
                shaded.add(phases[start])
            start = i
    for ax in (ax1, ax2):
        ax.set_ylim(bottom=0)
        ax.set_xlim(left=0)
        ax.grid(alpha=0.3)
    if shaded:
        ax1.legend(fontsize=8, loc="upper left")
    ax1.set_title("Event rate through the learner")
    fig.tight_layout()
    return fig


#: Sensors a run may come from (width, height), for runs without resize/roi in their config.
KNOWN_SENSORS = ((34, 34), (28, 28), (346, 260), (240, 180), (128, 128), (640, 480))


def input_layout(n_inputs: int, sensor: tuple[int, int] | None = None) -> tuple[int, int, int]:
    """(channels, height, width) behind ``n_inputs`` = channels·height·width, channels 2 (p, y, x) or 1.

    ``sensor`` (width, height) is tried first, then the known sensors, then a square.
    """
    candidates = ([sensor] if sensor else []) + list(KNOWN_SENSORS)
    for channels in (2, 1):
        for width, height in candidates:
            if channels * width * height == n_inputs:
                return channels, height, width
        side = math.isqrt(n_inputs // channels)
        if n_inputs % channels == 0 and side * side * channels == n_inputs:
            return channels, side, side
    raise DataFormatError(
        "checkpoint",
        f"{n_inputs} inputs are not 1 or 2 channels of the run's sensor "
        "or a square one; cannot draw first-layer weights as images",
    )


def _run_sensor(run_dir: Path) -> tuple[int, int] | None:
    """(width, height) the learner saw, from the run's config.toml ([source] resize, else roi)."""
    path = run_dir / "config.toml"
    if not path.exists():
        return None
    from biograd.core.config import load_toml

    source = load_toml(path).get("source", {})
    for key, size in (("resize", slice(0, 2)), ("roi", slice(2, 4))):
        value = source.get(key) or []
        if len(value) >= size.stop:
            return int(value[size][0]), int(value[size][1])
    return None


def selective_units(weights: list[np.ndarray], count: int) -> list[tuple[int, int, float]]:
    """The ``count`` first-layer units that vote most for one class: (unit, class, selectivity).

    A unit's vote is its column of the forward product W_out ··· W_2 (the first hidden layer's
    linear path to the outputs); selectivity is how far its top class stands above the mean of
    the others, in standard deviations of its votes. Highest first.
    """
    votes = np.asarray(weights[-1], dtype=np.float64)
    for w in reversed(weights[1:-1]):
        votes = votes @ np.asarray(w, dtype=np.float64)
    spread = votes.std(axis=0) + 1e-12
    top = votes.argmax(axis=0)
    score = (votes.max(axis=0) - votes.mean(axis=0)) / spread
    order = np.argsort(-score, kind="stable")[:count]
    return [(int(j), int(top[j]), float(score[j])) for j in order]


def _weights(run_dir: Path, loader, initial=None, units: int = 8):
    latest = latest_checkpoint(run_dir)
    if latest is None:
        return f"no checkpoint under {run_dir / 'checkpoints'}"
    ckpt = load_checkpoint(latest.path, loader=loader)
    layers = [np.asarray(w, dtype=np.float64) for w in ckpt.learner.weights]
    w = layers[0]
    if initial is not None:
        w = w - np.asarray(initial(ckpt.learner)[0], dtype=np.float64)
    try:
        channels, h, wd = input_layout(w.shape[1], _run_sensor(run_dir))
    except DataFormatError as exc:
        return str(exc)
    chosen = selective_units(layers, min(units, w.shape[0])) if len(layers) > 1 else []
    per_row = 2  # units per row, each as its ON and OFF panels
    rows = math.ceil(len(chosen) / per_row)
    aspect = wd / h
    fig, axes = plt.subplots(
        rows, per_row * channels, figsize=(per_row * channels * 1.9 * max(1.0, aspect), rows * 1.9 + 0.8), squeeze=False
    )
    for ax in axes.ravel():
        ax.set_axis_off()
    for k, (unit, digit, score) in enumerate(chosen):
        maps = w[unit].reshape(channels, h, wd)
        limit = np.abs(maps).max() or 1.0  # per unit: its own pattern, not the strongest unit's
        panels = [(maps[1], "ON"), (maps[0], "OFF")] if channels == 2 else [(maps[0], "events")]
        for c, (image, name) in enumerate(panels):
            ax = axes[k // per_row][(k % per_row) * channels + c]
            ax.imshow(image, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
            ax.set_title(f"unit {unit} → digit {digit} ({score:.1f}σ) {name}", fontsize=7)
    fig.suptitle(
        f"{'Learned input weights (now − start)' if initial is not None else 'Input weights'} of the "
        f"{len(chosen)} most selective hidden units on the {wd}×{h} sensor, checkpoint at {ckpt.samples} samples\n"
        "red: an event there excites the unit (more), blue: inhibits; each unit its own scale",
        fontsize=8,
    )
    fig.tight_layout()
    return fig
