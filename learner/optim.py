"""Optimizers: the step rule applied to the batch-mean gradient ``G = Σ_batch δ·E / n`` (``learner.optimizer``).

* ``sgd`` — the paper's: ``W -= η G``.
* ``rmsprop`` — per synapse, PyTorch's form (no bias correction):
  ``v ← β2 v + (1-β2) G²;  W -= η G / (sqrt(v) + ε)``.
* ``adam`` — per synapse, PyTorch's form with bias correction, step t counted from 1:
  ``m ← β1 m + (1-β1) G;  v ← β2 v + (1-β2) G²;  W -= η (m/(1-β1^t)) / (sqrt(v/(1-β2^t)) + ε)``.
* ``layer_rms`` — one running mean square per tensor (W_l and b_l apart), bias-corrected:
  ``s ← β2 s + (1-β2) mean(G²);  W -= η G / (sqrt(s/(1-β2^t)) + ε)``. A scalar per layer is
  what a chip's shared weight exponent can hold; it makes the step size invariant to the
  scale of δ (which the sleep phase changes through ‖B‖).

Per-synapse optimizers are **lazy** on weight rows (presynaptic inputs) that received no
gradient since the last step: such a row is not visited; when it next gets a gradient, its
moments first decay by β^d for the d skipped steps. For RMSprop this equals the dense rule
(a zero gradient moves no weight; the moments decay identically, up to rounding of β^d against
d multiplications). For Adam the dense rule would also move the weights of skipped rows on
each skipped step by the decaying momentum, ``-η m̂_k / (sqrt(v̂_k) + ε)``; the lazy rule
leaves those moves out (as TensorFlow's LazyAdam does). Biases are small and always updated.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from biograd.learner import optim_kernels
from biograd.learner.checkpoint_io import copy_checked
from biograd.learner.config import LearnerConfig
from biograd.learner.state import GradAccum, Layer


class SGD:
    name = "sgd"

    def __init__(self, config: LearnerConfig, layers: list[Layer]):
        self.config = config
        self.dtype = layers[0].wt.dtype
        self.t = 0  # steps taken

    def step(self, layers: list[Layer], grads: list[GradAccum], batch_fill: int) -> bool:
        """One step on the accumulated gradients (summed over ``batch_fill`` samples); clears them.

        Returns whether any bias gradient was non-zero (else no neuron was inside the surrogate
        window, every gradient was 0 and nothing changed)."""
        self.t += 1
        scale = self.dtype.type(self.config.lr / batch_fill)
        changed = False
        for lay, g in zip(layers, grads):
            changed |= optim_kernels.sgd_layer(lay.wt, g.gwt, lay.b, g.gb, scale, g.touched, g.rows, g.n_rows)
            g.n_rows = 0
        return changed

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {"opt_t": np.array(self.t, dtype=np.int64)}

    def _named(self) -> dict[str, np.ndarray]:
        return {}

    def load_state(self, path: Path, data: dict[str, np.ndarray], stored: LearnerConfig) -> None:
        """Take the optimizer state from a checkpoint written with the same optimizer; else start fresh."""
        if stored.optimizer != self.name or "opt_t" not in data:
            return
        self.t = int(data["opt_t"])
        for key, target in self._named().items():
            copy_checked(path, key, data, target)


class Adaptive(SGD):
    """Per-synapse RMSprop or Adam; moments kept in the transposed layout of the weights."""

    def __init__(self, config: LearnerConfig, layers: list[Layer], adam: bool):
        super().__init__(config, layers)
        self.adam = adam
        self.name = "adam" if adam else "rmsprop"
        dt = self.dtype
        self.v = [np.zeros_like(lay.wt) for lay in layers]
        self.m = [np.zeros_like(lay.wt) if adam else np.zeros((1, 1), dt) for lay in layers]
        self.last = [np.zeros(lay.wt.shape[0], dtype=np.int64) for lay in layers]
        # biases as one-row matrices, so one kernel serves both
        self.vb = [np.zeros((1, lay.b.shape[0]), dt) for lay in layers]
        self.mb = [np.zeros((1, lay.b.shape[0]), dt) if adam else np.zeros((1, 1), dt) for lay in layers]
        self.lastb = [np.zeros(1, dtype=np.int64) for _ in layers]
        # per layer (b, g_b, their (1, N_out) views), made on first use
        self._bias_views: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self._hyper: dict[int, np.ndarray] = {}  # per batch_fill
        c = config
        betas = np.array([c.lr, 1.0, c.beta1, c.beta2, c.eps], dtype=dt)
        self._pow1 = optim_kernels.beta_powers(betas, 2, optim_kernels.POW_TABLE if adam else 1)
        self._pow2 = optim_kernels.beta_powers(betas, 3, optim_kernels.POW_TABLE)

    def step(self, layers: list[Layer], grads: list[GradAccum], batch_fill: int) -> bool:
        self.t += 1
        hyper = self._hyper.get(batch_fill)
        if hyper is None:
            c = self.config
            hyper = np.array([c.lr, 1.0 / batch_fill, c.beta1, c.beta2, c.eps], dtype=self.dtype)
            self._hyper[batch_fill] = hyper
        views = self._bias_views
        if len(views) != len(layers) or any(
            v[0] is not lay.b or v[1] is not g.gb for v, lay, g in zip(views, layers, grads)
        ):
            views[:] = [(lay.b, g.gb, lay.b.reshape(1, -1), g.gb.reshape(1, -1)) for lay, g in zip(layers, grads)]
        changed = False
        for l, (lay, g) in enumerate(zip(layers, grads)):
            changed |= optim_kernels.adaptive_layer(
                lay.wt,
                g.gwt,
                self.m[l],
                self.v[l],
                self.last[l],
                g.touched,
                g.rows,
                g.n_rows,
                views[l][2],
                views[l][3],
                self.mb[l],
                self.vb[l],
                self.lastb[l],
                hyper,
                self.t,
                self.adam,
                self._pow1,
                self._pow2,
            )
            g.n_rows = 0
        return changed

    def _named(self) -> dict[str, np.ndarray]:
        out = {}
        for l in range(len(self.v)):
            out[f"opt_vT{l}"] = self.v[l]
            out[f"opt_last{l}"] = self.last[l]
            out[f"opt_vb{l}"] = self.vb[l]
            out[f"opt_lastb{l}"] = self.lastb[l]
            if self.adam:
                out[f"opt_mT{l}"] = self.m[l]
                out[f"opt_mb{l}"] = self.mb[l]
        return out

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {**super().state_arrays(), **self._named()}


class LayerRMS(SGD):
    """One bias-corrected running mean square of the gradient per tensor (W_l, b_l)."""

    name = "layer_rms"

    def __init__(self, config: LearnerConfig, layers: list[Layer]):
        super().__init__(config, layers)
        self.s = [np.zeros(2, dtype=np.float64) for _ in layers]  # (s_W, s_b) per layer
        self._scale = np.zeros(1, dtype=self.dtype)  # the kernel rounds scale_W through it

    def step(self, layers: list[Layer], grads: list[GradAccum], batch_fill: int) -> bool:
        self.t += 1
        c = self.config
        corr = 1.0 - c.beta2**self.t  # Python's float power, as the rule has always used
        changed = False
        for l, (lay, g) in enumerate(zip(layers, grads)):
            changed |= optim_kernels.layer_rms_layer(
                lay.wt,
                g.gwt,
                lay.b,
                g.gb,
                g.touched,
                g.rows,
                g.n_rows,
                self.s[l],
                1.0 / batch_fill,
                corr,
                c.lr,
                c.beta2,
                c.eps,
                self._scale,
            )
            g.n_rows = 0
        return changed

    def _named(self) -> dict[str, np.ndarray]:
        return {f"opt_s{l}": s for l, s in enumerate(self.s)}

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {**super().state_arrays(), **self._named()}


def make_optimizer(config: LearnerConfig, layers: list[Layer]) -> SGD:
    if config.optimizer == "sgd":
        return SGD(config, layers)
    if config.optimizer == "layer_rms":
        return LayerRMS(config, layers)
    return Adaptive(config, layers, adam=config.optimizer == "adam")
