"""On-chip continual learning: BioGrad mapped onto Loihi's three-factor learning engine.

Mapping (per weight layer, a Lava ``LearningDense`` with ``Loihi3FLearningRule``, t_epoch = 1)::

    pre trace   x1_j(t) = SR(ρ x1_j(t-1)) + I s_j(t)        ρ = e^{-1/τ}, τ integer, 7 bits
    post trace  y1_i(t) = 8 [|v_i(t) - θ| < w]                ψ from the BioGradNeuron
    tag         t_ij  += (x1_j y1_i >> 3) - 2 x0_j y1_i        = y1/8 · SR(ρ x1_j(t-1))
    third factor y2_i  = 64 + clip(round(δ_i S_δ), -63, 63), y3_i = 64   at the end step only
    weight      w_ij  += SR(-m 2^k (t_ij y2_i >> 5) + m 2^k (t_ij y3_i >> 5))   = -m 2^k t δq / 32
    tag reset   t_ij  -= ((t_ij y3_i) >> 5) · 2^-1               = t_ij exactly (y3 = 64)

y2 = y3 = 0 at every other step: Lava's 3F rule decays y traces stochastically with
tau 65535 (a nonzero y drops by one whenever that step's random number exceeds
1 - y/65535), and zero is the one value that decay leaves alone.

Every ``Dense`` delays by one step, so the post neuron at Lava step τ integrated the
pre spikes of τ-1 while ``x1`` already holds the spike of τ; the ``- 2 x0 y1`` term takes
this step's impulse back out, so the tag pairs ψ_i(t) with the pre trace of the same
sample step (times ρ, a constant folded into the learning rate).

Schedule of one sample (``period = T + L + 1`` Lava steps, L weight layers): input step t
at phase t; layer l (0 = first hidden) runs step t at phase t + l + 1; the ErrorUnit sees
output step t at phase t + L and its z⁺ - z⁻ reaches every neuron's error dendrite one
step later through a ``Dense`` (B_l for hidden layers, identity for the output); at phase
T + L every dendrite is complete and every neuron emits y2 (δ) and y3 (reset), so all
weights update and all tags clear in that step's learning phase, before the next
sample's first input is integrated.

Where this departs from the exact algorithm (docs/deploy.md measures each):
1. trace reset rule — the pre trace is per input (λ P + s), not per synapse with BioGrad's
   post-dependent reset R = P κ_i, κ = 1 - s_i - v_i ψ_i;
2. trace decay — ρ = e^{-1/τ} with integer τ (τ = 1: 0.368) instead of λ;
3. integer precision — 7-bit traces and third factor, 9-bit signed tags (saturating at 255) and
   weights (-256..255), integer softmax (1/256), floor before scaling, stochastic rounding
   of trace decay and weight updates;
4. biases are neuron parameters on Loihi, not synapses: frozen during on-chip learning;
5. no sleep phase: B stays as exported.

Modules: :mod:`deploy.plan` (:func:`plan_onchip`, the integers and rule constants),
:mod:`deploy.lava_graph` (:class:`LavaOnChip`, the Lava graph) and :mod:`deploy.emulator`
(:class:`OnChipEmulator`, which reproduces the Lava ``fixed_pt`` simulation integer for integer,
including Lava's random streams, in Numba). Widths and shifts: :mod:`deploy.fixed_point`.
This module re-exports the three for callers that want the whole on-chip path.
"""

from biograd.deploy.emulator import OnChipEmulator
from biograd.deploy.lava_graph import LavaOnChip
from biograd.deploy.plan import OnChipLayer, OnChipPlan, default_delta_scale, plan_onchip

__all__ = ["LavaOnChip", "OnChipEmulator", "OnChipLayer", "OnChipPlan", "default_delta_scale", "plan_onchip"]
