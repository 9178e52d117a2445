"""Loihi fixed-point export of a BioGrad network, with the quantisation error per layer.

Loihi 2 / Lava ``fixed_pt`` arithmetic (``PyDenseModelBitAcc`` + ``PyLifResetModelBitAcc``):

    a(t)  = (Σ_j m_ij s_j(t)) << e              m_ij 8-bit mantissa, even, -256..254
    u(t)  = a(t-1) << 6                         du = 4095: the current has no memory
    v(t)  = sgn(v)(|v (4096 - dv)| >> 12) + u(t) + (bias_mant << bias_exp)
    s(t)  = [v(t) > vth << 6],  v ← 0 on a spike

With one weight LSB worth ``w_lsb`` (float), one voltage unit is worth
``1 / S`` with ``S = 2^(e+6) / w_lsb``; then ``vth = round(θ 2^e / w_lsb)``,
``bias_mant · 2^bias_exp = round(b S)``, ``dv = round(4096 (1 - λ))``.
Resetting v to 0 after a spike and BioGrad's ``λ v (1 - s_prev)`` give the same next
voltage, so the stock LIF expresses BioGrad's neuron exactly up to these roundings.

The quantiser API (one implementation of each rounding; the on-chip plan and any integer
inference kernel must use these so that they compute the same integers as Lava):

* :func:`quantize_weights` — float weights → even 8-bit mantissas on a given LSB grid;
* :func:`quantize_bias` — float bias in voltage units → (13-bit mantissa, exponent);
* :func:`decay_mantissa` — decay λ → Lava's 12-bit ``dv``;
* :func:`quantize_layer` / :func:`quantize_network` — a whole layer / network for inference
  (:class:`FixedLayer`, with the weight exponent chosen to keep vth small).

The integer formats themselves are named in :mod:`deploy.fixed_point`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from biograd.deploy.fixed_point import (
    ACT_SHIFT,
    BIAS_EXP_MAX,
    BIAS_MANT_MAX,
    BIAS_MANT_MIN,
    DECAY_UNITY,
    W_MANT_MAX,
)
from biograd.deploy.params import NetworkParams

VTH_TARGET_MAX = 4096  # keep vth << 6 far below the 24-bit voltage limit
WEIGHT_EXP_RANGE = (0, 7)
DU_NO_MEMORY = DECAY_UNITY - 1  # du = 4095: the current u is this step's input only


def quantize_weights(w: np.ndarray, lsb: float, lo: int = -W_MANT_MAX, hi: int = W_MANT_MAX) -> np.ndarray:
    """Even int32 mantissas ``2 round(w / 2 lsb)`` clipped to ``lo..hi`` (Lava drops odd bits)."""
    mant = 2 * np.round(np.asarray(w, dtype=np.float64) / (2 * lsb))
    return np.clip(mant, lo, hi).astype(np.int32)


def quantize_bias(target: np.ndarray) -> tuple[np.ndarray, int]:
    """``target`` (bias in voltage units, i.e. already × the layer scale) as
    ``(mant, exp)`` with ``mant << exp ≈ target``: the smallest exponent in 0..7 whose rounded
    mantissas all fit 13 bits (7 if none does; then the mantissas saturate). int64 mantissas."""
    target = np.asarray(target, dtype=np.float64)
    bias_exp = BIAS_EXP_MAX
    for be in range(0, BIAS_EXP_MAX + 1):
        if np.all(np.abs(np.round(target / 2**be)) <= BIAS_MANT_MAX):
            bias_exp = be
            break
    mant = np.clip(np.round(target / 2**bias_exp), BIAS_MANT_MIN, BIAS_MANT_MAX).astype(np.int64)
    return mant, bias_exp


def decay_mantissa(lam: float) -> int:
    """Lava's ``dv`` for a voltage decay λ: ``round(4096 (1 - λ))`` in 0..4095."""
    return int(np.clip(round(DECAY_UNITY * (1.0 - lam)), 0, DECAY_UNITY - 1))


