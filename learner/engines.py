"""The two trace engines, chosen once per learner (``learner.engine``).

Both compute E_ij = ∂(Σ_t s_i)/∂W_ij of every layer for one sample and add δ_i E_ij to the
gradient accumulators (:class:`~biograd.learner.state.GradAccum`):

* :class:`EventEngine` — the event form ``g(t) = ψ(t) + λ κ(t) g(t+1)``, ``E_ij = Σ_t g_i(t) s_j(t)``:
  O(T·N) per layer plus one row add per input spike (what makes a CPU fast);
* :class:`SynapseEngine` — per-synapse traces P, R, E updated every step during the forward
  pass (what an on-chip learning rule does), O(T·N·N_in).

Inference (:meth:`EventEngine.infer`) is the same event-driven forward pass in both.
"""

from __future__ import annotations

import numpy as np

from biograd.learner import kernels
from biograd.learner.state import GradAccum, Layer, Recording, SynapseTraces, new_synapse_traces


class EventEngine:
    name = "event"

    def __init__(self, layers: list[Layer], recs: list[Recording]):
        self.layers = layers
        self.recs = recs
        dt = layers[0].wt.dtype
        # the per-layer arrays as tuples for the one-call forward (weights change in place only)
        self._fwd_args = (
            tuple(lay.wt for lay in layers),
            tuple(lay.b for lay in layers),
            np.array([lay.params.vdecay for lay in layers], dtype=dt),
            np.array([lay.params.vth for lay in layers], dtype=dt),
            tuple(rec.v for rec in recs),
            tuple(rec.out_ptr for rec in recs),
            tuple(rec.out_idx for rec in recs),
        )

    def infer(self, ptr: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """All layers over all steps (records v and spikes); returns the output counts (int64)."""
        return kernels.network_forward(ptr, idx, *self._fwd_args)

    def train_forward(self, ptr: np.ndarray, idx: np.ndarray) -> None:
        """The forward pass of a training sample: records what :meth:`accumulate` needs."""
        self.infer(ptr, idx)

    def accumulate(self, ptr: np.ndarray, idx: np.ndarray, deltas: list[np.ndarray], grads: list[GradAccum]) -> None:
        """grads[l] += δ_l ⊙ E_l for the sample last passed to :meth:`train_forward`."""
        for lay, rec, delta, g in zip(self.layers, self.recs, deltas, grads):
            lam, th, win, amp = lay.params
            g.n_rows = kernels.layer_backward_event(
                rec.v,
                ptr,
                idx,
                delta,
                lam,
                th,
                win,
                amp,
                rec.h,
                g.gwt,
                g.gb,
                g.touched,
                g.rows,
                g.n_rows,
                rec.col_ptr,
                rec.col_t,
            )
            ptr, idx = rec.out_ptr, rec.out_idx


class SynapseEngine(EventEngine):
    name = "synapse"

    def __init__(self, layers: list[Layer], recs: list[Recording]):
        super().__init__(layers, recs)
        self._traces: list[SynapseTraces] | None = None  # allocated on the first training sample

    @property
    def traces(self) -> list[SynapseTraces]:
        if self._traces is None:
            self._traces = new_synapse_traces(self.layers)
        return self._traces

    def train_forward(self, ptr: np.ndarray, idx: np.ndarray) -> None:
        for lay, rec, tr in zip(self.layers, self.recs, self.traces):
            lam, th, win, amp = lay.params
            kernels.layer_forward_synapse(
                ptr,
                idx,
                lay.wt,
                lay.b,
                lam,
                th,
                win,
                amp,
                rec.v,
                rec.out_ptr,
                rec.out_idx,
                tr.rt,
                tr.et,
                tr.rb,
                tr.eb,
                tr.s_in,
            )
            ptr, idx = rec.out_ptr, rec.out_idx

    def accumulate(self, ptr: np.ndarray, idx: np.ndarray, deltas: list[np.ndarray], grads: list[GradAccum]) -> None:
        # Rows of inputs that never spiked hold E = 0 exactly: leave them untouched, as the
        # event engine does (the lazy optimizers step only touched rows).
        for tr, rec, delta, g in zip(self.traces, self.recs, deltas, grads):
            active = np.unique(idx[: ptr[-1]]).astype(np.int32)
            g.n_rows = kernels.accumulate_traces(tr.et, tr.eb, delta, g.gwt, g.gb, g.touched, g.rows, g.n_rows, active)
            ptr, idx = rec.out_ptr, rec.out_idx


ENGINES: dict[str, type[EventEngine]] = {"event": EventEngine, "synapse": SynapseEngine}


def make_engine(name: str, layers: list[Layer], recs: list[Recording]) -> EventEngine:
    return ENGINES[name](layers, recs)
