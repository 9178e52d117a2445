"""Fixed-point ProcessModel of ErrorUnit."""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from biograd.deploy.fixed_point import ERR_UNIT
from biograd.deploy.procs.error_unit.process import ErrorUnit


@implements(proc=ErrorUnit, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyErrorUnitFixed(PyLoihiProcessModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=1)
    z_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=2)
    labels: np.ndarray = LavaPyType(np.ndarray, np.int64)
    exp_table: np.ndarray = LavaPyType(np.ndarray, np.int64)
    counts: np.ndarray = LavaPyType(np.ndarray, np.int64)
    a_pos: np.ndarray = LavaPyType(np.ndarray, np.int64)
    a_neg: np.ndarray = LavaPyType(np.ndarray, np.int64)
    z_pos: np.ndarray = LavaPyType(np.ndarray, np.int64)
    z_neg: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def run_spk(self):
        p = self.proc_params
        s = self.s_in.recv().astype(np.int64)
        period, L = p["period"], p["n_layers"]
        k = (self.time_step - 1) // period
        t = (self.time_step - 1) % period - L
        z = np.zeros(self.counts.shape[0], dtype=np.int32)
        if 0 <= t < p["timesteps"]:
            if t == 0:
                for var in (self.counts, self.a_pos, self.a_neg, self.z_pos, self.z_neg):
                    var[:] = 0
            self.counts[:] = self.counts + (s != 0)
            label = int(self.labels[k]) if k < self.labels.shape[0] else -1
            if t >= p["error_start"] and label >= 0:
                num = self.exp_table[np.max(self.counts) - self.counts]
                e = (num * ERR_UNIT) // np.sum(num)
                e[label] -= ERR_UNIT
                self.a_pos[:] = self.a_pos - self.z_pos * ERR_UNIT + e
                self.a_neg[:] = self.a_neg - self.z_neg * ERR_UNIT - e
                self.z_pos[:] = self.a_pos > ERR_UNIT
                self.z_neg[:] = self.a_neg > ERR_UNIT
                z = (self.z_pos - self.z_neg).astype(np.int32)
        self.z_out.send(z)
