"""The learners a continual-learning protocol is run with, behind one small interface.

Every method sees the same stream one labelled sample at a time (``learn``), is told when a
task ends (``end_task``) and predicts a batch of test rasters (``predict``, learning off).

* ``biograd`` — BioGrad streaming (batch 1, sleep every ``sleep_every`` samples): naive
  fine-tuning, the lower bound of the mitigations.
* ``biograd-adam`` / ``biograd-rmsprop`` — the same with the learner's adaptive per-synapse
  step rules (``learner.optimizer``) at ``adaptive_lr``.
* ``biograd-replay`` (and ``biograd-adam-replay``) — BioGrad plus replay of stored events in the sleep phase: a small
  class-balanced store of input rasters (``per_class`` per class, reservoir sampling, the
  events as recorded), and at every sleep (every ``every`` new samples) ``k`` stored samples
  are learned again with the same local rule. Nothing but the stored events and their labels
  is kept; the rule stays BioGrad's.
* ``onchip`` / ``onchip-replay`` — the on-chip integer rule through the Lava-exact emulator
  (deploy.emulator), the same replay done by the host re-injecting stored samples.
* ``bptt`` / ``bptt-replay`` — the same network trained by BPTT with Adam at batch 1.
* ``joint`` / ``joint-adam`` — BioGrad (SGD / Adam) on the shuffled union of all tasks
  (``joint_epochs`` passes): the upper bound; only the last row of its matrix exists.
* ``clp`` — Lava's CLP (pipeline/continual/clp.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from biograd.core.errors import ConfigError
from biograd.learner.config import LearnerConfig

METHODS = (
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
)


@dataclass(frozen=True)
class MethodSettings:
    hidden: int = 200
    lr: float = 1e-3  # BioGrad per-sample rate
    sleep_every: int = 32
    bptt_lr: float = 1e-4  # the project's reference BPTT/Adam rate
    adaptive_lr: float = 1e-4  # biograd-adam / biograd-rmsprop
    onchip_lr: float = 2e-4  # deploy.onchip_lr default
    replay_per_class: int = 20
    replay_every: int = 32  # = sleep_every: replay happens in the sleep phase
    replay_k: int = 32
    joint_epochs: int = 3  # passes of the joint (i.i.d. union) upper bound


class BioGradMethod:
    def __init__(self, cfg: LearnerConfig):
        from biograd.learner.network import BioGradLearner

        self.net = BioGradLearner(cfg)

    def learn(self, raster, label: int) -> None:
        self.net.train_sample(raster, int(label))

    def end_task(self) -> None:
        pass

    def predict(self, rasters) -> np.ndarray:
        return np.array([self.net.predict(r)[0] for r in rasters], dtype=np.int64)


class BPTTMethod:
    def __init__(self, cfg: LearnerConfig, lr: float):
        from biograd.learner.bptt_baseline import BPTTConfig, BPTTLearner

        self.net = BPTTLearner(BPTTConfig.from_learner(cfg, lr=lr, batch_size=1))

    def learn(self, raster, label: int) -> None:
        self.net.train_batch([raster], np.array([int(label)]))

    def end_task(self) -> None:
        pass

    def predict(self, rasters) -> np.ndarray:
        out = [self.net.predict_batch(rasters[i : i + 100])[0] for i in range(0, len(rasters), 100)]
        return np.concatenate(out).astype(np.int64) if out else np.zeros(0, dtype=np.int64)


class OnChipMethod:
    """The on-chip rule (deploy.plan + deploy.emulator) from the same initial float network."""

    def __init__(self, cfg: LearnerConfig, lr: float, capacity: int):
        from biograd.deploy.emulator import OnChipEmulator
        from biograd.deploy.params import NetworkParams
        from biograd.deploy.plan import plan_onchip
        from biograd.learner.network import BioGradLearner

        params = NetworkParams.from_learner(BioGradLearner(cfg))
        self.plan = plan_onchip(params, lr=lr)
        self.emu = OnChipEmulator(self.plan, capacity * self.plan.period + 1)
        self.labels = np.full(capacity, -1, dtype=np.int64)
        self.capacity = capacity

    def learn(self, raster, label: int) -> None:
        k = self.emu.time_step // self.plan.period
        if k >= self.capacity:
            raise ConfigError(f"on-chip stream longer than its planned {self.capacity} samples")
        self.labels[k] = int(label)
        self.emu.run_sample(raster.to_dense(), self.labels)

    def end_task(self) -> None:
        pass

    def predict(self, rasters) -> np.ndarray:
        return np.array([int(np.argmax(self.emu.infer_sample(r.to_dense()))) for r in rasters], dtype=np.int64)


class Replay:
    """Replay of stored events during the sleep phase, around any method."""

    def __init__(self, inner, per_class: int, every: int, k: int, seed: int):
        self.inner, self.per_class, self.every, self.k = inner, per_class, every, k
        self.rng = np.random.default_rng([seed, 0x5EE9])
        self.store: dict[int, list] = {}
        self.seen: dict[int, int] = {}
        self.since = 0
        self.replayed = 0

    def learn(self, raster, label: int) -> None:
        self.inner.learn(raster, label)
        label = int(label)
        bucket = self.store.setdefault(label, [])
        n = self.seen.get(label, 0) + 1
        self.seen[label] = n
        if len(bucket) < self.per_class:
            bucket.append(raster)
        else:  # reservoir sampling: every sample of the class is kept with probability per_class / n
            j = int(self.rng.integers(n))
            if j < self.per_class:
                bucket[j] = raster
        self.since += 1
        if self.since >= self.every:
            self.since = 0
            self._replay()

    def _replay(self) -> None:
        items = [(r, c) for c, rs in self.store.items() for r in rs]
        if not items:
            return
        for i in self.rng.choice(len(items), size=min(self.k, len(items)), replace=False):
            r, c = items[int(i)]
            self.inner.learn(r, c)
            self.replayed += 1

    def end_task(self) -> None:
        self.inner.end_task()

    def predict(self, rasters) -> np.ndarray:
        return self.inner.predict(rasters)


def learner_config(n_inputs: int, timesteps: int, s: MethodSettings, seed: int) -> LearnerConfig:
    """The one network every method starts from (BioGrad's defaults, one hidden layer)."""
    error_start = 5 if timesteps == 20 else 19
    return LearnerConfig(
        layer_sizes=(n_inputs, s.hidden, 10),
        timesteps=timesteps,
        error_start=error_start,
        lr=s.lr,
        batch_size=1,
        sleep=True,
        sleep_every=s.sleep_every,
        seed=seed,
    )


def make_method(name: str, n_inputs: int, timesteps: int, s: MethodSettings, seed: int, stream_len: int):
    """A fresh method ``name`` (see METHODS); ``stream_len`` = training samples it will see."""
    if name not in METHODS:
        raise ConfigError(f"method {name!r}: must be one of {', '.join(METHODS)}")
    cfg = learner_config(n_inputs, timesteps, s, seed)
    base, *flags = name.split("-")
    replay = "replay" in flags
    if base in ("joint", "biograd"):
        for opt in ("adam", "rmsprop"):
            if opt in flags:
                cfg = replace(cfg, optimizer=opt, lr=s.adaptive_lr)
        inner = BioGradMethod(cfg)
    elif base == "bptt":
        inner = BPTTMethod(cfg, s.bptt_lr)
    elif base == "onchip":
        replays = (stream_len // s.replay_every + 1) * s.replay_k if replay else 0
        inner = OnChipMethod(replace(cfg, dtype="float64", sleep=False), s.onchip_lr, stream_len + replays + 1)
    else:  # clp
        from biograd.pipeline.continual.clp import LavaCLP

        return LavaCLP(n_inputs, capacity=stream_len)
    if replay:
        return Replay(inner, s.replay_per_class, s.replay_every, s.replay_k, seed)
    return inner
