"""The on-chip learner as a Lava process graph: ``LearningDense`` + BioGradNeuron per layer, an
ErrorUnit, feedback ``Dense`` synapses (schedule and mapping in :mod:`deploy.onchip`).

Runs in Lava's ``fixed_pt`` CPU simulation here, or on a Loihi 2 chip with lava-loihi;
:class:`deploy.emulator.OnChipEmulator` computes the same integers in Numba.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from biograd.core.errors import BioGradError, ConfigError
from biograd.deploy.fixed_point import DELTA_SHIFT, FLAG_Y, PSI_Y
from biograd.deploy.plan import OnChipPlan


class LavaOnChip:
    """The on-chip learner as a Lava process graph (fixed_pt simulation, or a chip)."""

    def __init__(self, plan: OnChipPlan, rasters, labels, backend: str = "fixed_pt"):
        from lava.proc.dense.process import Dense, LearningDense
        from lava.proc.io.sink import RingBuffer as Sink
        from lava.proc.io.source import RingBuffer as Source

        from biograd.deploy.backend import run_config
        from biograd.deploy.inference import dense_input
        from biograd.deploy.procs.biograd_neuron.process import BioGradNeuron
        from biograd.deploy.procs.error_unit.process import ErrorUnit

        if backend == "floating_pt":
            raise ConfigError("on-chip learning runs in integers: use --backend fixed_pt or loihi2-hw")
        self.cfg = run_config(backend)
        self.plan = plan
        P, L = plan.period, plan.n_layers
        n_in = plan.layers[0].weights.shape[1]
        self.n_samples = len(rasters)
        self.steps_done = 0
        self.src = Source(data=dense_input(rasters, n_in, plan.timesteps, period=P).astype(np.int32))
        prev = self.src.s_out
        self.synapses, self.neurons = [], []
        for l, lay in enumerate(plan.layers):
            syn = LearningDense(
                weights=lay.weights.copy(), learning_rule=plan.learning_rule(l), num_message_bits=0, name=f"W{l}"
            )
            neu = BioGradNeuron(
                shape=(lay.weights.shape[0],),
                lag=l + 1,
                n_layers=L,
                timesteps=plan.timesteps,
                period=P,
                vth=lay.vth,
                dv=lay.dv,
                bias_mant=lay.bias_mant,
                bias_exp=lay.bias_exp,
                win=lay.win,
                psi_y=PSI_Y,
                delta_mult=lay.delta_mult,
                delta_shift=DELTA_SHIFT,
                flag_y=FLAG_Y,
                name=f"N{l}",
            )
            prev.connect(syn.s_in)
            syn.a_out.connect(neu.a_in)
            neu.s_out_bap.connect(syn.s_in_bap)
            neu.s_out_y1.connect(syn.s_in_y1)
            neu.s_out_y2.connect(syn.s_in_y2)
            neu.s_out_y3.connect(syn.s_in_y3)
            prev = neu.s_out
            self.synapses.append(syn)
            self.neurons.append(neu)
        n_out = plan.layers[-1].weights.shape[0]
        self.error = ErrorUnit(
            shape=(n_out,),
            labels=np.asarray(labels, dtype=np.int64),
            timesteps=plan.timesteps,
            error_start=plan.error_start,
            period=P,
            n_layers=L,
            exp_table=plan.exp_table,
        )
        prev.connect(self.error.s_in)
        self.feedback = []
        for l, (lay, neu) in enumerate(zip(plan.layers, self.neurons)):
            fb = Dense(weights=lay.feedback.copy(), num_message_bits=8, name=f"B{l}")
            self.error.z_out.connect(fb.s_in)
            fb.a_out.connect(neu.a_err)
            self.feedback.append(fb)
        self.total_steps = self.n_samples * P
        self.sink = Sink(shape=(n_out,), buffer=self.total_steps)
        prev.connect(self.sink.a_in)

    def run(self, steps: int) -> None:
        from lava.magma.core.run_conditions import RunSteps

        if self.steps_done + steps > self.total_steps:
            raise BioGradError(f"only {self.total_steps - self.steps_done} steps of input remain")
        self.src.run(condition=RunSteps(num_steps=steps), run_cfg=self.cfg)
        self.steps_done += steps

    def state(self) -> dict[str, list[np.ndarray]]:
        """Integer state: weights, tags, x1 traces, membrane voltages, dendrites."""
        return {
            "weights": [np.asarray(s.weights.get()).astype(np.int64) for s in self.synapses],
            "tags": [np.asarray(s.tag_1.get()).astype(np.int64) for s in self.synapses],
            "x1": [np.asarray(s.x1.get()).astype(np.int64) for s in self.synapses],
            "v": [np.asarray(n.v.get()).astype(np.int64) for n in self.neurons],
            "d": [np.asarray(n.d.get()).astype(np.int64) for n in self.neurons],
        }

    def output_counts(self) -> np.ndarray:
        """(n_samples, n_out) output spike counts of the samples run so far."""
        out = np.asarray(self.sink.data.get())
        P, L, T = self.plan.period, self.plan.n_layers, self.plan.timesteps
        n = self.steps_done // P
        return np.array(
            [(out[:, k * P + L : k * P + L + T] != 0).sum(axis=1) for k in range(n)], dtype=np.int64
        ).reshape(n, -1)

    def stop(self) -> None:
        self.src.stop()

    def run_all(
        self, progress: Callable[[int, int], None] | None = None, every: int = 100
    ) -> tuple[dict[str, list[np.ndarray]], np.ndarray]:
        """Run every remaining step, then stop Lava: (integer state, output counts per sample).

        With ``progress``, Lava runs ``every`` samples at a time and ``progress(done, total)``
        is called after each run (the integers are the same: a run may stop at any step)."""
        try:
            if progress is None:
                self.run(self.total_steps - self.steps_done)
            else:
                P = self.plan.period
                while self.steps_done < self.total_steps:
                    self.run(min(every * P, self.total_steps - self.steps_done))
                    progress(self.steps_done // P, self.n_samples)
            return self.state(), self.output_counts()
        finally:
            self.stop()
