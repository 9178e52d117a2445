"""Per-layer parameters and state of the BioGrad learner, as small typed records.

In the style of Norse's ``LIFParameters``/``LIFState``: the records only hold arrays; the
maths lives in pure functions (:mod:`biograd.learner.kernels`, :mod:`biograd.learner.sleep`).
Arrays are allocated once and changed in place, so the Numba kernels can write into them.

Storage: a weight layer's matrix is kept transposed, ``wt`` of shape (N_in, N_out)
C-contiguous, so the weights leaving one presynaptic input are a contiguous row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from biograd.learner.config import LearnerConfig


class NeuronParams(NamedTuple):
    """(λ, θ, w, a) of one weight layer, as scalars of the network's dtype."""

    vdecay: np.floating
    vth: np.floating
    grad_win: np.floating
    grad_amp: np.floating


class Layer(NamedTuple):
    """The trained parameters of one weight layer (arrays changed in place by updates)."""

    wt: np.ndarray  # W^T, (N_in, N_out) C-contiguous
    b: np.ndarray  # (N_out,)
    params: NeuronParams


@dataclass
class GradAccum:
    """δ·E summed since the last weight update, and the rows of ``gwt`` that hold it.

    ``rows[:n_rows]`` lists (flag in ``touched``) the presynaptic inputs with a non-zero
    accumulation, so an update visits only them.
    """

    gwt: np.ndarray  # (N_in, N_out), like Layer.wt
    gb: np.ndarray  # (N_out,)
    touched: np.ndarray  # uint8 (N_in,)
    rows: np.ndarray  # int32 (N_in,)
    n_rows: int = 0

    def reindex(self) -> None:
        """Rebuild ``touched``/``rows`` from the non-zero rows of ``gwt`` (after a load)."""
        self.touched[:] = (self.gwt != 0).any(axis=1)
        idx = np.flatnonzero(self.touched)
        self.rows[: idx.size] = idx
        self.n_rows = int(idx.size)


class Recording(NamedTuple):
    """One layer's record of the current sample and its backward workspace (T steps)."""

    v: np.ndarray  # (T, N_out) membrane potentials
    h: np.ndarray  # (T, N_out) workspace for δ ⊙ g
    out_ptr: np.ndarray  # int64 (T + 1,) output spikes, CSR by step
    out_idx: np.ndarray  # int32 (T · N_out,)
    col_ptr: np.ndarray  # int64 (N_in + 1,) layer input by input (CSC)
    col_t: np.ndarray  # int32 (T · N_in,)


class SynapseTraces(NamedTuple):
    """Per-synapse traces of the ``synapse`` engine for one layer (overwritten every sample)."""

    rt: np.ndarray  # R^T (N_in, N_out)
    et: np.ndarray  # E^T (N_in, N_out)
    rb: np.ndarray  # bias R (N_out,)
    eb: np.ndarray  # bias E (N_out,)
    s_in: np.ndarray  # (N_in,) workspace: the input spikes of one step


def neuron_params(config: LearnerConfig, dtype: np.dtype) -> list[NeuronParams]:
    names = ("vdecay", "vth", "grad_win", "grad_amp")
    return [NeuronParams(*(dtype.type(config.layer_param(name, l)) for name in names)) for l in range(config.n_layers)]


def init_layers(config: LearnerConfig, rng: np.random.Generator) -> list[Layer]:
    """W, b uniform in ±1/sqrt(fan_in), drawn layer by layer (W, then b) from ``rng``."""
    dtype = np.dtype(config.dtype)
    sizes = config.layer_sizes
    layers = []
    for l, params in enumerate(neuron_params(config, dtype)):
        bound = 1.0 / np.sqrt(sizes[l])
        w = rng.uniform(-bound, bound, size=(sizes[l + 1], sizes[l]))
        b = rng.uniform(-bound, bound, size=sizes[l + 1]).astype(dtype)
        layers.append(Layer(np.ascontiguousarray(w.T, dtype=dtype), b, params))
    return layers


def new_grads(layers: list[Layer]) -> list[GradAccum]:
    return [
        GradAccum(
            np.zeros_like(lay.wt),
            np.zeros_like(lay.b),
            np.zeros(lay.wt.shape[0], dtype=np.uint8),
            np.zeros(lay.wt.shape[0], dtype=np.int32),
        )
        for lay in layers
    ]


def new_recordings(config: LearnerConfig) -> list[Recording]:
    dtype = np.dtype(config.dtype)
    T = config.timesteps
    sizes = config.layer_sizes
    return [
        Recording(
            np.zeros((T, n_out), dtype=dtype),
            np.zeros((T, n_out), dtype=dtype),
            np.zeros(T + 1, dtype=np.int64),
            np.zeros(T * n_out, dtype=np.int32),
            np.zeros(n_in + 1, dtype=np.int64),
            np.zeros(T * n_in, dtype=np.int32),
        )
        for n_in, n_out in zip(sizes[:-1], sizes[1:])
    ]


def new_synapse_traces(layers: list[Layer]) -> list[SynapseTraces]:
    out = []
    for lay in layers:
        n_in, n_out = lay.wt.shape
        dt = lay.wt.dtype
        out.append(
            SynapseTraces(
                np.zeros((n_in, n_out), dtype=dt),
                np.zeros((n_in, n_out), dtype=dt),
                np.zeros(n_out, dtype=dt),
                np.zeros(n_out, dtype=dt),
                np.zeros(n_in, dtype=dt),
            )
        )
    return out
