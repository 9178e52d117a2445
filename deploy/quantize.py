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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from biograd.deploy.params import NetworkParams

W_MANT_MAX = 254  # mixed-sign 8-bit mantissa; Lava truncates odd values to even
BIAS_MANT_MAX = 4095  # 13-bit signed bias mantissa
BIAS_EXP_MAX = 7
VTH_TARGET_MAX = 4096  # keep vth << 6 far below the 24-bit voltage limit
WEIGHT_EXP_RANGE = (0, 7)
DECAY_UNITY = 4096


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
        return 2.0 ** (self.weight_exp + 6) / self.w_lsb

    def dequantized(self) -> tuple[np.ndarray, np.ndarray, float, float]:
        """(W, b, θ, λ) that this integer layer represents, in BioGrad's float units."""
        w = self.weights.astype(np.float64) * self.w_lsb
        b = self.bias_mant.astype(np.float64) * 2.0**self.bias_exp / self.scale
        return w, b, self.vth * 64.0 / self.scale, (DECAY_UNITY - self.dv) / DECAY_UNITY


def quantize_layer(w: np.ndarray, b: np.ndarray, lam: float, vth: float, weight_exp: int | None = None) -> FixedLayer:
    """Quantise one layer; ``weight_exp`` None picks the largest exponent keeping vth <= 4096."""
    w = np.asarray(w, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    wmax = float(np.max(np.abs(w))) if w.size else 0.0
    w_lsb = wmax / W_MANT_MAX if wmax > 0 else 1.0
    mant = 2 * np.round(w / (2 * w_lsb))
    mant = np.clip(mant, -W_MANT_MAX, W_MANT_MAX).astype(np.int32)
    if weight_exp is None:
        weight_exp = WEIGHT_EXP_RANGE[0]
        for e in range(WEIGHT_EXP_RANGE[1], WEIGHT_EXP_RANGE[0] - 1, -1):
            if round(vth * 2**e / w_lsb) <= VTH_TARGET_MAX:
                weight_exp = e
                break
    vth_i = int(round(vth * 2**weight_exp / w_lsb))
    scale = 2.0 ** (weight_exp + 6) / w_lsb
    target = b * scale
    bias_exp = BIAS_EXP_MAX
    for be in range(0, BIAS_EXP_MAX + 1):
        if np.all(np.abs(np.round(target / 2**be)) <= BIAS_MANT_MAX):
            bias_exp = be
            break
    bias_mant = np.clip(np.round(target / 2**bias_exp), -BIAS_MANT_MAX - 1, BIAS_MANT_MAX).astype(np.int32)
    dv = int(np.clip(round(DECAY_UNITY * (1.0 - lam)), 0, DECAY_UNITY - 1))
    return FixedLayer(mant, int(weight_exp), bias_mant, int(bias_exp), max(vth_i, 1), 4095, dv, w_lsb)


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
