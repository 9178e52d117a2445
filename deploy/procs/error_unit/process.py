"""ErrorUnit: BioGrad's output error and error interneurons, in integers.

Kept in its own folder: Lava imports every .py file beside a Process to find its models.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var


class ErrorUnit(AbstractProcess):
    """Counts output spikes of each sample; from step ``error_start`` on computes
    e = softmax(c) - onehot(label) in units of 1/256 (exp from an integer table) and runs
    the two integrate-and-fire interneurons per output (threshold 256, soft reset one step
    later), sending z⁺ - z⁻ every step. ``labels[k]`` is sample k's label (-1: no error).
    """

    def __init__(
        self,
        *,
        shape: tuple[int],
        labels: np.ndarray,
        timesteps: int,
        error_start: int,
        period: int,
        n_layers: int,
        exp_table: np.ndarray,
        name: str | None = None,
    ):
        super().__init__(
            shape=shape, timesteps=timesteps, error_start=error_start, period=period, n_layers=n_layers, name=name
        )
        self.s_in = InPort(shape=shape)
        self.z_out = OutPort(shape=shape)
        self.labels = Var(shape=(len(labels),), init=np.asarray(labels))
        self.exp_table = Var(shape=(len(exp_table),), init=np.asarray(exp_table))
        self.counts = Var(shape=shape, init=0)
        self.a_pos = Var(shape=shape, init=0)
        self.a_neg = Var(shape=shape, init=0)
        self.z_pos = Var(shape=shape, init=0)
        self.z_neg = Var(shape=shape, init=0)