@dataclass(frozen=True)
class FixedLayer:
    """One weight layer in Loihi integers (Dense ``weights``/``weight_exp`` + LIF params)."""

    weights: np.ndarray  # int32 (N_out, N_in), even, |m| <= 254
    weight_exp: int
    bias_mant: np.ndarray  # int32 (N_out,)
    bias_exp: int
    vth: int
    du: int
    dv: int
    w_lsb: float  # float value of one weight mantissa unit

    @property
    def scale(self) -> float:
        """Voltage units (after Lava's << 6) per float unit of BioGrad's v."""
        return 2.0 ** (self.weight_exp + ACT_SHIFT) / self.w_lsb

    def dequantized(self) -> tuple[np.ndarray, np.ndarray, float, float]:
        """(W, b, θ, λ) that this integer layer represents, in BioGrad's float units."""
        w = self.weights.astype(np.float64) * self.w_lsb
        b = self.bias_mant.astype(np.float64) * 2.0**self.bias_exp / self.scale
        return w, b, self.vth * float(1 << ACT_SHIFT) / self.scale, (DECAY_UNITY - self.dv) / DECAY_UNITY


def quantize_layer(w: np.ndarray, b: np.ndarray, lam: float, vth: float, weight_exp: int | None = None) -> FixedLayer:
    """Quantise one layer; ``weight_exp`` None picks the largest exponent keeping vth <= 4096."""
    w = np.asarray(w, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    wmax = float(np.max(np.abs(w))) if w.size else 0.0
    w_lsb = wmax / W_MANT_MAX if wmax > 0 else 1.0
    mant = quantize_weights(w, w_lsb)
    if weight_exp is None:
        weight_exp = WEIGHT_EXP_RANGE[0]
        for e in range(WEIGHT_EXP_RANGE[1], WEIGHT_EXP_RANGE[0] - 1, -1):
            if round(vth * 2**e / w_lsb) <= VTH_TARGET_MAX:
                weight_exp = e
                break
    vth_i = int(round(vth * 2**weight_exp / w_lsb))
    scale = 2.0 ** (weight_exp + ACT_SHIFT) / w_lsb
    bias_mant, bias_exp = quantize_bias(b * scale)
    return FixedLayer(
        mant,
        int(weight_exp),
        bias_mant.astype(np.int32),
        int(bias_exp),
        max(vth_i, 1),
        DU_NO_MEMORY,
        decay_mantissa(lam),
        w_lsb,
    )


def quantize_network(params: NetworkParams, weight_exp: int | None = None) -> list[FixedLayer]:
    """Every layer of ``params`` in Loihi integers."""
    return [
        quantize_layer(params.weights[l], params.biases[l], params.vdecay[l], params.vth[l], weight_exp)
        for l in range(params.n_layers)
    ]


def quantization_report(params: NetworkParams, layers: list[FixedLayer]) -> list[dict]:
    """Per layer: relative RMS and max errors of W and b, threshold and decay errors."""
    rows = []
    for l, q in enumerate(layers):
        w, b, th, lam = q.dequantized()
        w0, b0 = params.weights[l], params.biases[l]
        rel = lambda err, ref: float(np.linalg.norm(err) / max(np.linalg.norm(ref), 1e-300))  # noqa: E731
        rows.append(
            {
                "layer": l,
                "shape": list(w0.shape),
                "weight_exp": q.weight_exp,
                "w_lsb": q.w_lsb,
                "weight_rel_rms": rel(w - w0, w0),
                "weight_max_abs": float(np.max(np.abs(w - w0))),
                "bias_exp": q.bias_exp,
                "bias_rel_rms": rel(b - b0, b0),
                "vth": q.vth,
                "vth_rel": abs(th - params.vth[l]) / params.vth[l],
                "dv": q.dv,
                "decay_abs": abs(lam - params.vdecay[l]),
            }
        )
    return rows


def format_report(rows: list[dict]) -> str:
    """The report as an aligned text table."""
    head = (
        f"{'layer':>5} {'shape':>12} {'w_exp':>5} {'W rel rms':>10} {'W max abs':>10} {'b_exp':>5} "
        f"{'b rel rms':>10} {'vth':>6} {'vth rel':>9} {'dv':>5} {'λ err':>9}"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"{r['layer']:>5} {'x'.join(map(str, r['shape'])):>12} {r['weight_exp']:>5} "
            f"{r['weight_rel_rms']:>10.3e} {r['weight_max_abs']:>10.3e} {r['bias_exp']:>5} "
            f"{r['bias_rel_rms']:>10.3e} {r['vth']:>6} {r['vth_rel']:>9.2e} {r['dv']:>5} "
            f"{r['decay_abs']:>9.2e}"
        )
    return "\n".join(lines)
