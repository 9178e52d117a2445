"""Run one method through one protocol: the accuracy matrix, its metrics, and for the live
stream the accuracy curve of old and new classes while the new class arrives."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from biograd.pipeline.continual.methods import MethodSettings, make_method
from biograd.pipeline.continual.metrics import summarize
from biograd.pipeline.continual.protocols import STREAM_SALT, ProtocolData
from biograd.sources.base import epoch_order

JOINT_EPOCH = 99  # the stream-order epoch of the joint (shuffled union) baseline

Progress = Callable[[str], None]


def _accuracy(method, task) -> float:
    if len(task.test) == 0:
        return float("nan")
    return float(np.mean(method.predict(task.test) == task.test_labels))


def run_method(
    proto: ProtocolData,
    name: str,
    settings: MethodSettings,
    seed: int,
    curve_points: int = 5,
    progress: Progress | None = None,
) -> dict:
    """Train ``name`` on ``proto``'s tasks in order (one pass each) and evaluate after each task.

    Returns a JSON-ready dict: ``matrix`` (T x T, None where not evaluated), the metrics, the
    ``curve`` (live-stream only: samples into task 1 → accuracy on each task's test set),
    ``seconds`` and ``train_samples`` (including replayed ones).
    """
    say = progress or (lambda _msg: None)
    T = proto.n_tasks
    stream_len = sum(len(t.train) for t in proto.tasks)
    method = make_method(name, proto.n_inputs, proto.timesteps, settings, seed, stream_len)
    R = np.full((T, T), np.nan)
    curve: list[dict] = []
    start = time.perf_counter()
    if name.startswith("joint"):
        rasters = [r for t in proto.tasks for r in t.train]
        labels = np.concatenate([t.train_labels for t in proto.tasks])
        for e in range(settings.joint_epochs):
            for i in epoch_order(len(rasters), seed, JOINT_EPOCH + e, salt=STREAM_SALT):
                method.learn(rasters[i], int(labels[i]))
        stream_len *= settings.joint_epochs
        R[T - 1] = [_accuracy(method, t) for t in proto.tasks]
        say(f"{name} seed {seed}: {settings.joint_epochs} passes over the union, final row {np.round(R[T - 1], 3)}")
    else:
        for i, task in enumerate(proto.tasks):
            marks = set()
            if proto.kind == "live-stream" and i == T - 1 and curve_points:
                n = len(task.train)
                marks = {int(round(n * (p + 1) / curve_points)) for p in range(curve_points)}
                curve.append({"samples": 0, **{t.name: _accuracy(method, t) for t in proto.tasks}})
            for k, (r, y) in enumerate(zip(task.train, task.train_labels)):
                method.learn(r, int(y))
                if k + 1 in marks and k + 1 < len(task.train):
                    curve.append({"samples": k + 1, **{t.name: _accuracy(method, t) for t in proto.tasks}})
            method.end_task()
            for j in range(i + 1):
                R[i, j] = _accuracy(method, proto.tasks[j])
            if curve and i == T - 1:
                curve.append({"samples": len(task.train), **{t.name: R[i, j] for j, t in enumerate(proto.tasks)}})
            say(f"{name} seed {seed}: after task {i} ({task.name}) accuracies {np.round(R[i, : i + 1], 3)}")
    seconds = time.perf_counter() - start
    if name.startswith("joint"):
        metrics = {"average_accuracy": float(np.mean(R[T - 1])), "forgetting": None, "backward_transfer": None}
    else:
        metrics = summarize(R).as_dict()
    return {
        "protocol": proto.name,
        "kind": proto.kind,
        "method": name,
        "seed": seed,
        "tasks": [t.name for t in proto.tasks],
        "matrix": [[None if np.isnan(v) else float(v) for v in row] for row in R],
        **metrics,
        "curve": curve,
        "seconds": seconds,
        "train_samples": stream_len + getattr(method, "replayed", 0),
        "sizes": proto.sizes(),
    }


def plot_matrices(results: list[dict], path) -> None:
    """One heat map per method (first seed of each): rows = after task i, columns = task j."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_method: dict[str, dict] = {}
    for r in results:
        by_method.setdefault(r["method"], r)
    n = len(by_method)
    cols = min(n, 6)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.9 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, (name, r) in zip(axes.flat, by_method.items()):
        m = np.array([[np.nan if v is None else v for v in row] for row in r["matrix"]]) * 100
        ax.imshow(m, vmin=0, vmax=100, cmap="viridis")
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                if not np.isnan(m[i, j]):
                    ax.text(
                        j, i, f"{m[i, j]:.0f}", ha="center", va="center", fontsize=7, color="w" if m[i, j] < 60 else "k"
                    )
        ax.set_title(f"{name}\nA={r['average_accuracy'] * 100:.1f}%", fontsize=8)
        ax.set_xticks(range(m.shape[1]))
        ax.set_xticklabels(r["tasks"], fontsize=6, rotation=45)
        ax.set_yticks(range(m.shape[0]))
        ax.set_yticklabels([f"after {t}" for t in r["tasks"]], fontsize=6)
    fig.suptitle(
        f"{results[0]['protocol']}: accuracy (%) on task j (column) after training task i (row), seed {results[0]['seed']}",
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
