"""Loihi 2 / Lava ``fixed_pt`` integer formats, named once.

Every bit width, shift and limit of the integer network lives here. The Lava process models
(``deploy/procs/*/models.py``), the Numba emulator (:mod:`deploy.emulator`), the plan
(:mod:`deploy.plan`), the inference export (:mod:`deploy.quantize`) and the NumPy oracle
(:func:`deploy.inference.reference_counts`) all read these names, so the integers they
compute cannot drift apart.

Neuron (Lava ``PyLifModelBitAcc`` arithmetic, also the BioGradNeuron's soma)::

    v(t) = sgn(v)(|v (DECAY_UNITY - dv)| >> DECAY_SHIFT) + (a << ACT_SHIFT) + (bias_mant << bias_exp)
    v    = clip(v, -V_MAX, V_MAX)          (24-bit signed voltage)
    s(t) = [v > vth << ACT_SHIFT]

Learning engine (``LearningConnectionModelBitApproximate``): synaptic variables are held
with LEARN_FRAC_SHIFT fractional bits in a 16-bit accumulator (ACC_MIN..ACC_MAX) and
stochastically rounded back; weights are 9-bit signed (W_LEARN_MIN..W_LEARN_MAX), tags
clip at TAG_MIN..TAG_MAX, traces are 7-bit (TRACE_MAX).
"""

from __future__ import annotations

# --- neuron -----------------------------------------------------------------------------
DECAY_SHIFT = 12  # dv and du are 12-bit fractions of one
DECAY_UNITY = 1 << DECAY_SHIFT  # 4096: dv = 0 keeps all of v
ACT_SHIFT = 6  # the dendritic sum enters the voltage << 6
V_BITS = 24  # signed voltage register
V_MAX = (1 << (V_BITS - 1)) - 1  # 8388607
VTH_BITS = 17  # threshold mantissa (compared after << ACT_SHIFT)

# --- synapses (Dense) -------------------------------------------------------------------
W_MANT_MAX = 254  # mixed-sign 8-bit weight mantissa; Lava truncates odd values to even
W_MANT_MIN = -256  # the on-chip learning grid reaches -256 (9-bit signed, even at export)
BIAS_MANT_MAX = 4095  # 13-bit signed bias mantissa: -4096..4095
BIAS_MANT_MIN = -BIAS_MANT_MAX - 1
BIAS_EXP_MAX = 7

# --- learning engine (Loihi3FLearningRule, bit-approximate model) -----------------------
# Widths as lava.magma.core.learning.constants names them.
W_TRACE = 7  # x1, x2, y1, y2, y3
W_TAG_S = 9  # tag (and weights) as signed factors
W_S_MANT = 4  # mantissa of a product's scaling factor
W_ACC_U = 15  # unsigned width of the accumulator of synaptic changes
LEARN_FRAC_SHIFT = W_ACC_U - 8  # 7: an 8-bit synaptic variable sits << 7 in the accumulator
ACC_MIN, ACC_MAX = -(1 << W_ACC_U) - 1, (1 << W_ACC_U) - 1  # -32769..32767
# a product of factors is shifted right by (sum of factor widths + W_S_MANT - W_ACC_U)
SHIFT_TAG_Y = W_TAG_S + W_TRACE + W_S_MANT - W_ACC_U  # 5: t · y2, t · y3
SHIFT_TRACE_Y = 2 * W_TRACE + W_S_MANT - W_ACC_U  # 3: x1 · y1
TRACE_MAX = (1 << W_TRACE) - 1  # 127
TRACE_MIN = -(1 << W_TRACE)  # -128 (factor saturation)
TAG_FACTOR_MIN, TAG_FACTOR_MAX = -(1 << W_TAG_S), (1 << W_TAG_S) - 1  # -512..511
W_LEARN_MIN, W_LEARN_MAX = -256, 255  # learned weights, 9-bit signed
TAG_MIN, TAG_MAX = -257, 255  # the tag variable's clip
Y_TAU = 65535  # Loihi3FLearningRule's fixed y-trace time constant
CONN_RANDOM_SEED = 2  # lava.magma.core.learning.random.ConnVarRandom's fixed default seed
# a rule's scaling factor m 2^k: m in 1..7 (4-bit signed mantissa); Lava shifts the product
# left by k + LEARN_FRAC_SHIFT, which must not be negative
SCALE_MANT_MAX = 7
SCALE_EXP_MIN, SCALE_EXP_MAX = -LEARN_FRAC_SHIFT, 8

# --- BioGrad on-chip rule (our choices, see deploy/onchip.py) ---------------------------
PSI_Y = 8  # y1 on the ψ window: the tag adds x1 y1 >> 3 = x1
FLAG_Y = 64  # y3 at the end step (also the zero point of y2)
THIRD_FACTOR_MAX = 63  # y2 = FLAG_Y + clip(q, -63, 63)
DELTA_SHIFT = 16  # q = (d · delta_mult + 2^15) >> 16
ERR_UNIT = 256  # the error unit's 1.0 (softmax in units of 1/256)
EXP_TABLE_ONE = 65536  # exp(-n) table in units of 2^-16
