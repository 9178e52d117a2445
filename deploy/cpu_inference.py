"""The Loihi fixed-point export run on the CPU: integer event kernels over the exported integers.

``deploy.quantize`` makes the integers the chip gets (per layer an even 8-bit mantissa, one
weight exponent, bias mantissa/exponent, vth, dv); :func:`cpu_network` hands exactly those to
:class:`learner.int_inference.IntNetwork`, whose kernels compute the counts of
``deploy.inference.reference_counts(params, raster, fixed)`` (and so of Lava ``fixed_pt``)
bit for bit, from int8 weights (the first layer one byte per weight; the layers above also keep
the negated matrix, to add the change of their input from step to step).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from biograd.core.errors import BioGradError
from biograd.deploy.params import NetworkParams
from biograd.deploy.quantize import DECAY_UNITY, FixedLayer, quantize_network
from biograd.learner.int_inference import IntLayer, IntNetwork


def int_layer(q: FixedLayer) -> IntLayer:
    """The kernel's form of one exported layer: halved mantissas as int8, transposed."""
    m = np.asarray(q.weights)
    if m.size and (np.any(m % 2) or np.abs(m).max() > 254):
        raise BioGradError("weight mantissas must be even and within -254..254 (the Loihi export's grid)")
    # Σ m s << e << 6 = Σ (m/2) s << (e + 7): the same integer with one byte per weight
    wt = np.ascontiguousarray((m // 2).T.astype(np.int8))
    bias = np.asarray(q.bias_mant, dtype=np.int64) << int(q.bias_exp)
    return IntLayer(wt, int(q.weight_exp) + 7, bias, int(q.vth) << 6, DECAY_UNITY - int(q.dv))


def cpu_network(fixed: Sequence[FixedLayer], timesteps: int) -> IntNetwork:
    """An :class:`IntNetwork` over the exported layers ``fixed`` (from :func:`quantize_network`)."""
    return IntNetwork([int_layer(q) for q in fixed], timesteps)


def quantized_cpu_network(params: NetworkParams, weight_exp: int | None = None) -> IntNetwork:
    """Quantise ``params`` as for the chip and build its CPU network."""
    return cpu_network(quantize_network(params, weight_exp), params.timesteps)
