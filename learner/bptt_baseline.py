"""Backprop-through-time baseline for the same spiking network BioGrad trains.

Same neurons, same pseudo-derivative, same input rasters as :mod:`learner.network`
(../shared/docs/biograd-algorithm.md §2): for every layer l and step t

    I_l(t) = W_l s_{l-1}(t) + b_l
    v_l(t) = λ v_l(t-1) (1 - s_l(t-1)) + I_l(t)
    s_l(t) = [v_l(t) > θ]                 ψ_l(t) = a [|v_l(t) - θ| < w]

The loss is the cross-entropy of the softmax of the output spike counts
c = Σ_t s_out(t), averaged over the batch:

    L = mean_b ( -log softmax(c_b)[y_b] ),   ∂L/∂c = (softmax(c) - onehot(y)) / B

Reverse mode replaces ds/dv by ψ everywhere (the surrogate), including through the
reset gate, so with κ_l(t) = 1 - s_l(t) - v_l(t) ψ_l(t) the adjoint of the membrane is

    g_l(t) = ψ_l(t) ∂L/∂s_l(t)|_ext + λ κ_l(t) g_l(t+1),    g_l(T) = 0
    ∂L/∂W_l = Σ_t g_l(t) s_{l-1}(t)^T,   ∂L/∂b_l = Σ_t g_l(t),   ∂L/∂s_{l-1}(t)|_ext = W_l^T g_l(t)

(∂L/∂s_out(t)|_ext = ∂L/∂c for every t). This is the recursion BioGrad's eligibility
traces compute per layer; the difference is that BPTT carries the exact error down
through W^T instead of BioGrad's feedback matrices B_l and error interneurons.

The network is feed-forward within a step, so each layer's whole time course depends
only on the layer below: the forward pass is one matmul over all (t, b) rows per
layer followed by the LIF recursion over t, and the backward pass mirrors it.
Training uses Adam (the reference BP baseline: lr 1e-4).

``relaxed=True`` swaps the step for the ramp s = a·clip(v - θ + w, 0, 2w), whose
derivative is exactly ψ. Forward and backward are otherwise the same code, so the
BPTT gradient of the relaxed network is its true gradient, which finite differences
can check (tests/learner/test_bptt_baseline.py). Training always uses the step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from biograd.core.config import require
from biograd.core.errors import ConfigError


@dataclass(frozen=True)
class BPTTConfig:
    """Network (same meaning as :class:`learner.config.LearnerConfig`) and Adam settings."""

    layer_sizes: tuple[int, ...] = (2312, 500, 100, 10)
    vdecay: tuple[float, ...] = (0.3,)
    vth: tuple[float, ...] = (0.3,)
    grad_win: tuple[float, ...] = (0.3,)
    grad_amp: tuple[float, ...] = (1.0,)
    timesteps: int = 60
    lr: float = 1e-4
    batch_size: int = 128
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    dtype: str = "float32"
    seed: int = 0

    def __post_init__(self):
        sizes = self.layer_sizes
        require(
            len(sizes) >= 2 and all(n > 0 for n in sizes),
            "bptt.layer_sizes",
            sizes,
            "needs at least input and output sizes, all positive",
        )
        for name in ("vdecay", "vth", "grad_win", "grad_amp"):
            values = getattr(self, name)
            require(
                len(values) in (1, len(sizes) - 1),
                f"bptt.{name}",
                values,
                f"give 1 value or {len(sizes) - 1} (one per layer)",
            )
        require(all(0.0 <= v < 1.0 for v in self.vdecay), "bptt.vdecay", self.vdecay, "must be in [0, 1)")
        require(self.timesteps > 0, "bptt.timesteps", self.timesteps, "must be > 0")
        require(self.lr > 0, "bptt.lr", self.lr, "must be > 0")
        require(self.batch_size >= 1, "bptt.batch_size", self.batch_size, "must be >= 1")
        require(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "bptt.beta", (self.beta1, self.beta2), "must be in [0, 1)")
        require(self.dtype in ("float32", "float64"), "bptt.dtype", self.dtype, "float32 or float64")

    @classmethod
    def from_learner(cls, learner_config, **overrides) -> BPTTConfig:
        """The same network as a BioGrad ``LearnerConfig``; Adam settings from ``overrides``."""
        shared = {
            name: getattr(learner_config, name)
            for name in ("layer_sizes", "vdecay", "vth", "grad_win", "grad_amp", "timesteps", "seed", "dtype")
        }
        shared.update(overrides)
        return cls(**shared)

    def neuron(self, layer: int) -> NeuronParams:
        def pick(name):
            values = getattr(self, name)
            return float(values[0] if len(values) == 1 else values[layer])

        return NeuronParams(pick("vdecay"), pick("vth"), pick("grad_win"), pick("grad_amp"))


class NeuronParams(NamedTuple):
    vdecay: float
    vth: float
    grad_win: float
    grad_amp: float


class LayerRecord(NamedTuple):
    """One layer's recorded time course, arrays of shape (T, B, N)."""

    v: np.ndarray
    s: np.ndarray
    psi: np.ndarray


