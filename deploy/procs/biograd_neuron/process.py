"""BioGradNeuron: BioGrad's LIF soma with an error dendrite, feeding Loihi's learning engine.

Kept in its own folder: Lava imports every .py file beside a Process to find its models.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var


class BioGradNeuron(AbstractProcess):
    """Integer BioGrad neuron for on-chip learning (see deploy/onchip.py for the schedule).

    Within its T-step window of each sample (``period`` Lava steps, layer ``lag`` steps
    after the input), per step:
        v = [s_prev ? 0 : sgn(v)(|v (4096 - dv)| >> 12)] + (a_in << 6) + bias
        s = [v > vth << 6],   y1 = psi_y · [|v - (vth << 6)| < win]
    Outside it the neuron is silent (s = 0, y1 = 0). The error dendrite ``d`` sums
    ``a_err`` (the error interneurons through the feedback synapses); at phase
    ``timesteps + n_layers`` it emits the third factor as y2 - y3 with
        y2 = 64 + clip((d · delta_mult + 2^(delta_shift-1)) >> delta_shift, -63, 63),  y3 = flag_y = 64
    (y3 also clears the tags), then clears ``d``. Elsewhere y2 = y3 = 0: zero traces are
    the only values Lava's stochastic y-trace decay (tau 65535) never changes.
    """

    def __init__(
        self,
        *,
        shape: tuple[int],
        lag: int,
        n_layers: int,
        timesteps: int,
        period: int,
        vth: int,
        dv: int,
        bias_mant: np.ndarray,
        bias_exp: int,
        win: int,
        psi_y: int,
        delta_mult: int,
        delta_shift: int,
        flag_y: int,
        name: str | None = None,
    ):
        super().__init__(shape=shape, lag=lag, n_layers=n_layers, timesteps=timesteps, period=period, name=name)
        self.a_in = InPort(shape=shape)
        self.a_err = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.s_out_bap = OutPort(shape=shape)
        self.s_out_y1 = OutPort(shape=shape)
        self.s_out_y2 = OutPort(shape=shape)
        self.s_out_y3 = OutPort(shape=shape)
        self.v = Var(shape=shape, init=0)
        self.s_prev = Var(shape=shape, init=0)
        self.d = Var(shape=shape, init=0)
        self.bias_mant = Var(shape=shape, init=np.asarray(bias_mant))
        self.bias_exp = Var(shape=(1,), init=bias_exp)
        self.vth = Var(shape=(1,), init=vth)
        self.dv = Var(shape=(1,), init=dv)
        self.win = Var(shape=(1,), init=win)
        self.psi_y = Var(shape=(1,), init=psi_y)
        self.delta_mult = Var(shape=(1,), init=delta_mult)
        self.delta_shift = Var(shape=(1,), init=delta_shift)
        self.flag_y = Var(shape=(1,), init=flag_y)
