"""Lava's Continually Learning Prototypes (``lava.proc.clp``, lava-nc 0.10) on the same stream.

Input representation (our choice): each sample's spike raster summed over time and pooled
2 x 2 per polarity channel (MNIST 28x28 → 196 features, N-MNIST 2 x 34 x 34 → 578), scaled to unit
L2 norm and to 7 bits with an offset of one (1..127, see :func:`clp_features`), injected as one
graded spike. The graph is the one of Lava's CLP
tests (tests/lava/proc/clp/integration in lava-nc): RingBuffer → LearningDense (one-shot rule
``dw = 2^-3 y1 x1 y0``, x1 overwritten by the graded input) → PrototypeLIF; NoveltyDetector
(input without any prototype spike within ``t_wait`` steps) → Allocator → the next free
prototype learns the input; Readout maps the winning prototype to its label, and a wrong label
triggers another allocation. Lava's Readout labels a prototype only when a label arrives after
it won, so each sample's label is given twice: once after novelty allocation, once after a
possible error allocation (phases LABEL_1 and LABEL_2 of a PERIOD-step sample slot).

Training runs in Lava's CPU simulation (``Loihi2SimCfg`` fixed_pt, LearningDense bit-approx).
The graph is rebuilt for each task from the prototype weights, labels and allocation pointer
read back after the previous one. Test predictions use those integers: CLP's winner-take-all
inference, the label of the allocated prototype with the largest ``Σ_j W_ij x_j``. (Lava's
Readout instead takes the lowest-index prototype above threshold and answers "unknown" when
none fires; on a validation split of the training samples that readout scored 10-67 % where
winner-take-all scored 81-87 % (bench.continual clp-sweep).)

The similarity threshold (prototype fires when ``W x > sim · 127²``) was chosen on a validation
split of 200 training samples with a NumPy model of this allocation rule: 0.88 for MNIST features,
0.92 for N-MNIST (docs/continual.md).
"""

from __future__ import annotations

import numpy as np

from biograd.core.errors import BioGradError

B_FRACTION = 7  # input features in 0..127
PERIOD = 14
LABEL_1, LABEL_2 = 9, 13
T_WAIT = 2
#: similarity threshold per input size, chosen on a validation split of training samples
SIM_THRESHOLD = {784: 0.88, 2312: 0.92}


