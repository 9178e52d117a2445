"""The BioGrad online learner: forward/error phases, trace engines, updates, sleep, checkpoints.

Algorithm: ../shared/docs/biograd-algorithm.md. Per training sample (T steps):

1. forward, layer by layer (a layer sees the layer below's spikes of the same step):
   ``v(t) = λ v(t-1)(1 - s(t-1)) + W s_in(t) + b``, ``s = [v > θ]``;
2. error phase over steps t_e … T-1 (K = T - t_e steps) from the output counts c(t):
   ``e = softmax(c(t)) - onehot(label)`` drives two integrate-and-fire error
   interneurons per output (threshold 1, soft reset, no lower bound);
   ``D_out = Σ_t (z⁺ - z⁻)`` and for hidden layer l ``D_l = B_l D_out``;
   ``δ = D / K``;
3. eligibility ``E_ij = ∂(Σ_t s_i)/∂W_ij`` per layer (input spikes constant) from the
   ``event`` or ``synapse`` engine (:mod:`biograd.learner.engines`), accumulated as ``δ_i E_ij``;
4. every ``batch_size`` samples: an optimizer step on ``mean_batch(δ E)`` and ``mean_batch(δ E^b)``
   (:mod:`biograd.learner.optim`; the paper's is SGD ``W -= η mean_batch(δ E)``);
5. sleep on schedule (:func:`biograd.learner.sleep.sleep_feedback`): noise-driven Hebbian
   learning of B_l.

State lives in typed per-layer records (:mod:`biograd.learner.state`): ``layers`` (W^T, b,
neuron parameters), ``grads`` (accumulated δ·E and the rows it touches), ``recs`` (the current
sample's record). :attr:`BioGradLearner.weights` gives (N_l, N_{l-1}) views of the transposed
storage (writing into them changes the network).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

import numpy as np

from biograd.core.errors import BioGradError, ConfigError, DataFormatError
from biograd.learner import kernels, parallel
from biograd.learner.checkpoint_io import CHECKPOINT_FORMAT, copy_checked, read_checkpoint, write_arrays
from biograd.learner.config import LearnerConfig
from biograd.learner.encoding import SpikeRaster
from biograd.learner.engines import make_engine
from biograd.learner.optim import make_optimizer
from biograd.learner.sleep import draw_sleep_noise, feedback_alignment, init_feedback, sleep_feedback
from biograd.learner.state import init_layers, new_grads, new_recordings

__all__ = ["BioGradLearner", "SampleResult", "read_checkpoint", "CHECKPOINT_FORMAT"]

_RASTER_ERRORS = {
    1: "indptr must start at 0 and have length T + 1 >= 2",
    2: "indptr must be non-decreasing",
    3: "indptr[-1] must equal len(indices)",
    4: "an input index is outside [0, n_inputs)",
}


class SampleResult(NamedTuple):
    prediction: int
    counts: np.ndarray  # output spike counts over the sample, int64 (10,)
    loss: float  # -log softmax(counts)[label]
    updated: bool  # this sample completed a batch and the weights changed
    slept: bool  # a sleep phase ran after this sample


class BioGradLearner:
    """A BioGrad network with its online-learning state. See the module docstring."""

    def __init__(self, config: LearnerConfig | None = None):
        self.config = config = config if config is not None else LearnerConfig()
        self.dtype = np.dtype(config.dtype)
        self.rng = np.random.Generator(np.random.PCG64(config.seed))
        self.layers = init_layers(config, self.rng)
        self.feedback: list[np.ndarray] = init_feedback(self.layers, config.feedback_init, self.rng)
        self.grads = new_grads(self.layers)
        self.recs = new_recordings(config)
        self.engine = make_engine(config.engine, self.layers, self.recs)
        self.optimizer = make_optimizer(config, self.layers)
        self._batch_ws: parallel.BatchWorkspace | None = None  # train_batch's, on first use
        self.samples_seen = 0  # labelled training samples
        self.batch_fill = 0  # samples accumulated in the gradient since the last update
        self.updates = 0
        self.last_change = 0  # samples_seen at the last update that changed a weight (health guard)
        self.sleeps = 0
        self.samples_since_sleep = 0
        self.last_alignment: list[tuple[float, float]] = []

    # --- public state -------------------------------------------------------

    @property
    def weights(self) -> list[np.ndarray]:
        """W_l of shape (N_l, N_{l-1}), as views of the transposed storage."""
        return [lay.wt.T for lay in self.layers]

    @property
    def biases(self) -> list[np.ndarray]:
        return [lay.b for lay in self.layers]

    @property
    def n_inputs(self) -> int:
        return self.config.layer_sizes[0]

    def feedback_alignment(self) -> list[tuple[float, float]]:
        """Per hidden layer: (angle in degrees, ‖B_l‖ / ‖(W_out…W_{l+1})^T‖)."""
        return feedback_alignment(self.layers, self.feedback)

    # --- input checks -------------------------------------------------------

    def check_raster(self, raster: SpikeRaster) -> tuple[np.ndarray, np.ndarray]:
        """(indptr int64, indices int32) of a raster that fits the network, else BioGradError."""
        if int(raster.n_inputs) != self.n_inputs:
            raise BioGradError(
                f"raster has {raster.n_inputs} inputs but the network's input layer has {self.n_inputs} "
                f"(learner.layer_sizes={self.config.layer_sizes})"
            )
        indptr = np.ascontiguousarray(raster.indptr, dtype=np.int64)
        indices = np.ascontiguousarray(raster.indices, dtype=np.int32)
        if indptr.shape[0] != self.config.timesteps + 1:
            raise BioGradError(
                f"raster has {indptr.shape[0] - 1} time steps but learner.timesteps = {self.config.timesteps}"
            )
        code = kernels.check_raster(indptr, indices, self.n_inputs)
        if code:
            raise BioGradError(f"malformed spike raster: {_RASTER_ERRORS[code]}")
        return indptr, indices

    # --- inference ------------------------------------------------------------

    def predict(self, raster: SpikeRaster) -> tuple[int, np.ndarray]:
        """Inference only (no traces, no error): (argmax of output counts, counts int64 (10,)).

        Ties go to the first index.
        """
        ptr, idx = self.check_raster(raster)
        counts = self.engine.infer(ptr, idx)
        return int(np.argmax(counts)), counts

    # --- training -------------------------------------------------------------

    def deltas(self, d_out: np.ndarray) -> list[np.ndarray]:
        """δ per weight layer: hidden δ_l = B_l D_out / K, output δ = D_out / K (new arrays)."""
        out = tuple(np.empty((1, n), dtype=self.dtype) for n in self.config.layer_sizes[1:])
        k = float(self.config.timesteps - self.config.error_start)
        kernels.hidden_deltas(tuple(self.feedback), np.asarray(d_out, dtype=np.float64), k, out, 0)
        return [d[0] for d in out]

    def train_sample(self, raster: SpikeRaster, label: int) -> SampleResult:
        """Forward + error phase, accumulate δ·E, update at ``batch_size``, sleep on schedule."""
        cfg = self.config
        n_out = cfg.layer_sizes[-1]
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= label < n_out:
            raise BioGradError(f"label must be an integer in [0, {n_out}), got {label!r}")
        ptr, idx = self.check_raster(raster)
        self.engine.train_forward(ptr, idx)
        out = self.recs[-1]
        counts, d_out, loss = kernels.error_phase(out.out_ptr, out.out_idx, n_out, cfg.error_start, int(label))
        self.engine.accumulate(ptr, idx, self.deltas(d_out), self.grads)
        self.samples_seen += 1
        self.batch_fill += 1
        self.samples_since_sleep += 1
        updated = False
        if self.batch_fill >= cfg.batch_size:
            self.apply_update()
            updated = True
        slept = self._maybe_sleep(updated)
        return SampleResult(int(np.argmax(counts)), counts, float(loss), updated, slept)

    def train_batch(self, rasters, labels) -> list[SampleResult]:
        """:meth:`train_sample` over every sample, the samples between two weight updates
        trained together on ``learner.threads`` threads (:mod:`~biograd.learner.parallel`):
        the same weights, counts and losses bit for bit, whatever the thread count."""
        cfg = self.config
        if len(rasters) != len(labels):
            raise BioGradError(f"{len(rasters)} rasters but {len(labels)} labels")
        if cfg.engine != "event":
            return [self.train_sample(r, y) for r, y in zip(rasters, labels)]
        n_out = cfg.layer_sizes[-1]
        for y in labels:
            if isinstance(y, bool) or not isinstance(y, (int, np.integer)) or not 0 <= y < n_out:
                raise BioGradError(f"label must be an integer in [0, {n_out}), got {y!r}")
        checked = [self.check_raster(r) for r in rasters]
        parallel.use_threads(cfg.threads)
        if self._batch_ws is None:
            self._batch_ws = parallel.BatchWorkspace(cfg.layer_sizes, cfg.timesteps, parallel.CHUNK, self.dtype)
        results: list[SampleResult] = []
        i = 0
        while i < len(checked):
            room = cfg.batch_size - self.batch_fill
            if cfg.sleep and cfg.sleep_every:
                room = min(room, max(1, cfg.sleep_every - self.samples_since_sleep))
            part = checked[i : i + room]
            counts, loss = self._batch_ws.accumulate(
                [p for p, _ in part],
                [x for _, x in part],
                labels[i : i + room],
                self.layers,
                self.feedback,
                cfg.error_start,
                self.grads,
            )
            n = len(part)
            self.samples_seen += n
            self.batch_fill += n
            self.samples_since_sleep += n
            updated = self.batch_fill >= cfg.batch_size
            if updated:
                self.apply_update()
            slept = self._maybe_sleep(updated)
            for s in range(n):
                last = s == n - 1
                results.append(
                    SampleResult(int(np.argmax(counts[s])), counts[s], float(loss[s]), updated and last, slept and last)
                )
            i += n
        return results

    def apply_update(self) -> None:
        """One optimizer step on the mean of the accumulated gradients; clears them."""
        # A step whose bias gradients are all exactly 0 had no neuron inside the surrogate
        # window: then every weight gradient is 0 too and nothing changes (the step says so).
        if self.optimizer.step(self.layers, self.grads, self.batch_fill):
            self.last_change = self.samples_seen
        self.batch_fill = 0
        self.updates += 1

    def _maybe_sleep(self, updated: bool) -> bool:
        cfg = self.config
        if not cfg.sleep:
            return False
        due = updated if cfg.sleep_every == 0 else self.samples_since_sleep >= cfg.sleep_every
        if due:
            self.sleep()
        return due

    def flush(self) -> SampleResult | None:
        """Apply a partial batch now (end of an epoch / stream); sleeps if the schedule is per batch.

        Returns None when nothing was accumulated, else a result with ``updated=True``.
        """
        if self.batch_fill == 0:
            return None
        self.apply_update()
        slept = self._maybe_sleep(True)
        return SampleResult(-1, np.zeros(self.config.layer_sizes[-1], dtype=np.int64), float("nan"), True, slept)

    # --- sleep ----------------------------------------------------------------

    def sleep(self) -> list[tuple[float, float]]:
        """One sleep phase (:func:`~biograd.learner.sleep.sleep_feedback`); returns the alignment.

        Never touches W or b.
        """
        cfg = self.config
        m_s, t_s = cfg.sleep_noise_samples, cfg.sleep_steps
        parallel.use_threads(cfg.threads)  # the noise samples run in parallel
        rate, keys = draw_sleep_noise(self.rng, cfg.layer_sizes, m_s, t_s)
        new = sleep_feedback(self.layers, self.feedback, rate, keys, cfg.sleep_lr, m_s, t_s)
        for b, nb in zip(self.feedback, new):
            b[...] = nb
        self.sleeps += 1
        self.samples_since_sleep = 0
        self.last_alignment = self.feedback_alignment()
        return self.last_alignment

    # --- checkpoints ------------------------------------------------------------

    def _counters(self) -> list[int]:
        return [self.samples_seen, self.batch_fill, self.updates, self.sleeps, self.samples_since_sleep]

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Everything needed to resume bit-identically, as named arrays (no objects)."""
        out = {
            "format": np.array(CHECKPOINT_FORMAT),
            "config_json": np.array(json.dumps(asdict(self.config))),
            "rng_json": np.array(json.dumps(self.rng.bit_generator.state)),
            "counters": np.array(self._counters(), dtype=np.int64),
        }
        for l, (lay, g) in enumerate(zip(self.layers, self.grads)):
            out[f"W{l}"] = lay.wt.T
            out[f"b{l}"] = lay.b
            out[f"gW{l}"] = g.gwt.T
            out[f"gb{l}"] = g.gb
        for l, b in enumerate(self.feedback):
            out[f"B{l}"] = b
        out.update(self.optimizer.state_arrays())
        return out

    def save(self, path: str | os.PathLike) -> Path:
        """Write the full learner state to ``path`` (.npz, no pickle), atomically."""
        return write_arrays(path, self.state_arrays())

    @classmethod
    def load(cls, path: str | os.PathLike, config: LearnerConfig | None = None) -> BioGradLearner:
        """Restore a learner saved by :meth:`save`.

        With ``config`` given, the checkpoint must have the same architecture
        (``layer_sizes``) — a :class:`ConfigError` names the file and both shapes
        otherwise — and ``config`` replaces the stored settings (e.g. a new learning
        rate); without it the stored config is used.
        """
        path = Path(path)
        stored, data = read_checkpoint(path)
        if config is not None and tuple(config.layer_sizes) != tuple(stored.layer_sizes):
            raise ConfigError(
                f"checkpoint {path} holds a network of layer sizes {tuple(stored.layer_sizes)} "
                f"but learner.layer_sizes = {tuple(config.layer_sizes)}"
            )
        cfg = config if config is not None else stored
        self = cls(cfg)
        try:
            for l, (lay, g) in enumerate(zip(self.layers, self.grads)):
                copy_checked(path, f"W{l}", data, lay.wt.T)
                copy_checked(path, f"b{l}", data, lay.b)
                copy_checked(path, f"gW{l}", data, g.gwt.T)
                copy_checked(path, f"gb{l}", data, g.gb)
                g.reindex()
            for l, b in enumerate(self.feedback):
                copy_checked(path, f"B{l}", data, b)
            self.optimizer.load_state(path, data, stored)
            (self.samples_seen, self.batch_fill, self.updates, self.sleeps, self.samples_since_sleep) = (
                int(c) for c in data["counters"]
            )
            self.last_change = self.samples_seen
            self.rng.bit_generator.state = json.loads(str(data["rng_json"]))
        except KeyError as exc:
            raise DataFormatError(path, f"checkpoint lacks array {exc}") from None
        except (ValueError, TypeError) as exc:
            raise DataFormatError(path, f"corrupt learner state: {exc}") from None
        return self
