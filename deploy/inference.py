"""On-chip inference: the exported network as a Lava process graph, fed with binned spikes.

Graph: ``RingBuffer`` (input raster) → per layer ``Dense`` → ``LIFReset`` → … →
sink ``RingBuffer`` (output spikes). Every ``Dense`` delays its output by one time
step (Lava buffers the dendritic sum so recurrent graphs cannot deadlock), so weight
layer l (0 = first hidden) runs sample step t at Lava step ``k T + t + l + 2`` of sample
k; ``LIFReset`` zeroes u and v at that layer's first step of each sample
(``reset_offset``), which is BioGrad's fresh state per sample. Samples are laid end to
end, T steps each, and the output counts of sample k are summed over its shifted window.

Neuron mapping (Lava ``LIF``: ``u = u (1 - du) + a_in``, ``v = v (1 - dv) + u + bias``,
``s = v > vth``, ``v ← 0`` on a spike):
``du = 1`` (u is this step's input), ``dv = 1 - λ``, ``bias = b``, ``vth = θ``. BioGrad's
``λ v (1 - s_prev)`` keeps the pre-spike voltage for ψ and zeroes it one step later; Lava
zeroes it at once: the next voltage is the same, so spikes agree. Differences: the float
model sums the synaptic input in another order (``weights[:, s].sum``) and in float64, so a
voltage within ~1e-15 of θ can fall on the other side; ``1 - (1 - λ)`` differs from λ by one
ulp. ``fixed_pt`` adds the roundings of :mod:`deploy.quantize`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from biograd.core.errors import BioGradError
from biograd.deploy.backend import run_config
from biograd.deploy.fixed_point import ACT_SHIFT, DECAY_SHIFT, DECAY_UNITY, V_MAX
from biograd.deploy.params import NetworkParams
from biograd.deploy.quantize import FixedLayer, quantize_network


@dataclass(frozen=True)
class InferenceResult:
    counts: np.ndarray  # (n_samples, n_out) int64 output spike counts
    predictions: np.ndarray  # (n_samples,) argmax, first index on ties
    steps: int  # Lava time steps run
    seconds: float  # wall time of the Lava run (build + run + read-back)


def dense_input(rasters, n_inputs: int, timesteps: int, period: int | None = None) -> np.ndarray:
    """Input raster of all samples as one (n_inputs, n_samples * period) 0/1 array."""
    period = period or timesteps
    data = np.zeros((n_inputs, len(rasters) * period), dtype=np.int8)
    for k, r in enumerate(rasters):
        if r.n_inputs != n_inputs:
            raise BioGradError(f"sample {k}: raster has {r.n_inputs} inputs, the network expects {n_inputs}")
        if r.timesteps != timesteps:
            raise BioGradError(f"sample {k}: raster has {r.timesteps} steps, the network runs {timesteps}")
        for t in range(timesteps):
            data[r.indices[r.indptr[t] : r.indptr[t + 1]], k * period + t] = 1
    return data


def run_inference(
    params: NetworkParams, rasters, backend: str = "fixed_pt", fixed: list[FixedLayer] | None = None, chunk: int = 500
) -> InferenceResult:
    """Run ``rasters`` (list of SpikeRaster) through the Lava graph of ``params``.

    Samples go through in runs of ``chunk`` (a fresh graph each: every sample starts from a
    reset state anyway, so chunking changes nothing but the memory of the input buffer).
    """
    import time

    cfg = run_config(backend)  # raises HardwareUnavailableError before anything is built
    if len(rasters) == 0:
        raise BioGradError("no samples to run")
    if fixed is None and backend != "floating_pt":
        fixed = quantize_network(params)
    start = time.perf_counter()
    counts, steps = [], 0
    for lo in range(0, len(rasters), chunk):
        c, n_steps = _run_chunk(params, rasters[lo : lo + chunk], backend, fixed, cfg)
        counts.append(c)
        steps += n_steps
    counts = np.concatenate(counts)
    return InferenceResult(counts, np.argmax(counts, axis=1), steps, time.perf_counter() - start)


def _run_chunk(params, rasters, backend, fixed, cfg):
    from lava.magma.core.run_conditions import RunSteps
    from lava.proc.dense.process import Dense
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.lif.process import LIFReset

    T, L = params.timesteps, params.n_layers
    n = len(rasters)
    src = Source(data=dense_input(rasters, params.layer_sizes[0], T))
    prev = src.s_out
    for l in range(L):
        offset = (l + 2) % T
        if backend == "floating_pt":
            dense = Dense(weights=params.weights[l].copy())
            lif = LIFReset(
                shape=(params.layer_sizes[l + 1],),
                du=1.0,
                dv=1.0 - params.vdecay[l],
                bias_mant=params.biases[l].copy(),
                vth=params.vth[l],
                reset_interval=T,
                reset_offset=offset,
            )
        else:
            q = fixed[l]
            dense = Dense(weights=q.weights.copy(), weight_exp=q.weight_exp, num_weight_bits=8)
            lif = LIFReset(
                shape=(params.layer_sizes[l + 1],),
                du=q.du,
                dv=q.dv,
                bias_mant=q.bias_mant.copy(),
                bias_exp=np.full(q.bias_mant.shape, q.bias_exp),
                vth=q.vth,
                reset_interval=T,
                reset_offset=offset,
            )
        prev.connect(dense.s_in)
        dense.a_out.connect(lif.a_in)
        prev = lif.s_out
    steps = n * T + L
    sink = Sink(shape=(params.layer_sizes[-1],), buffer=steps)
    prev.connect(sink.a_in)
    try:
        src.run(condition=RunSteps(num_steps=steps), run_cfg=cfg)
        out = np.asarray(sink.data.get())
    finally:
        src.stop()
    counts = np.zeros((n, params.layer_sizes[-1]), dtype=np.int64)
    for k in range(n):
        counts[k] = (out[:, k * T + L : k * T + L + T] != 0).sum(axis=1)
    return counts, steps


def reference_counts(params: NetworkParams, raster, fixed: list[FixedLayer] | None = None) -> np.ndarray:
    """Output counts of one sample by plain NumPy: BioGrad's float neuron, or (with ``fixed``)
    Lava's integer Dense/LIF arithmetic. An oracle for the Lava graph."""
    dense = raster.to_dense().astype(np.int64)
    x = dense
    for l in range(params.n_layers):
        n_out = params.layer_sizes[l + 1]
        out = np.zeros((params.timesteps, n_out), dtype=np.int64)
        if fixed is None:
            w, b, lam, th = params.weights[l], params.biases[l], params.vdecay[l], params.vth[l]
            v = np.zeros(n_out)
            s = np.zeros(n_out, dtype=bool)
            for t in range(params.timesteps):
                v = lam * v * (~s) + (w @ x[t] + b)
                s = v > th
                out[t] = s
        else:
            q = fixed[l]
            v = np.zeros(n_out, dtype=np.int64)
            bias = q.bias_mant.astype(np.int64) << q.bias_exp
            for t in range(params.timesteps):
                a = (q.weights.astype(np.int64) @ x[t]) << q.weight_exp
                dec = v * (DECAY_UNITY - q.dv)
                v = np.sign(dec) * (np.abs(dec) >> DECAY_SHIFT) + (a << ACT_SHIFT) + bias
                v = np.clip(v, -V_MAX, V_MAX)
                s = v > (q.vth << ACT_SHIFT)
                v[s] = 0
                out[t] = s
        x = out
    return x.sum(axis=0)