def lif_forward(current: np.ndarray, p: NeuronParams, relaxed: bool = False) -> LayerRecord:
    """Run the LIF recursion over the first axis (time) of ``current`` (T, B, N)."""
    T = current.shape[0]
    v = np.empty_like(current)
    s = np.empty_like(current)
    v_prev = np.zeros_like(current[0])
    s_prev = np.zeros_like(current[0])
    for t in range(T):
        v_t = p.vdecay * v_prev * (1.0 - s_prev) + current[t]
        if relaxed:
            s_t = p.grad_amp * np.clip(v_t - (p.vth - p.grad_win), 0.0, 2.0 * p.grad_win)
        else:
            s_t = (v_t > p.vth).astype(current.dtype)
        v[t] = v_t
        s[t] = s_t
        v_prev, s_prev = v_t, s_t
    psi = (np.abs(v - p.vth) < p.grad_win).astype(current.dtype) * p.grad_amp
    return LayerRecord(v, s, psi)


def forward(
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray],
    x: np.ndarray,
    params: Sequence[NeuronParams],
    relaxed: bool = False,
) -> list[LayerRecord]:
    """Recorded forward pass. ``x``: input spikes (T, B, N0); returns one record per weight layer."""
    records = []
    below = x
    T, B = x.shape[:2]
    for W, b, p in zip(weights, biases, params):
        current = (below.reshape(T * B, -1) @ W.T).reshape(T, B, -1) + b
        rec = lif_forward(current, p, relaxed)
        records.append(rec)
        below = rec.s
    return records


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def cross_entropy(counts: np.ndarray, labels: np.ndarray) -> float:
    """Mean cross-entropy of softmax(counts) against integer ``labels``."""
    z = counts - counts.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(labels)), labels].mean())


def backward(
    weights: Sequence[np.ndarray],
    x: np.ndarray,
    records: Sequence[LayerRecord],
    params: Sequence[NeuronParams],
    grad_counts: np.ndarray,
):
    """Reverse mode over the recorded forward pass (see the module docstring).

    ``grad_counts`` is ∂L/∂c (B, N_out). Returns (grad_weights, grad_biases).
    """
    T, B = x.shape[:2]
    n_layers = len(weights)
    grad_w: list = [None] * n_layers
    grad_b: list = [None] * n_layers
    ext = np.broadcast_to(grad_counts, (T,) + grad_counts.shape)
    for l in range(n_layers - 1, -1, -1):
        rec, p = records[l], params[l]
        kappa = 1.0 - rec.s - rec.v * rec.psi
        g = np.empty_like(rec.v)
        g_next = np.zeros_like(rec.v[0])
        for t in range(T - 1, -1, -1):
            g_next = rec.psi[t] * ext[t] + p.vdecay * kappa[t] * g_next
            g[t] = g_next
        below = x if l == 0 else records[l - 1].s
        g2 = g.reshape(T * B, -1)
        grad_w[l] = g2.T @ below.reshape(T * B, -1)
        grad_b[l] = g2.sum(axis=0)
        if l > 0:
            ext = (g2 @ weights[l]).reshape(T, B, -1)
    return grad_w, grad_b


