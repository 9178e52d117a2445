"""Learner settings. Defaults follow ../shared/docs/biograd-algorithm.md (N-MNIST)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from biograd.core.config import require


@dataclass(frozen=True)
class LearnerConfig:
    """BioGrad network, training and sleep settings.

    Neuron parameters (``vdecay`` λ, ``vth`` θ, ``grad_win`` w, ``grad_amp`` a)
    hold one value for all layers or one per weight layer (hidden … output).
    """

    layer_sizes: tuple[int, ...] = (2312, 500, 100, 10)
    vdecay: tuple[float, ...] = (0.3,)
    vth: tuple[float, ...] = (0.3,)
    grad_win: tuple[float, ...] = (0.3,)
    grad_amp: tuple[float, ...] = (1.0,)
    timesteps: int = 60  # T
    error_start: int = 19  # t_e; the error phase lasts K = T - t_e steps
    lr: float = 1e-3  # η
    batch_size: int = 128  # 1 = streaming: update after every labelled sample
    # step rule on the batch-mean gradient (learner/optim.py): sgd (the paper's), per-synapse
    # rmsprop / adam (lazy on untouched rows), layer_rms (one gradient-RMS scalar per tensor)
    optimizer: Literal["sgd", "rmsprop", "adam", "layer_rms"] = "sgd"
    beta1: float = 0.9  # adam: first-moment decay
    beta2: float = 0.999  # rmsprop, adam, layer_rms: second-moment decay
    eps: float = 1e-8  # added to the RMS in the denominator
    engine: Literal["event", "synapse"] = "event"
    dtype: Literal["float32", "float64"] = "float32"
    feedback_init: Literal["mirror", "random"] = "mirror"
    sleep: bool = True
    sleep_every: int = 0  # samples between sleeps; 0 = after every batch update
    sleep_lr: float = 1e-4 / 3  # η_s
    sleep_noise_samples: int = 128  # M_s
    sleep_steps: int = 50  # T_s
    seed: int = 0
    # health guard (learner/health.py): say once when the output layer stayed silent, or no
    # weight changed, for this many labelled samples in a row (0 = off); check every this many
    # labelled samples (and before every checkpoint) that all weights are finite
    guard_silent: int = 500
    guard_stalled: int = 500
    guard_check_every: int = 100
    threads: int = 0  # threads of train_batch and of the sleep phase; 0 = every core of the machine

    def __post_init__(self):
        sizes = self.layer_sizes
        require(
            len(sizes) >= 3, "learner.layer_sizes", sizes, "needs input, at least one hidden layer and the output layer"
        )
        require(all(n > 0 for n in sizes), "learner.layer_sizes", sizes, "sizes must be positive")
        n_weight_layers = len(sizes) - 1
        for name in ("vdecay", "vth", "grad_win", "grad_amp"):
            values = getattr(self, name)
            require(
                len(values) in (1, n_weight_layers),
                f"learner.{name}",
                values,
                f"give 1 value or {n_weight_layers} (one per layer)",
            )
        require(all(0.0 <= v < 1.0 for v in self.vdecay), "learner.vdecay", self.vdecay, "must be in [0, 1)")
        require(all(v > 0 for v in self.vth), "learner.vth", self.vth, "must be > 0")
        require(all(v > 0 for v in self.grad_win), "learner.grad_win", self.grad_win, "must be > 0")
        require(self.timesteps > 0, "learner.timesteps", self.timesteps, "must be > 0")
        require(
            0 <= self.error_start < self.timesteps,
            "learner.error_start",
            self.error_start,
            f"must be in [0, timesteps={self.timesteps})",
        )
        require(0 < self.lr < float("inf"), "learner.lr", self.lr, "must be > 0 and finite")
        require(0.0 <= self.beta1 < 1.0, "learner.beta1", self.beta1, "must be in [0, 1)")
        require(0.0 <= self.beta2 < 1.0, "learner.beta2", self.beta2, "must be in [0, 1)")
        require(self.eps > 0, "learner.eps", self.eps, "must be > 0")
        require(self.batch_size >= 1, "learner.batch_size", self.batch_size, "must be >= 1")
        require(self.sleep_every >= 0, "learner.sleep_every", self.sleep_every, "must be >= 0")
        require(self.sleep_lr > 0, "learner.sleep_lr", self.sleep_lr, "must be > 0")
        require(self.sleep_noise_samples >= 1, "learner.sleep_noise_samples", self.sleep_noise_samples, "must be >= 1")
        for name in ("guard_silent", "guard_stalled", "guard_check_every"):
            require(getattr(self, name) >= 0, f"learner.{name}", getattr(self, name), "must be >= 0")
        require(self.threads >= 0, "learner.threads", self.threads, "must be >= 0 (0 = every core)")
        require(self.sleep_steps >= 1, "learner.sleep_steps", self.sleep_steps, "must be >= 1")

    @property
    def n_layers(self) -> int:
        """Number of weight layers (hidden layers + output)."""
        return len(self.layer_sizes) - 1

    def layer_param(self, name: str, layer: int) -> float:
        """Neuron parameter ``name`` of weight layer ``layer`` (0 = first hidden)."""
        values = getattr(self, name)
        return values[0] if len(values) == 1 else values[layer]


#: The algorithm's networks with the paper's training (batch 128, SGD η = 1e-3, sleep after every
#: batch): the ``nmnist-paper`` / ``mnist-paper`` presets, for reproduction.
NMNIST_LEARNER = LearnerConfig()
MNIST_LEARNER = replace(NMNIST_LEARNER, layer_sizes=(784, 500, 100, 10), timesteps=20, error_start=5)
NMNIST_PAPER, MNIST_PAPER = NMNIST_LEARNER, MNIST_LEARNER
#: Streaming (update after every labelled sample): the default of replay, live and the stand-alone
#: learner. Optimizer, η and sleep interval chosen on a validation split of the training data, never
#: on a test split (bench/learning.py select / mnist-select; docs/results.md).
NMNIST_STREAMING = replace(NMNIST_LEARNER, batch_size=1, optimizer="rmsprop", lr=1e-4, sleep_every=128)
MNIST_STREAMING = replace(MNIST_LEARNER, batch_size=1, optimizer="rmsprop", lr=1e-4, sleep_every=128)
