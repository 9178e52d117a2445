"""Deployment settings for Lava / Loihi."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from biograd.core.config import require


@dataclass(frozen=True)
class DeployConfig:
    """Where the network runs and how it learns on chip (see docs/deploy.md).

    ``backend``: Lava CPU simulation in ``floating_pt`` or Loihi ``fixed_pt`` integers, or a
    Loihi 2 chip (``loihi2-hw``, needs Intel's lava-loihi). The ``onchip_*`` / ``trace_*``
    keys set the integer learning rule of ``biograd deploy learn``.
    """

    backend: Literal["floating_pt", "fixed_pt", "loihi2-hw"] = "fixed_pt"
    weight_exp: int = -1  # inference export; -1 = largest exponent with vth <= 4096
    onchip_lr: float = 2e-4  # float learning rate per sample the integer rule approximates
    weight_frac_bits: int = 11  # on-chip weight LSB = 2^-weight_frac_bits
    trace_impulse: int = 16  # x1 impulse per pre spike (multiple of 8, <= 64)
    trace_tau: int = 1  # x1 decays by e^(-1/tau) per step (integer tau on Loihi)
    # third-factor units per unit of δ: one value, one per weight layer, or [] (default) for
    # 640 per hidden layer and 64 for the output (deploy.plan.default_delta_scale of the depth)
    delta_scale: tuple[float, ...] = ()
    rng_seed: int = 0  # Lava learning-engine trace random streams

    def __post_init__(self):
        require(
            self.weight_exp == -1 or 0 <= self.weight_exp <= 7,
            "deploy.weight_exp",
            self.weight_exp,
            "must be -1 (automatic) or 0..7",
        )
        require(self.onchip_lr > 0, "deploy.onchip_lr", self.onchip_lr, "must be > 0")
        require(4 <= self.weight_frac_bits <= 16, "deploy.weight_frac_bits", self.weight_frac_bits, "must be in 4..16")
        require(
            8 <= self.trace_impulse <= 64 and self.trace_impulse % 8 == 0,
            "deploy.trace_impulse",
            self.trace_impulse,
            "must be a multiple of 8 in 8..64",
        )
        require(1 <= self.trace_tau <= 255, "deploy.trace_tau", self.trace_tau, "must be in 1..255")
        require(
            all(0 < d <= 4096 for d in self.delta_scale),
            "deploy.delta_scale",
            self.delta_scale,
            "values must be in (0, 4096]",
        )
        require(self.rng_seed >= 0, "deploy.rng_seed", self.rng_seed, "must be >= 0")
