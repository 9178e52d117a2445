"""The network a deployment starts from: weights, biases, feedback and neuron constants.

Read from a learner checkpoint (``BioGradLearner.save``: arrays ``W{l}`` (N_l, N_{l-1}),
``b{l}``, ``B{l}`` (N_l, 10) and ``config_json``) without unpickling, or taken from a live
:class:`learner.network.BioGradLearner`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biograd.core.errors import DataFormatError


@dataclass(frozen=True)
class NetworkParams:
    """Float64 copy of a BioGrad network (layer l = weight layer l, 0 = first hidden).

    Neuron per layer: v(t) = λ v(t-1) (1 - s(t-1)) + W s_in(t) + b, s(t) = [v(t) > θ];
    pseudo-derivative ψ = a [|v - θ| < w].
    """

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    feedback: tuple[np.ndarray, ...]
    vdecay: tuple[float, ...]
    vth: tuple[float, ...]
    grad_win: tuple[float, ...]
    grad_amp: tuple[float, ...]
    timesteps: int
    error_start: int

    @property
    def n_layers(self) -> int:
        return len(self.weights)

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        return (self.weights[0].shape[1],) + tuple(w.shape[0] for w in self.weights)

    @classmethod
    def from_learner(cls, learner) -> NetworkParams:
        cfg = learner.config
        return cls._build(
            cfg,
            [np.array(w, dtype=np.float64) for w in learner.weights],
            [np.array(b, dtype=np.float64) for b in learner.biases],
            [np.array(b, dtype=np.float64) for b in learner.feedback],
        )

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> NetworkParams:
        """Read ``W{l}``, ``b{l}``, ``B{l}`` and the stored learner config of a .npz checkpoint."""
        from biograd.learner.network import read_checkpoint

        path = Path(path)
        cfg, data = read_checkpoint(path)
        sizes = cfg.layer_sizes
        weights, biases, feedback = [], [], []
        for l in range(cfg.n_layers):
            weights.append(_array(path, data, f"W{l}", (sizes[l + 1], sizes[l])))
            biases.append(_array(path, data, f"b{l}", (sizes[l + 1],)))
        for l in range(cfg.n_layers - 1):
            feedback.append(_array(path, data, f"B{l}", (sizes[l + 1], sizes[-1])))
        return cls._build(cfg, weights, biases, feedback)

    @classmethod
    def _build(cls, cfg, weights, biases, feedback) -> NetworkParams:
        n = cfg.n_layers
        per = lambda name: tuple(float(cfg.layer_param(name, l)) for l in range(n))  # noqa: E731
        return cls(
            tuple(weights),
            tuple(biases),
            tuple(feedback),
            per("vdecay"),
            per("vth"),
            per("grad_win"),
            per("grad_amp"),
            int(cfg.timesteps),
            int(cfg.error_start),
        )


def _array(path, data, key, shape) -> np.ndarray:
    if key not in data:
        raise DataFormatError(path, f"checkpoint lacks array {key}")
    a = data[key]
    if a.shape != shape:
        raise DataFormatError(path, f"array {key} has shape {a.shape}, the stored config needs {shape}")
    if not np.issubdtype(a.dtype, np.floating) or not np.all(np.isfinite(a)):
        raise DataFormatError(path, f"array {key} is not finite floating point (dtype {a.dtype})")
    return a.astype(np.float64)
