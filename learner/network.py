"""The BioGrad online learner: forward/error phases, two trace engines, sleep, checkpoints.

Algorithm: ../shared/docs/biograd-algorithm.md. Per training sample (T steps):

1. forward, layer by layer (a layer sees the layer below's spikes of the same step):
   ``v(t) = λ v(t-1)(1 - s(t-1)) + W s_in(t) + b``, ``s = [v > θ]``;
2. error phase over steps t_e … T-1 (K = T - t_e steps) from the output counts c(t):
   ``e = softmax(c(t)) - onehot(label)`` drives two integrate-and-fire error
   interneurons per output (threshold 1, soft reset, no lower bound);
   ``D_out = Σ_t (z⁺ - z⁻)`` and for hidden layer l ``D_l = B_l D_out``;
   ``δ = D / K``;
3. eligibility ``E_ij = ∂(Σ_t s_i)/∂W_ij`` per layer (input spikes constant) from the
   ``event`` or ``synapse`` engine (:mod:`learner.kernels`), accumulated as ``δ_i E_ij``;
4. every ``batch_size`` samples: ``W -= η mean_batch(δ E)``, ``b -= η mean_batch(δ E^b)``;
5. sleep on schedule (:meth:`BioGradLearner.sleep`): noise-driven Hebbian learning of B_l.

Storage: W_l is kept transposed (N_{l-1}, N_l) C-contiguous for the event kernels;
:attr:`BioGradLearner.weights` gives (N_l, N_{l-1}) views of it (writing into them
changes the network).
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

import numpy as np

from biograd.core.config import from_dict
from biograd.core.errors import BioGradError, ConfigError, DataFormatError, DataNotFoundError
from biograd.learner import kernels
from biograd.learner.config import LearnerConfig
from biograd.learner.encoding import SpikeRaster

CHECKPOINT_FORMAT = "biograd-learner-v1"

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
        sizes = config.layer_sizes
        self._wt: list[np.ndarray] = []
        self.biases: list[np.ndarray] = []
        for l in range(config.n_layers):
            bound = 1.0 / np.sqrt(sizes[l])
            w = self.rng.uniform(-bound, bound, size=(sizes[l + 1], sizes[l]))
            self._wt.append(np.ascontiguousarray(w.T, dtype=self.dtype))
            self.biases.append(self.rng.uniform(-bound, bound, size=sizes[l + 1]).astype(self.dtype))
        self.feedback: list[np.ndarray] = []
        for l in range(config.n_layers - 1):
            mirror = self._mirror(l)
            if config.feedback_init == "mirror":
                b = mirror
            else:
                # Random direction, the mirror's Frobenius norm: only the angle starts wrong.
                b = self.rng.standard_normal(mirror.shape)
                b *= np.linalg.norm(mirror) / np.linalg.norm(b)
            # a copy: in float64 the top layer's mirror is W_out^T itself
            self.feedback.append(np.array(b, dtype=self.dtype, order="C", copy=True))
        self._gwt = [np.zeros_like(w) for w in self._wt]
        self._gb = [np.zeros_like(b) for b in self.biases]
        self.samples_seen = 0  # labelled training samples
        self.batch_fill = 0  # samples accumulated in the gradient since the last update
        self.updates = 0
        self.sleeps = 0
        self.samples_since_sleep = 0
        self.last_alignment: list[tuple[float, float]] = []
        self._params = [
            tuple(self.dtype.type(config.layer_param(name, l)) for name in ("vdecay", "vth", "grad_win", "grad_amp"))
            for l in range(config.n_layers)
        ]
        self._alloc_workspace()

    # --- public state -------------------------------------------------------

    @property
    def weights(self) -> list[np.ndarray]:
        """W_l of shape (N_l, N_{l-1}), as views of the transposed storage."""
        return [wt.T for wt in self._wt]

    @property
    def n_inputs(self) -> int:
        return self.config.layer_sizes[0]

    def _mirror(self, l: int) -> np.ndarray:
        """(W_out … W_{l+1})^T of shape (N_l, N_out) for hidden layer l, in float64."""
        prod = np.array(self._wt[-1], dtype=np.float64)  # (N_L, N_out) = W_out^T, a copy
        for k in range(self.config.n_layers - 2, l, -1):
            prod = np.asarray(self._wt[k], dtype=np.float64) @ prod
        return prod

    def feedback_alignment(self) -> list[tuple[float, float]]:
        """Per hidden layer: (angle in degrees, ‖B_l‖ / ‖(W_out…W_{l+1})^T‖)."""
        out = []
        for l, b in enumerate(self.feedback):
            m = self._mirror(l)
            b64 = np.asarray(b, dtype=np.float64)
            nb, nm = np.linalg.norm(b64), np.linalg.norm(m)
            if nb == 0.0 or nm == 0.0:
                out.append((90.0, nb / nm if nm else float("inf")))
                continue
            cos = float(np.clip(np.sum(b64 * m) / (nb * nm), -1.0, 1.0))
            out.append((float(np.degrees(np.arccos(cos))), float(nb / nm)))
        return out

    # --- workspaces ---------------------------------------------------------

    def _alloc_workspace(self):
        T = self.config.timesteps
        sizes = self.config.layer_sizes
        self._v_rec = [np.zeros((T, n), dtype=self.dtype) for n in sizes[1:]]
        self._h = [np.zeros((T, n), dtype=self.dtype) for n in sizes[1:]]
        self._out_ptr = [np.zeros(T + 1, dtype=np.int64) for _ in sizes[1:]]
        self._out_idx = [np.zeros(T * n, dtype=np.int32) for n in sizes[1:]]
        self._col_ptr = [np.zeros(n + 1, dtype=np.int64) for n in sizes[:-1]]
        self._col_t = [np.zeros(T * n, dtype=np.int32) for n in sizes[:-1]]
        # rows of each gradient matrix holding a non-zero accumulation since the last update
        self._touched = [(gwt != 0).any(axis=1).astype(np.uint8) for gwt in self._gwt]
        self._rows = [np.zeros(n, dtype=np.int32) for n in sizes[:-1]]
        self._n_rows = []
        for l, touched in enumerate(self._touched):
            idx = np.flatnonzero(touched)
            self._rows[l][: idx.size] = idx
            self._n_rows.append(int(idx.size))
        self._syn = None  # per-synapse traces, allocated on first use of the synapse engine
        # the same arrays as tuples for the one-call forward (weights change in place only)
        self._fwd_args = (
            tuple(self._wt),
            tuple(self.biases),
            np.array([p[0] for p in self._params], dtype=self.dtype),
            np.array([p[1] for p in self._params], dtype=self.dtype),
            tuple(self._v_rec),
            tuple(self._out_ptr),
            tuple(self._out_idx),
        )

    def _synapse_workspace(self):
        if self._syn is None:
            sizes = self.config.layer_sizes
            self._syn = [
                (
                    np.zeros((sizes[l], sizes[l + 1]), dtype=self.dtype),
                    np.zeros((sizes[l], sizes[l + 1]), dtype=self.dtype),
                    np.zeros(sizes[l + 1], dtype=self.dtype),
                    np.zeros(sizes[l + 1], dtype=self.dtype),
                    np.zeros(sizes[l], dtype=self.dtype),
                )
                for l in range(self.config.n_layers)
            ]
        return self._syn

    # --- input checks -------------------------------------------------------

    def _check(self, raster: SpikeRaster) -> tuple[np.ndarray, np.ndarray]:
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
        ptr, idx = self._check(raster)
        counts = self._forward(ptr, idx)
        return int(np.argmax(counts)), counts

    # --- training -------------------------------------------------------------

    def _forward(self, ptr, idx) -> np.ndarray:
        """All layers over all steps (records v and spikes); returns the output counts."""
        return kernels.network_forward(ptr, idx, *self._fwd_args)

    def _forward_synapse(self, ptr, idx):
        syn = self._synapse_workspace()
        for l in range(self.config.n_layers):
            lam, th, win, amp = self._params[l]
            rt, et, rb, eb, s_in = syn[l]
            kernels.layer_forward_synapse(
                ptr,
                idx,
                self._wt[l],
                self.biases[l],
                lam,
                th,
                win,
                amp,
                self._v_rec[l],
                self._out_ptr[l],
                self._out_idx[l],
                rt,
                et,
                rb,
                eb,
                s_in,
            )
            ptr, idx = self._out_ptr[l], self._out_idx[l]

    def _deltas(self, d_out: np.ndarray) -> list[np.ndarray]:
        """δ per weight layer: hidden δ_l = B_l D_out / K, output δ = D_out / K."""
        scaled = (d_out / (self.config.timesteps - self.config.error_start)).astype(self.dtype)
        deltas = [b @ scaled for b in self.feedback]
        deltas.append(scaled)
        return deltas

    def train_sample(self, raster: SpikeRaster, label: int) -> SampleResult:
        """Forward + error phase, accumulate δ·E, update at ``batch_size``, sleep on schedule."""
        cfg = self.config
        n_out = cfg.layer_sizes[-1]
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= label < n_out:
            raise BioGradError(f"label must be an integer in [0, {n_out}), got {label!r}")
        ptr, idx = self._check(raster)
        if cfg.engine == "event":
            self._forward(ptr, idx)
        else:
            self._forward_synapse(ptr, idx)
        counts, d_out, loss = kernels.error_phase(
            self._out_ptr[-1], self._out_idx[-1], n_out, cfg.error_start, int(label)
        )
        deltas = self._deltas(d_out)
        in_ptr, in_idx = ptr, idx
        for l in range(cfg.n_layers):
            if cfg.engine == "event":
                lam, th, win, amp = self._params[l]
                self._n_rows[l] = kernels.layer_backward_event(
                    self._v_rec[l],
                    in_ptr,
                    in_idx,
                    deltas[l],
                    lam,
                    th,
                    win,
                    amp,
                    self._h[l],
                    self._gwt[l],
                    self._gb[l],
                    self._touched[l],
                    self._rows[l],
                    self._n_rows[l],
                    self._col_ptr[l],
                    self._col_t[l],
                )
                in_ptr, in_idx = self._out_ptr[l], self._out_idx[l]
            else:
                _, et, _, eb, _ = self._syn[l]
                self._n_rows[l] = kernels.accumulate_traces(
                    et, eb, deltas[l], self._gwt[l], self._gb[l], self._touched[l], self._rows[l], self._n_rows[l]
                )
        self.samples_seen += 1
        self.batch_fill += 1
        self.samples_since_sleep += 1
        updated = False
        if self.batch_fill >= cfg.batch_size:
            self._apply_update()
            updated = True
        slept = self._maybe_sleep(updated)
        return SampleResult(int(np.argmax(counts)), counts, float(loss), updated, slept)

    def _apply_update(self):
        scale = self.dtype.type(self.config.lr / self.batch_fill)
        for l in range(self.config.n_layers):
            kernels.apply_update(
                self._wt[l],
                self._gwt[l],
                self.biases[l],
                self._gb[l],
                scale,
                self._touched[l],
                self._rows[l],
                self._n_rows[l],
            )
            self._n_rows[l] = 0
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
        self._apply_update()
        slept = self._maybe_sleep(True)
        return SampleResult(-1, np.zeros(self.config.layer_sizes[-1], dtype=np.int64), float("nan"), True, slept)

    # --- sleep ----------------------------------------------------------------

    def sleep(self) -> list[tuple[float, float]]:
        """One sleep phase: learn every B_l from noise; returns :meth:`feedback_alignment`.

        One rate r ~ U(0,1) per call; for each hidden layer l, top-down, M_s noise
        samples of T_s steps: ξ⁺, ξ⁻ ~ Bernoulli(r) on layer l (drawn as their
        difference, which is all the rule uses); the layer above gets
        W_{l+1}(ξ⁺ - ξ⁻) (no bias), higher layers run test-mode dynamics with bias.
        h = Σ_t (ξ⁺ - ξ⁻), n = Σ_t s_out per noise sample;
        ``B_l += η_s (Σ_m h_m n_mᵀ - mean_m(n_m²) ⊙ B_l)`` (summed Hebbian, averaged decay).
        Never touches W or b. Dense work, vectorised over the M_s samples (BLAS).
        """
        cfg = self.config
        dt = self.dtype
        m_s, t_s = cfg.sleep_noise_samples, cfg.sleep_steps
        rate = self.rng.random()
        # Only ξ⁺ - ξ⁻ is used, and for independent Bernoulli(r) spikes it is +1 and -1
        # with probability r(1 - r) each, else 0: one uniform per entry draws it.
        q = rate * (1.0 - rate)
        n_layers = cfg.n_layers
        for l in range(n_layers - 2, -1, -1):
            n_l = cfg.layer_sizes[l + 1]
            u = self.rng.random((t_s, m_s, n_l), dtype=np.float32)
            xi = np.empty((t_s, m_s, n_l), dtype=dt)
            h = np.empty((m_s, n_l), dtype=dt)
            kernels.ternary_noise(u, np.float32(q), xi, h)
            # the layer above l, for all steps and noise samples in one BLAS call (no bias)
            above = (xi.reshape(t_s * m_s, n_l) @ self._wt[l + 1]).reshape(t_s, m_s, -1)
            v = [np.zeros((m_s, cfg.layer_sizes[k + 1]), dtype=dt) for k in range(l + 1, n_layers)]
            s = [np.zeros((m_s, cfg.layer_sizes[k + 1]), dtype=dt) for k in range(l + 1, n_layers)]
            n = np.zeros((m_s, cfg.layer_sizes[-1]), dtype=dt)
            for t in range(t_s):
                for pos, k in enumerate(range(l + 1, n_layers)):
                    lam, th, _, _ = self._params[k]
                    current = above[t] if pos == 0 else s[pos - 1] @ self._wt[k] + self.biases[k]
                    v[pos] *= lam * (1.0 - s[pos])
                    v[pos] += current
                    s[pos] = (v[pos] > th).astype(dt)
                n += s[-1]
            b = self.feedback[l]
            hebb = h.T.astype(np.float64) @ n.astype(np.float64)
            decay = np.mean(n.astype(np.float64) ** 2, axis=0)
            b += (cfg.sleep_lr * (hebb - decay[None, :] * b)).astype(dt)
        self.sleeps += 1
        self.samples_since_sleep = 0
        self.last_alignment = self.feedback_alignment()
        return self.last_alignment

    # --- checkpoints ------------------------------------------------------------

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Everything needed to resume bit-identically, as named arrays (no objects)."""
        out = {
            "format": np.array(CHECKPOINT_FORMAT),
            "config_json": np.array(json.dumps(asdict(self.config))),
            "rng_json": np.array(json.dumps(self.rng.bit_generator.state)),
            "counters": np.array(
                [self.samples_seen, self.batch_fill, self.updates, self.sleeps, self.samples_since_sleep],
                dtype=np.int64,
            ),
        }
        for l in range(self.config.n_layers):
            out[f"W{l}"] = self._wt[l].T
            out[f"b{l}"] = self.biases[l]
            out[f"gW{l}"] = self._gwt[l].T
            out[f"gb{l}"] = self._gb[l]
        for l, b in enumerate(self.feedback):
            out[f"B{l}"] = b
        return out

    def save(self, path: str | os.PathLike) -> Path:
        """Write the full learner state to ``path`` (.npz, no pickle), atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **self.state_arrays())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        return path

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
            for l in range(cfg.n_layers):
                for key, target in (
                    (f"W{l}", self._wt[l].T),
                    (f"b{l}", self.biases[l]),
                    (f"gW{l}", self._gwt[l].T),
                    (f"gb{l}", self._gb[l]),
                ):
                    _copy_checked(path, key, data, target)
            for l, b in enumerate(self.feedback):
                _copy_checked(path, f"B{l}", data, b)
            counters = data["counters"]
            (self.samples_seen, self.batch_fill, self.updates, self.sleeps, self.samples_since_sleep) = (
                int(c) for c in counters
            )
            self.rng.bit_generator.state = json.loads(str(data["rng_json"]))
            self._alloc_workspace()
        except KeyError as exc:
            raise DataFormatError(path, f"checkpoint lacks array {exc}") from None
        except (ValueError, TypeError) as exc:
            raise DataFormatError(path, f"corrupt learner state: {exc}") from None
        return self


def read_checkpoint(path: str | os.PathLike) -> tuple[LearnerConfig, dict[str, np.ndarray]]:
    """The stored config and every array of a checkpoint written by :meth:`BioGradLearner.save`.

    Never unpickles. A missing file raises DataNotFoundError; an unreadable,
    foreign or config-less file a DataFormatError naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"checkpoint {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise DataFormatError(path, f"not a readable learner checkpoint (.npz): {exc}") from None
    if "format" not in data or str(data["format"]) != CHECKPOINT_FORMAT:
        raise DataFormatError(path, f"not a {CHECKPOINT_FORMAT} checkpoint (format={data.get('format', 'missing')!s})")
    try:
        stored = from_dict(LearnerConfig, json.loads(str(data["config_json"])), "learner.")
    except (ConfigError, json.JSONDecodeError, KeyError) as exc:
        raise DataFormatError(path, f"stored learner config is invalid: {exc}") from None
    return stored, data


def _copy_checked(path: Path, key: str, data: dict, target: np.ndarray) -> None:
    src = data[key]
    if src.shape != target.shape:
        raise ConfigError(
            f"checkpoint {path}: array {key} has shape {src.shape}, the configured network needs {target.shape}"
        )
    target[...] = src