def loss_and_grads(weights, biases, x, labels, params, relaxed: bool = False):
    """(loss, counts, grad_weights, grad_biases) of the count cross-entropy for one batch."""
    records = forward(weights, biases, x, params, relaxed)
    counts = records[-1].s.sum(axis=0)
    labels = np.asarray(labels)
    probs = softmax(counts)
    grad_counts = probs
    grad_counts[np.arange(len(labels)), labels] -= 1.0
    grad_counts /= len(labels)
    loss = cross_entropy(counts, labels)
    gw, gb = backward(weights, x, records, params, grad_counts)
    return loss, counts, gw, gb


def dense_inputs(rasters, timesteps: int, n_inputs: int, dtype=np.float32) -> np.ndarray:
    """Stack CSR spike rasters (``learner.encoding.SpikeRaster``) into a dense (T, B, N0) array."""
    x = np.zeros((timesteps, len(rasters), n_inputs), dtype=dtype)
    for b, r in enumerate(rasters):
        indptr = np.asarray(r.indptr)
        if len(indptr) != timesteps + 1 or r.n_inputs != n_inputs:
            raise ConfigError(
                f"raster {b}: {len(indptr) - 1} steps × {r.n_inputs} inputs, network expects {timesteps} × {n_inputs}"
            )
        steps = np.repeat(np.arange(timesteps), np.diff(indptr))
        x[steps, b, np.asarray(r.indices)] = 1.0
    return x


@dataclass
class BPTTLearner:
    """The spiking network trained by BPTT + Adam on the count cross-entropy."""

    config: BPTTConfig
    weights: list = field(init=False)
    biases: list = field(init=False)
    samples_seen: int = field(init=False, default=0)
    steps: int = field(init=False, default=0)

    def __post_init__(self):
        cfg = self.config
        dtype = np.dtype(cfg.dtype)
        rng = np.random.default_rng(cfg.seed)
        self.weights, self.biases = [], []
        # Same init as BioGrad: W, b ~ U(±1/sqrt(fan_in)).
        for n_in, n_out in zip(cfg.layer_sizes[:-1], cfg.layer_sizes[1:]):
            bound = 1.0 / math.sqrt(n_in)
            self.weights.append(rng.uniform(-bound, bound, (n_out, n_in)).astype(dtype))
            self.biases.append(rng.uniform(-bound, bound, n_out).astype(dtype))
        self.params = [cfg.neuron(l) for l in range(len(self.weights))]
        self._m = [np.zeros_like(p) for p in self.weights + self.biases]
        self._v = [np.zeros_like(p) for p in self.weights + self.biases]

    def _inputs(self, rasters) -> np.ndarray:
        return dense_inputs(rasters, self.config.timesteps, self.config.layer_sizes[0], np.dtype(self.config.dtype))

    def train_batch(self, rasters, labels) -> tuple[float, np.ndarray]:
        """One Adam step on a batch of rasters; returns (loss, training predictions)."""
        x = self._inputs(rasters)
        loss, counts, gw, gb = loss_and_grads(self.weights, self.biases, x, labels, self.params)
        self._adam(gw + gb)
        self.samples_seen += len(rasters)
        return loss, np.argmax(counts, axis=1)

    def _adam(self, grads) -> None:
        cfg = self.config
        self.steps += 1
        c1 = 1.0 - cfg.beta1**self.steps
        c2 = 1.0 - cfg.beta2**self.steps
        for param, grad, m, v in zip(self.weights + self.biases, grads, self._m, self._v):
            m *= cfg.beta1
            m += (1.0 - cfg.beta1) * grad
            v *= cfg.beta2
            v += (1.0 - cfg.beta2) * grad * grad
            param -= (cfg.lr * (m / c1) / (np.sqrt(v / c2) + cfg.eps)).astype(param.dtype)

    def predict_batch(self, rasters) -> tuple[np.ndarray, np.ndarray]:
        """(predictions, output counts) for a batch; argmax takes the first index on ties."""
        records = forward(self.weights, self.biases, self._inputs(rasters), self.params)
        counts = records[-1].s.sum(axis=0)
        return np.argmax(counts, axis=1), counts.astype(np.int64)

    def predict(self, raster) -> tuple[int, np.ndarray]:
        pred, counts = self.predict_batch([raster])
        return int(pred[0]), counts[0]
