"""The on-chip learning plan: a float BioGrad network turned into Loihi integers and rule constants.

:func:`plan_onchip` quantises weights, biases, thresholds, the ψ window and the feedback
matrices, and picks each layer's learning-rule scaling factor ``m 2^k`` closest to the float
learning rate asked for. :class:`OnChipPlan` is what both the Lava graph
(:mod:`deploy.lava_graph`) and the integer emulator (:mod:`deploy.emulator`) run; the mapping
and the schedule are described in :mod:`deploy.onchip`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from biograd.core.errors import ConfigError
from biograd.deploy.fixed_point import (
    ACT_SHIFT,
    DELTA_SHIFT,
    EXP_TABLE_ONE,
    SCALE_EXP_MAX,
    SCALE_EXP_MIN,
    SCALE_MANT_MAX,
    SHIFT_TAG_Y,
    VTH_BITS,
    W_MANT_MAX,
    W_MANT_MIN,
)
from biograd.deploy.params import NetworkParams
from biograd.deploy.quantize import decay_mantissa, quantize_bias, quantize_weights

#: third-factor units per unit of δ: hidden layers see δ = B e, an order smaller than the
#: output's e, so they get the larger scale (measured in docs/deploy.md)
DELTA_SCALE_HIDDEN = 640.0
DELTA_SCALE_OUTPUT = 64.0


def default_delta_scale(n_layers: int) -> tuple[float, ...]:
    """``deploy.delta_scale`` for a network of ``n_layers`` weight layers: hidden 640, output 64."""
    return (DELTA_SCALE_HIDDEN,) * (n_layers - 1) + (DELTA_SCALE_OUTPUT,)


@dataclass(frozen=True)
class OnChipLayer:
    weights: np.ndarray  # int32 (N_out, N_in), even at export, -256..254
    bias_mant: np.ndarray  # int64 (N_out,), frozen
    bias_exp: int
    vth: int
    dv: int
    win: int
    feedback: np.ndarray  # int32 (N_out, n_out): B_l mantissas, identity for the output layer
    fb_lsb: float
    delta_mult: int
    dw_mant: int
    dw_exp: int
    lr: float  # the float learning rate these integers realise

    @property
    def dw(self) -> str:
        m, k = self.dw_mant, self.dw_exp
        return f"-{m}*2^{k}*u0*t*y2 + {m}*2^{k}*u0*t*y3"


@dataclass(frozen=True)
class OnChipPlan:
    """Integer network and learning-rule constants for on-chip learning."""

    layers: tuple[OnChipLayer, ...]
    timesteps: int
    error_start: int
    w_lsb: float
    impulse: int
    tau: int
    rng_seed: int
    exp_table: np.ndarray = field(repr=False)

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def period(self) -> int:
        return self.timesteps + self.n_layers + 1

    @property
    def rho(self) -> float:
        return float(np.exp(-1.0 / float(self.tau)))

    @property
    def dt(self) -> str:
        return "u0*x1*y1 - 2^1*x0*y1 - 2^-1*u0*t*y3"

    def layer_seed(self, l: int) -> int:
        return self.rng_seed + 4 * l

    def learning_rule(self, l: int):
        from lava.magma.core.learning.learning_rule import Loihi3FLearningRule

        return Loihi3FLearningRule(
            dw=self.layers[l].dw,
            dt=self.dt,
            x1_impulse=self.impulse,
            x1_tau=self.tau,
            t_epoch=1,
            rng_seed=self.layer_seed(l),
        )


def _fit_lr(target: float, unit: float) -> tuple[int, int, float]:
    """(m, k) with m 2^k unit closest to target, m in 1..7, k >= -7 (Loihi scaling factor)."""
    best = None
    for k in range(SCALE_EXP_MIN, SCALE_EXP_MAX + 1):
        for m in range(1, SCALE_MANT_MAX + 1):
            err = abs(math.log(m * 2.0**k * unit / target))
            if best is None or err < best[0]:
                best = (err, m, k)
    _, m, k = best
    return m, k, m * 2.0**k * unit


def plan_onchip(
    params: NetworkParams,
    lr: float,
    weight_frac_bits: int = 11,
    impulse: int = 16,
    tau: int = 1,
    delta_scale: tuple[float, ...] = (),
    rng_seed: int = 0,
) -> OnChipPlan:
    """Quantise ``params`` for on-chip learning with float learning rate ``lr`` (per sample).

    ``delta_scale``: one value for every layer, one per weight layer, or empty for
    :func:`default_delta_scale` of the network's depth.
    """
    L = params.n_layers
    delta_scale = tuple(delta_scale) or default_delta_scale(L)
    if len(delta_scale) not in (1, L):
        raise ConfigError(
            f"deploy.delta_scale = {list(delta_scale)!r}: give 1 value or {L} (one per weight layer), "
            "or [] for the default of this depth"
        )
    if not 8 <= impulse <= 64 or impulse % 8:
        raise ConfigError(
            f"deploy.trace_impulse = {impulse}: must be a multiple of 8 in 8..64 "
            "(the tag term 2 x0 y1 takes exactly one impulse back out)"
        )
    w_lsb = 2.0**-weight_frac_bits
    T, K = params.timesteps, params.timesteps - params.error_start
    rho = float(np.exp(-1.0 / tau))
    n_out = params.layer_sizes[-1]
    # one voltage unit per float unit of v: weight LSB w_lsb at weight_exp 0, then << ACT_SHIFT
    scale = (1 << ACT_SHIFT) / w_lsb
    layers = []
    for l in range(L):
        mant = quantize_weights(params.weights[l], w_lsb, lo=W_MANT_MIN)
        bias_mant, bias_exp = quantize_bias(params.biases[l] * scale)
        vth = int(round(params.vth[l] / w_lsb))
        if not 0 < vth < 2**VTH_BITS:
            raise ConfigError(
                f"layer {l}: threshold {params.vth[l]} gives vth = {vth} at weight_frac_bits="
                f"{weight_frac_bits}; it must fit {VTH_BITS} bits"
            )
        win = int(round(params.grad_win[l] * scale))
        if l == L - 1:
            fb = np.eye(n_out, dtype=np.int32)
            fb_lsb = 1.0
        else:
            b = params.feedback[l]
            fb_lsb = float(np.max(np.abs(b))) / W_MANT_MAX or 1.0
            fb = quantize_weights(b, fb_lsb, lo=W_MANT_MIN)
        s_delta = delta_scale[0] if len(delta_scale) == 1 else delta_scale[l]
        delta_mult = int(round(s_delta * fb_lsb / K * 2**DELTA_SHIFT))
        # Δw_float = -w_lsb · m 2^k / 32 · tag · δ S_δ, tag ≈ ρ I E, ψ's amplitude a folded in.
        unit = w_lsb / 2**SHIFT_TAG_Y * s_delta * rho * impulse * params.grad_amp[l]
        m, k, realised = _fit_lr(lr, unit)
        layers.append(
            OnChipLayer(
                mant,
                bias_mant.astype(np.int64),
                bias_exp,
                vth,
                decay_mantissa(params.vdecay[l]),
                win,
                fb,
                fb_lsb,
                delta_mult,
                m,
                k,
                realised,
            )
        )
    table = np.array([int(round(EXP_TABLE_ONE * math.exp(-n))) for n in range(T + 1)], dtype=np.int64)
    return OnChipPlan(tuple(layers), T, params.error_start, w_lsb, impulse, tau, rng_seed, table)