def clp_features(raster) -> np.ndarray:
    """Spike counts pooled 2 x 2 per polarity channel, unit L2 norm, integers 1..127."""
    n = raster.n_inputs
    dense = raster.to_dense().sum(axis=0).astype(np.float64)
    if n == 784:
        img = dense.reshape(1, 28, 28)
    elif n == 2312:
        img = dense.reshape(34, 34, 2).transpose(2, 0, 1)
    else:
        raise BioGradError(f"CLP features: no pooling defined for {n} inputs (784 or 2312)")
    c, h, w = img.shape
    pooled = img.reshape(c, h // 2, 2, w // 2, 2).sum(axis=(2, 4)).reshape(-1)
    norm = np.linalg.norm(pooled) or 1.0
    # 1..127, never 0: a graded input of 0 sends no spike, so OVERWRITE would leave that x1 trace
    # holding an earlier sample's value and the next allocated prototype would learn a mixture
    return 1 + np.floor(pooled / norm * (2**B_FRACTION - 2)).astype(np.int64)


class LavaCLP:
    """CLP through Lava: ``learn`` queues samples, ``end_task`` runs them through Lava."""

    def __init__(self, n_inputs: int, capacity: int, sim_threshold: float | None = None):
        self.capacity = capacity + 2
        if sim_threshold is None:
            sim_threshold = SIM_THRESHOLD.get(n_inputs, 0.8)
        self.sim_threshold = sim_threshold
        self.vth = int(sim_threshold * (2**B_FRACTION - 1) ** 2)
        self.weights: np.ndarray | None = None
        self.labels = np.zeros(self.capacity, dtype=np.int64)
        self.next_id = 1
        self.queue: list[tuple[np.ndarray, int]] = []
        self.lava_steps = 0
        self.lava_seconds = 0.0

    def learn(self, raster, label: int) -> None:
        self.queue.append((clp_features(raster), int(label)))

    def end_task(self) -> None:
        if self.queue:
            self._run_lava(self.queue)
            self.queue = []

    def predict(self, rasters) -> np.ndarray:
        if self.queue:
            self.end_task()
        feats = np.array([clp_features(r) for r in rasters])
        return self.predict_features(feats)

    def predict_features(self, feats: np.ndarray) -> np.ndarray:
        """Winner-take-all: the label of the allocated prototype with the largest W x (-1: none yet)."""
        n = self.n_prototypes
        if self.weights is None or n == 0:
            return np.full(len(feats), -1, dtype=np.int64)
        a = feats.astype(np.int64) @ self.weights[:n].T.astype(np.int64)
        lab = self.labels[:n][np.argmax(a, axis=1)]
        return np.where(lab > 0, lab - 1, -1).astype(np.int64)

    def _graph(self, feats: np.ndarray, labels: np.ndarray):
        from lava.magma.core.learning.constants import GradedSpikeCfg
        from lava.magma.core.learning.learning_rule import Loihi3FLearningRule
        from lava.proc.clp.novelty_detector.process import NoveltyDetector
        from lava.proc.clp.nsm.process import Allocator, Readout
        from lava.proc.clp.prototype_lif.process import PrototypeLIF
        from lava.proc.dense.process import Dense, LearningDense
        from lava.proc.io.sink import RingBuffer as Sink
        from lava.proc.io.source import RingBuffer
        from lava.utils.weightutils import SignMode

        n, nf = len(feats), feats.shape[1]
        steps = n * PERIOD
        x = np.zeros((nf, steps))
        lab = np.zeros((1, steps))
        for k in range(n):
            x[:, k * PERIOD] = feats[k]
            lab[0, k * PERIOD + LABEL_1] = labels[k] + 1  # CLP labels are 1-based (0 = none)
            lab[0, k * PERIOD + LABEL_2] = labels[k] + 1
        rule = Loihi3FLearningRule(dw=f"2^-{3}*y1*x1*y0", x1_tau=65535, t_epoch=1)
        w0 = np.zeros((self.capacity, nf)) if self.weights is None else self.weights.astype(np.float64)
        g = {
            "src": RingBuffer(data=x),
            "lab": RingBuffer(data=lab),
            "nvl": NoveltyDetector(t_wait=T_WAIT),
            "alloc": Allocator(n_protos=self.capacity, next_alloc_id=self.next_id),
            "readout": Readout(n_protos=self.capacity, proto_labels=self.labels.copy()),
            "protos": PrototypeLIF(
                du=4095,
                dv=4095,
                bias_mant=0,
                bias_exp=0,
                vth=self.vth,
                shape=(self.capacity,),
                sign_mode=SignMode.EXCITATORY,
                learning_rule=rule,
            ),
        }
        g["w"] = LearningDense(
            weights=w0, learning_rule=rule, num_message_bits=8, graded_spike_cfg=GradedSpikeCfg.OVERWRITE
        )
        d_in, d_out = Dense(weights=np.ones((1, nf))), Dense(weights=np.ones((1, self.capacity)))
        d_alloc, d_3rd = Dense(weights=np.ones((1, 1))), Dense(weights=np.ones((self.capacity, 1)), num_message_bits=8)
        g["src"].s_out.connect(g["w"].s_in)
        g["w"].a_out.connect(g["protos"].a_in)
        g["src"].s_out.connect(d_in.s_in)
        d_in.a_out.connect(g["nvl"].input_aval_in)
        g["protos"].s_out.connect(d_out.s_in)
        d_out.a_out.connect(g["nvl"].output_aval_in)
        g["nvl"].novelty_detected_out.connect(g["alloc"].trigger_in)
        g["alloc"].allocate_out.connect(d_3rd.s_in)
        d_3rd.a_out.connect(g["protos"].a_third_factor_in)
        g["protos"].s_out_bap.connect(g["w"].s_in_bap)
        g["protos"].s_out_y1.connect(g["w"].s_in_y1)
        g["protos"].s_out.connect(g["readout"].inference_in)
        g["lab"].s_out.connect(g["readout"].label_in)
        g["readout"].trigger_alloc.connect(d_alloc.s_in)
        d_alloc.a_out.connect(g["alloc"].trigger_in)
        g["sink"] = Sink(shape=(1,), buffer=steps)
        g["readout"].user_output.connect(g["sink"].a_in)
        return g, steps

    def _run_lava(self, items, learn: bool = True) -> np.ndarray:
        import time

        from lava.magma.core.run_conditions import RunSteps
        from lava.magma.core.run_configs import Loihi2SimCfg
        from lava.proc.dense.models import PyLearningDenseModelBitApproximate
        from lava.proc.dense.process import LearningDense

        feats = np.array([f for f, _ in items])
        labels = np.array([y for _, y in items]) if learn else np.full(len(items), -1)
        if learn and self.next_id + len(items) > self.capacity + 1:
            raise BioGradError(f"CLP: {len(items)} more samples could overflow {self.capacity} prototypes")
        g, steps = self._graph(feats, labels)
        cfg = Loihi2SimCfg(
            select_tag="fixed_pt", exception_proc_model_map={LearningDense: PyLearningDenseModelBitApproximate}
        )
        t0 = time.perf_counter()
        try:
            g["protos"].run(condition=RunSteps(num_steps=steps), run_cfg=cfg)
            out = np.asarray(g["sink"].data.get()).reshape(-1)
            if learn:
                self.weights = np.asarray(g["w"].weights.get()).astype(np.int64)
                self.labels = np.asarray(g["readout"].proto_labels.get()).astype(np.int64).reshape(-1)
                self.next_id = int(np.asarray(g["alloc"].next_alloc_id.get()).reshape(-1)[0])
        finally:
            g["protos"].stop()
        self.lava_steps += steps
        self.lava_seconds += time.perf_counter() - t0
        return out

    @property
    def n_prototypes(self) -> int:
        return self.next_id - 1
