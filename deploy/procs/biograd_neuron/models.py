"""Fixed-point ProcessModel of BioGradNeuron (CPU simulation of the integer neuron)."""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from biograd.deploy.fixed_point import (
    ACT_SHIFT,
    DECAY_SHIFT,
    DECAY_UNITY,
    FLAG_Y,
    THIRD_FACTOR_MAX,
    V_BITS,
    V_MAX,
    VTH_BITS,
    W_TRACE,
)
from biograd.deploy.procs.biograd_neuron.process import BioGradNeuron


@implements(proc=BioGradNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyBioGradNeuronFixed(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=V_BITS)
    a_err: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=V_BITS)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=1)
    s_out_bap: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=1)
    s_out_y1: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=W_TRACE)
    s_out_y2: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=W_TRACE)
    s_out_y3: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=W_TRACE)
    v: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=V_BITS)
    s_prev: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=1)
    d: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=V_BITS)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=13)
    bias_exp: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=3)
    vth: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=VTH_BITS)
    dv: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=DECAY_SHIFT)
    win: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=V_BITS)
    psi_y: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=W_TRACE)
    delta_mult: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=V_BITS)
    delta_shift: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=5)
    flag_y: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=W_TRACE)

    def run_spk(self):
        p = self.proc_params
        a = self.a_in.recv().astype(np.int64)
        self.d[:] = self.d + self.a_err.recv().astype(np.int64)
        phase = (self.time_step - 1) % p["period"]
        t = phase - p["lag"]
        n = self.v.shape[0]
        s = np.zeros(n, dtype=np.int32)
        y1 = np.zeros(n, dtype=np.int32)
        y2 = np.zeros(n, dtype=np.int32)
        y3 = np.zeros(n, dtype=np.int32)
        if 0 <= t < p["timesteps"]:
            if t == 0:
                self.v[:] = 0
                self.s_prev[:] = 0
            dec = self.v * (DECAY_UNITY - int(self.dv[0]))
            dec = np.sign(dec) * (np.abs(dec) >> DECAY_SHIFT)
            dec[self.s_prev != 0] = 0
            bias = self.bias_mant << int(self.bias_exp[0])
            v = np.clip(dec + (a << ACT_SHIFT) + bias, -V_MAX, V_MAX)
            th = int(self.vth[0]) << ACT_SHIFT
            s = (v > th).astype(np.int32)
            y1 = (np.abs(v - th) < int(self.win[0])).astype(np.int32) * int(self.psi_y[0])
            self.v[:] = v
            self.s_prev[:] = s
        if phase == p["timesteps"] + p["n_layers"]:
            r = int(self.delta_shift[0])
            q = (self.d * int(self.delta_mult[0]) + (1 << (r - 1))) >> r
            y2 = (FLAG_Y + np.clip(q, -THIRD_FACTOR_MAX, THIRD_FACTOR_MAX)).astype(np.int32)
            y3[:] = int(self.flag_y[0])
            self.d[:] = 0
        self.s_out.send(s)
        self.s_out_bap.send(s)
        self.s_out_y1.send(y1)
        self.s_out_y2.send(y2)
        self.s_out_y3.send(y3)
