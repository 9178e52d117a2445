"""Helpers for the sink tests: small real learners, random spike rasters, record streams."""

from __future__ import annotations

import time

import numpy as np

from biograd.learner.config import LearnerConfig
from biograd.learner.encoding import SpikeRaster
from biograd.learner.network import BioGradLearner


def small_learner(sizes=(2312, 16, 10), batch_size=3, sleep=True, seed=0, timesteps=12, **kw) -> BioGradLearner:
    """A real BioGrad learner small enough to train in milliseconds (N-MNIST-shaped input)."""
    cfg = LearnerConfig(
        layer_sizes=tuple(sizes),
        timesteps=timesteps,
        error_start=4,
        batch_size=batch_size,
        sleep=sleep,
        sleep_noise_samples=8,
        sleep_steps=5,
        seed=seed,
        lr=0.05,
        **kw,
    )
    return BioGradLearner(cfg)


def random_raster(rng: np.random.Generator, n_inputs: int, timesteps: int, density: float = 0.02) -> SpikeRaster:
    dense = rng.random((timesteps, n_inputs)) < density
    counts = dense.sum(axis=1)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    indices = np.nonzero(dense)[1].astype(np.int32)
    return SpikeRaster(indptr, indices, n_inputs)


def random_samples(n: int, n_inputs: int, timesteps: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    return [(random_raster(rng, n_inputs, timesteps), int(rng.integers(0, 10))) for _ in range(n)]


def synthetic_records(n_samples: int = 30, n_hidden: int = 2, seed: int = 0, sleep_every: int = 5):
    """A plausible record stream (docs/architecture.md shapes) for format tests."""
    rng = np.random.default_rng(seed)
    now = 1_700_000_000.0
    correct = 0
    for i in range(n_samples):
        label = int(rng.integers(0, 10))
        predicted = label if rng.random() < 0.6 else int(rng.integers(0, 10))
        correct += predicted == label
        counts = rng.integers(0, 20, size=10)
        yield {
            "type": "prediction",
            "sample_id": f"train/{i:05d}",
            "index": i,
            "phase": "train",
            "predicted": predicted,
            "label": label,
            "correct": predicted == label,
            "counts": counts.tolist(),
            "events": int(rng.integers(1000, 7000)),
            "time": now + i,
        }
        yield {
            "type": "metrics",
            "samples": i + 1,
            "phase": "train",
            "accuracy_running": correct / (i + 1),
            "loss": float(rng.random() * 2),
            "events_per_s": float(4e5 + 1e4 * i),
            "samples_per_s": 90.0 + i,
            "dropped": 0,
            "invalid": i // 10,
            "gaps": 0,
            "sleeps": (i + 1) // sleep_every,
            "time": now + i,
        }
        if (i + 1) % sleep_every == 0:
            yield {
                "type": "sleep",
                "samples": i + 1,
                "angle_deg": [float(10 + i + k) for k in range(n_hidden)],
                "norm_ratio": [1.0 - 0.01 * i] * n_hidden,
                "time": now + i,
            }
    confusion = np.zeros((10, 10), dtype=int)
    for k in range(10):
        confusion[k, k] = 7
        confusion[k, (k + 1) % 10] = 3
    yield {
        "type": "eval",
        "split": "test",
        "epoch": 0,
        "samples": n_samples,
        "accuracy": 0.7,
        "confusion": confusion.tolist(),
        "time": now + n_samples,
    }
    yield {"type": "end", "samples": n_samples, "time": now + n_samples}


def train_with_records(learner, samples, sink, phase="train", frames=None, pause_s=0.0):
    """Train ``learner`` on (raster, label) pairs, emitting documented records to ``sink``."""
    correct = 0
    start = time.monotonic()
    events = 0
    for i, (raster, label) in enumerate(samples):
        result = learner.train_sample(raster, label)
        correct += result.prediction == label
        n_events = int(raster.indptr[-1])
        events += n_events
        record = {
            "type": "prediction",
            "sample_id": f"{phase}/{i}",
            "index": i,
            "phase": phase,
            "predicted": result.prediction,
            "label": label,
            "correct": result.prediction == label,
            "counts": result.counts.tolist(),
            "events": n_events,
            "time": time.time(),
        }
        if frames is not None:
            record["frame"] = frames[i % len(frames)]
        sink.handle(record)
        elapsed = max(time.monotonic() - start, 1e-9)
        sink.handle(
            {
                "type": "metrics",
                "samples": learner.samples_seen,
                "phase": phase,
                "accuracy_running": correct / (i + 1),
                "loss": result.loss,
                "events_per_s": events / elapsed,
                "samples_per_s": (i + 1) / elapsed,
                "dropped": 0,
                "invalid": 0,
                "gaps": 0,
                "sleeps": learner.sleeps,
                "time": time.time(),
            }
        )
        if result.slept:
            align = learner.last_alignment
            sink.handle(
                {
                    "type": "sleep",
                    "samples": learner.samples_seen,
                    "angle_deg": [a for a, _ in align],
                    "norm_ratio": [r for _, r in align],
                    "time": time.time(),
                }
            )
        if pause_s:
            time.sleep(pause_s)
