"""Continual-learning protocols: a sequence of tasks, each a training stream and a test set.

* ``split-mnist`` / ``split-nmnist`` — class-incremental: 5 tasks of 2 classes ({0,1}, {2,3},
  …), one pass each; the network has one 10-way output and is never told the task.
* ``permuted-mnist`` — domain-incremental: 5 tasks, all 10 classes, each with its own fixed
  permutation of the 784 input neurons (task 0 is the identity).
* ``new-class-mnist`` — a live stream in which a new class appears mid-stream: task 0 streams
  classes 0..8, task 1 streams classes 0..9 (class 9, never seen before, at its natural rate).
  Task 0 is tested on classes 0..8, task 1 on class 9.

Samples come from the project's sources (``pipeline.datasets.load_rasters``): a seeded subset of
each split, then at most ``train_per_class`` / ``test_per_class`` per class. Each task's stream
is shuffled with ``sources.base.epoch_order(n, seed, task, salt=STREAM_SALT)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biograd.core.errors import ConfigError
from biograd.learner.encoding import SpikeRaster
from biograd.sources.base import epoch_order

STREAM_SALT = 0xC0
PROTOCOLS = ("split-mnist", "split-nmnist", "permuted-mnist", "new-class-mnist")
CLASS_PAIRS = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9))


@dataclass(frozen=True)
class Task:
    name: str
    train: tuple[SpikeRaster, ...]
    train_labels: np.ndarray
    test: tuple[SpikeRaster, ...]
    test_labels: np.ndarray


@dataclass(frozen=True)
class ProtocolData:
    name: str
    kind: str  # "class-incremental" | "domain-incremental" | "live-stream"
    dataset: str  # "mnist" | "nmnist"
    tasks: tuple[Task, ...]
    n_inputs: int
    timesteps: int

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    def sizes(self) -> str:
        tr = sum(len(t.train) for t in self.tasks)
        te = sum(len(t.test) for t in self.tasks)
        return f"{self.n_tasks} tasks, {tr} training samples (one pass), {te} test samples"


def per_class(labels: np.ndarray, classes, limit: int) -> np.ndarray:
    """Indices of the first ``limit`` samples of each of ``classes`` (0 = all), in index order."""
    labels = np.asarray(labels)
    keep = []
    for c in classes:
        idx = np.flatnonzero(labels == c)
        keep.append(idx if not limit else idx[:limit])
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)


def class_split(labels: np.ndarray, groups) -> list[np.ndarray]:
    """Per group of classes, the indices of ``labels`` in it (in index order)."""
    labels = np.asarray(labels)
    return [np.flatnonzero(np.isin(labels, list(g))) for g in groups]


def permute_raster(r: SpikeRaster, perm: np.ndarray) -> SpikeRaster:
    """Input neuron j of ``r`` becomes neuron ``perm[j]`` (a fixed spatial permutation)."""
    dense = r.to_dense()
    out = np.zeros_like(dense)
    out[:, perm] = dense
    return SpikeRaster.from_dense(out)


def _task(name, rasters, labels, idx, test, test_labels, tidx, seed, k) -> Task:
    order = idx[epoch_order(len(idx), seed, k, salt=STREAM_SALT)]
    return Task(
        name,
        tuple(rasters[i] for i in order),
        np.asarray(labels)[order],
        tuple(test[i] for i in tidx),
        np.asarray(test_labels)[tidx],
    )


_CACHE: dict = {}


def _load(dataset: str, root, train_limit: int, test_limit: int, seed: int):
    from biograd.pipeline.datasets import load_rasters

    key = (dataset, str(root), train_limit, test_limit, seed)
    if key not in _CACHE:
        T = 20 if dataset == "mnist" else None
        tr, ytr = load_rasters(dataset, "train", root, limit=train_limit, seed=seed, timesteps=T)
        te, yte = load_rasters(dataset, "test", root, limit=test_limit, seed=seed, timesteps=T)
        _CACHE[key] = (tr, ytr, te, yte)
    return _CACHE[key]


def build_protocol(
    name: str,
    root: str | Path,
    seed: int = 0,
    train_per_class: int = 200,
    test_per_class: int = 100,
    data_seed: int = 0,
) -> ProtocolData:
    """The tasks of protocol ``name``. ``seed`` shuffles each task's stream; ``data_seed`` picks
    the subset of samples (keep it fixed across seeds and methods: the same samples for all)."""
    if name not in PROTOCOLS:
        raise ConfigError(f"protocol {name!r}: must be one of {', '.join(PROTOCOLS)}")
    dataset = "nmnist" if name == "split-nmnist" else "mnist"
    # a seeded subset large enough to hold train_per_class of every class (MNIST classes are
    # 9-11 % of a split); N-MNIST here is nmnist-1k (~100 train, ~10 test per class)
    if dataset == "mnist":
        tr_lim, te_lim = int(train_per_class * 13.5) + 100, int(test_per_class * 13.5) + 100
    else:
        tr_lim, te_lim = 0, 0
    tr, ytr, te, yte = _load(dataset, root, tr_lim, te_lim, data_seed)
    n_in, T = tr[0].n_inputs, tr[0].timesteps
    tr_idx = per_class(ytr, range(10), train_per_class)
    te_idx = per_class(yte, range(10), test_per_class)
    tasks = []
    if name in ("split-mnist", "split-nmnist"):
        for k, (g_tr, g_te) in enumerate(
            zip(class_split(ytr[tr_idx], CLASS_PAIRS), class_split(yte[te_idx], CLASS_PAIRS))
        ):
            tasks.append(
                _task(f"{CLASS_PAIRS[k][0]}/{CLASS_PAIRS[k][1]}", tr, ytr, tr_idx[g_tr], te, yte, te_idx[g_te], seed, k)
            )
        kind = "class-incremental"
    elif name == "permuted-mnist":
        # 5 tasks share the samples' labels; each task gets its own fifth of the training samples
        parts = np.array_split(tr_idx[epoch_order(len(tr_idx), data_seed, 0, salt=STREAM_SALT + 1)], 5)
        for k in range(5):
            perm = np.arange(n_in) if k == 0 else np.random.default_rng([data_seed, k, 0xBE]).permutation(n_in)
            ptr = {i: permute_raster(tr[i], perm) for i in parts[k]}
            pte = [permute_raster(te[i], perm) for i in te_idx]
            order = parts[k][epoch_order(len(parts[k]), seed, k, salt=STREAM_SALT)]
            tasks.append(
                Task(
                    f"perm{k}",
                    tuple(ptr[i] for i in order),
                    ytr[order],
                    tuple(pte),
                    yte[te_idx],
                )
            )
        kind = "domain-incremental"
    else:
        old, new = list(range(9)), [9]
        g_old = tr_idx[np.isin(ytr[tr_idx], old)]
        g_new = tr_idx[np.isin(ytr[tr_idx], new)]
        half = len(g_old) // 2
        split = g_old[epoch_order(len(g_old), data_seed, 0, salt=STREAM_SALT + 2)]
        first, second = np.sort(split[:half]), np.sort(np.concatenate([split[half:], g_new]))
        t_old = te_idx[np.isin(yte[te_idx], old)]
        t_new = te_idx[np.isin(yte[te_idx], new)]
        tasks.append(_task("classes 0-8", tr, ytr, first, te, yte, t_old, seed, 0))
        tasks.append(_task("class 9 appears", tr, ytr, second, te, yte, t_new, seed, 1))
        kind = "live-stream"
    return ProtocolData(name, kind, dataset, tuple(tasks), n_in, T)
