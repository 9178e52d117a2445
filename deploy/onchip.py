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

:class:`OnChipEmulator` reproduces the Lava ``fixed_pt`` simulation integer for integer
(including Lava's random streams) in Numba; :class:`LavaOnChip` is the Lava graph.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from biograd.core.errors import BioGradError, ConfigError
from biograd.deploy.params import NetworkParams

TRACE_MAX = 127
PSI_Y = 8
FLAG_Y = 64
Y_TAU = 65535  # Loihi3FLearningRule's fixed y-trace time constant
DELTA_SHIFT = 16
ERR_UNIT = 256
CONN_RANDOM_SEED = 2  # lava.magma.core.learning.random.ConnVarRandom's fixed default seed


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
    for k in range(-7, 9):
        for m in range(1, 8):
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
    delta_scale: tuple[float, ...] = (640.0, 64.0),
    rng_seed: int = 0,
) -> OnChipPlan:
    """Quantise ``params`` for on-chip learning with float learning rate ``lr`` (per sample)."""
    from biograd.deploy.quantize import quantize_layer

    L = params.n_layers
    if len(delta_scale) not in (1, L):
        raise ConfigError(f"deploy.delta_scale = {delta_scale!r}: give 1 value or {L}")
    if not 8 <= impulse <= 64 or impulse % 8:
        raise ConfigError(
            f"deploy.trace_impulse = {impulse}: must be a multiple of 8 in 8..64 "
            "(the tag term 2 x0 y1 takes exactly one impulse back out)"
        )
    w_lsb = 2.0**-weight_frac_bits
    T, K = params.timesteps, params.timesteps - params.error_start
    rho = float(np.exp(-1.0 / tau))
    n_out = params.layer_sizes[-1]
    layers = []
    for l in range(L):
        w = params.weights[l]
        mant = np.clip(2 * np.round(w / (2 * w_lsb)), -256, 254).astype(np.int32)
        q = quantize_layer(w, params.biases[l], params.vdecay[l], params.vth[l], weight_exp=0)
        scale = 64.0 / w_lsb
        bias_target = params.biases[l] * scale
        bias_exp = 0
        while bias_exp < 7 and np.any(np.abs(np.round(bias_target / 2**bias_exp)) > 4095):
            bias_exp += 1
        bias_mant = np.clip(np.round(bias_target / 2**bias_exp), -4096, 4095).astype(np.int64)
        vth = int(round(params.vth[l] / w_lsb))
        if not 0 < vth < 2**17:
            raise ConfigError(
                f"layer {l}: threshold {params.vth[l]} gives vth = {vth} at weight_frac_bits="
                f"{weight_frac_bits}; it must fit 17 bits"
            )
        win = int(round(params.grad_win[l] * scale))
        if l == L - 1:
            fb = np.eye(n_out, dtype=np.int32)
            fb_lsb = 1.0
        else:
            b = params.feedback[l]
            fb_lsb = float(np.max(np.abs(b))) / 254 or 1.0
            fb = np.clip(2 * np.round(b / (2 * fb_lsb)), -256, 254).astype(np.int32)
        s_delta = delta_scale[0] if len(delta_scale) == 1 else delta_scale[l]
        delta_mult = int(round(s_delta * fb_lsb / K * 2**DELTA_SHIFT))
        # Δw_float = -w_lsb · m 2^k / 32 · tag · δ S_δ, tag ≈ ρ I E, ψ's amplitude a folded in.
        unit = w_lsb / 32.0 * s_delta * rho * impulse * params.grad_amp[l]
        m, k, realised = _fit_lr(lr, unit)
        layers.append(OnChipLayer(mant, bias_mant, bias_exp, vth, q.dv, win, fb, fb_lsb, delta_mult, m, k, realised))
    table = np.array([int(round(65536 * math.exp(-n))) for n in range(T + 1)], dtype=np.int64)
    return OnChipPlan(tuple(layers), T, params.error_start, w_lsb, impulse, tau, rng_seed, table)


# --- Lava graph ------------------------------------------------------------------------


class LavaOnChip:
    """The on-chip learner as a Lava process graph (fixed_pt simulation, or a chip)."""

    def __init__(self, plan: OnChipPlan, rasters, labels, backend: str = "fixed_pt"):
        from lava.proc.dense.process import Dense, LearningDense
        from lava.proc.io.sink import RingBuffer as Sink
        from lava.proc.io.source import RingBuffer as Source

        from biograd.deploy.backend import run_config
        from biograd.deploy.inference import dense_input
        from biograd.deploy.procs.biograd_neuron.process import BioGradNeuron
        from biograd.deploy.procs.error_unit.process import ErrorUnit

        if backend == "floating_pt":
            raise ConfigError("on-chip learning runs in integers: use --backend fixed_pt or loihi2-hw")
        self.cfg = run_config(backend)
        self.plan = plan
        P, L = plan.period, plan.n_layers
        n_in = plan.layers[0].weights.shape[1]
        self.n_samples = len(rasters)
        self.steps_done = 0
        self.src = Source(data=dense_input(rasters, n_in, plan.timesteps, period=P).astype(np.int32))
        prev = self.src.s_out
        self.synapses, self.neurons = [], []
        for l, lay in enumerate(plan.layers):
            syn = LearningDense(
                weights=lay.weights.copy(), learning_rule=plan.learning_rule(l), num_message_bits=0, name=f"W{l}"
            )
            neu = BioGradNeuron(
                shape=(lay.weights.shape[0],),
                lag=l + 1,
                n_layers=L,
                timesteps=plan.timesteps,
                period=P,
                vth=lay.vth,
                dv=lay.dv,
                bias_mant=lay.bias_mant,
                bias_exp=lay.bias_exp,
                win=lay.win,
                psi_y=PSI_Y,
                delta_mult=lay.delta_mult,
                delta_shift=DELTA_SHIFT,
                flag_y=FLAG_Y,
                name=f"N{l}",
            )
            prev.connect(syn.s_in)
            syn.a_out.connect(neu.a_in)
            neu.s_out_bap.connect(syn.s_in_bap)
            neu.s_out_y1.connect(syn.s_in_y1)
            neu.s_out_y2.connect(syn.s_in_y2)
            neu.s_out_y3.connect(syn.s_in_y3)
            prev = neu.s_out
            self.synapses.append(syn)
            self.neurons.append(neu)
        n_out = plan.layers[-1].weights.shape[0]
        self.error = ErrorUnit(
            shape=(n_out,),
            labels=np.asarray(labels, dtype=np.int64),
            timesteps=plan.timesteps,
            error_start=plan.error_start,
            period=P,
            n_layers=L,
            exp_table=plan.exp_table,
        )
        prev.connect(self.error.s_in)
        self.feedback = []
        for l, (lay, neu) in enumerate(zip(plan.layers, self.neurons)):
            fb = Dense(weights=lay.feedback.copy(), num_message_bits=8, name=f"B{l}")
            self.error.z_out.connect(fb.s_in)
            fb.a_out.connect(neu.a_err)
            self.feedback.append(fb)
        self.total_steps = self.n_samples * P
        self.sink = Sink(shape=(n_out,), buffer=self.total_steps)
        prev.connect(self.sink.a_in)

    def run(self, steps: int) -> None:
        from lava.magma.core.run_conditions import RunSteps

        if self.steps_done + steps > self.total_steps:
            raise BioGradError(f"only {self.total_steps - self.steps_done} steps of input remain")
        self.src.run(condition=RunSteps(num_steps=steps), run_cfg=self.cfg)
        self.steps_done += steps

    def state(self) -> dict[str, list[np.ndarray]]:
        """Integer state: weights, tags, x1 traces, membrane voltages, dendrites."""
        return {
            "weights": [np.asarray(s.weights.get()).astype(np.int64) for s in self.synapses],
            "tags": [np.asarray(s.tag_1.get()).astype(np.int64) for s in self.synapses],
            "x1": [np.asarray(s.x1.get()).astype(np.int64) for s in self.synapses],
            "v": [np.asarray(n.v.get()).astype(np.int64) for n in self.neurons],
            "d": [np.asarray(n.d.get()).astype(np.int64) for n in self.neurons],
        }

    def output_counts(self) -> np.ndarray:
        """(n_samples, n_out) output spike counts of the samples run so far."""
        out = np.asarray(self.sink.data.get())
        P, L, T = self.plan.period, self.plan.n_layers, self.plan.timesteps
        n = self.steps_done // P
        return np.array(
            [(out[:, k * P + L : k * P + L + T] != 0).sum(axis=1) for k in range(n)], dtype=np.int64
        ).reshape(n, -1)

    def stop(self) -> None:
        self.src.stop()

    def run_all(self) -> tuple[dict[str, list[np.ndarray]], np.ndarray]:
        """Run every remaining step, then stop Lava: (integer state, output counts per sample)."""
        try:
            self.run(self.total_steps - self.steps_done)
            return self.state(), self.output_counts()
        finally:
            self.stop()


# --- Numba emulation -------------------------------------------------------------------


@njit(cache=True)
def _neuron_step(phase, lag, T, L, a, e, v, s_prev, d, bias, vth, dv, win, delta_mult, s, y1, y2, y3):
    """One Lava step of BioGradNeuron (same integers as its fixed_pt model)."""
    n = v.shape[0]
    t = phase - lag
    th = vth << 6
    for i in range(n):
        d[i] += e[i]
        s[i] = 0
        y1[i] = 0
        y2[i] = 0
        y3[i] = 0
    if 0 <= t < T:
        for i in range(n):
            if t == 0:
                v[i] = 0
                s_prev[i] = 0
            dec = v[i] * (4096 - dv)
            if dec >= 0:
                dec = dec >> 12
            else:
                dec = -((-dec) >> 12)
            if s_prev[i] != 0:
                dec = 0
            vi = dec + (a[i] << 6) + bias[i]
            if vi > 8388607:
                vi = 8388607
            elif vi < -8388607:
                vi = -8388607
            v[i] = vi
            s[i] = 1 if vi > th else 0
            if abs(vi - th) < win:
                y1[i] = 8
            s_prev[i] = s[i]
    if phase == T + L:
        half = 1 << 15
        for i in range(n):
            q = (d[i] * delta_mult + half) >> 16
            if q < -63:
                q = -63
            elif q > 63:
                q = 63
            y2[i] = 64 + q
            y3[i] = 64
            d[i] = 0


@njit(cache=True)
def _error_step(phase, T, te, L, label, s, counts, apos, aneg, zpos, zneg, table, z):
    n = counts.shape[0]
    t = phase - L
    for i in range(n):
        z[i] = 0
    if 0 <= t < T:
        if t == 0:
            for i in range(n):
                counts[i] = 0
                apos[i] = 0
                aneg[i] = 0
                zpos[i] = 0
                zneg[i] = 0
        cmax = 0
        for i in range(n):
            counts[i] += 1 if s[i] != 0 else 0
            if counts[i] > cmax:
                cmax = counts[i]
        if t >= te and label >= 0:
            tot = 0
            for i in range(n):
                tot += table[cmax - counts[i]]
            for i in range(n):
                e = (table[cmax - counts[i]] * 256) // tot
                if i == label:
                    e -= 256
                apos[i] = apos[i] - zpos[i] * 256 + e
                aneg[i] = aneg[i] - zneg[i] * 256 - e
                zpos[i] = 1 if apos[i] > 256 else 0
                zneg[i] = 1 if aneg[i] > 256 else 0
                z[i] = zpos[i] - zneg[i]


@njit(cache=True)
def _dense_step(w, s_pre, abuf):
    """a_buff = W s (binary s), weight_exp 0."""
    n_out, n_in = w.shape
    for i in range(n_out):
        abuf[i] = 0
    for j in range(n_in):
        if s_pre[j] != 0:
            for i in range(n_out):
                abuf[i] += w[i, j]


@njit(cache=True)
def _graded_step(b, z, out):
    n_out, n_in = b.shape
    for i in range(n_out):
        acc = 0
        for j in range(n_in):
            acc += b[i, j] * z[j]
        out[i] = acc


@njit(cache=True, inline="always")
def _decay(val_in, rho, r):
    """Lava's _decay_trace: floor(ρ y) plus one with probability frac(ρ y), one random per step."""
    val = rho * val_in
    fl = math.floor(val)
    return int(fl) + (1 if r < val - fl else 0)


@njit(cache=True)
def _learn_step(w, tag, x1, s_pre, y1, y2, y3, rho, rho_y, impulse, r_trace, r_ytrace, r_conn, dw_mant, dw_sexp):
    """One learning epoch of Lava's LearningConnectionModelBitApproximate for this rule."""
    n_out, n_in = w.shape
    active = np.empty(n_in, dtype=np.int64)
    n_act = 0
    for j in range(n_in):
        xj = _decay(x1[j], rho, r_trace)
        if s_pre[j] != 0:
            xj += impulse
        xj = _clip(xj, 0, 127)
        x1[j] = xj
        if xj != 0:
            active[n_act] = j
            n_act += 1
    for i in range(n_out):
        if y1[i] == 0 and y2[i] == 0 and y3[i] == 0:
            continue
        yy1 = _clip(_decay(y1[i], rho_y, r_ytrace), -128, 127)
        yy2 = _clip(_decay(y2[i], rho_y, r_ytrace), -128, 127)
        yy3 = _clip(_decay(y3[i], rho_y, r_ytrace), -128, 127)
        if yy2 == 0 and yy3 == 0:
            # only the tag's x1 y1 terms are live, and they vanish where x1 = 0 (then s = 0 too):
            # skipping those synapses changes nothing, since rounding an exact value is exact
            for a in range(n_act):
                _synapse(w, tag, x1, s_pre, i, active[a], yy1, yy2, yy3, r_conn, dw_mant, dw_sexp)
        else:
            for j in range(n_in):
                if tag[i, j] != 0 or x1[j] != 0:
                    _synapse(w, tag, x1, s_pre, i, j, yy1, yy2, yy3, r_conn, dw_mant, dw_sexp)


@njit(cache=True, inline="always")
def _synapse(w, tag, x1, s_pre, i, j, yy1, yy2, yy3, r_conn, dw_mant, dw_sexp):
    """Lava's LearningRuleApplierBitApprox for dw then dt, products in the rule's order."""
    t_old = tag[i, j]
    tt = _clip(t_old, -512, 511)
    wacc = w[i, j] << 7
    p = ((tt * yy2 * -dw_mant) >> 5) << dw_sexp
    wacc = _clip(wacc + _clip(p, -32769, 32767), -32769, 32767)
    p = ((tt * yy3 * dw_mant) >> 5) << dw_sexp
    wacc = _clip(wacc + _clip(p, -32769, 32767), -32769, 32767)
    acc = t_old << 7
    p = ((_clip(x1[j], -128, 127) * yy1) >> 3) << 7
    acc = _clip(acc + _clip(p, -32769, 32767), -32769, 32767)
    if s_pre[j] != 0:
        p = (-yy1) << 8
        acc = _clip(acc + _clip(p, -32769, 32767), -32769, 32767)
    p = ((-(tt * yy3)) >> 5) << 6
    acc = _clip(acc + _clip(p, -32769, 32767), -32769, 32767)
    w[i, j] = _clip(_sround(wacc, r_conn), -256, 255)
    tag[i, j] = _clip(_sround(acc, r_conn), -257, 255)


@njit(cache=True, inline="always")
def _clip(x, lo, hi):
    return lo if x < lo else (hi if x > hi else x)


@njit(cache=True, inline="always")
def _sround(acc, r):
    """Lava's stochastic rounding of a 16-bit accumulator back to the variable (>> 7)."""
    q = acc / 128.0
    fl = math.floor(q)
    out = int(fl) + (1 if r < q - fl else 0)
    return (out * 128) >> 7


class OnChipEmulator:
    """Integer-exact Numba emulation of :class:`LavaOnChip` (Lava fixed_pt), step by step."""

    def __init__(self, plan: OnChipPlan, total_steps: int):
        self.plan = plan
        self.w = [lay.weights.astype(np.int64).copy() for lay in plan.layers]
        self.tag = [np.zeros_like(w) for w in self.w]
        self.x1 = [np.zeros(w.shape[1], dtype=np.int64) for w in self.w]
        self.v = [np.zeros(w.shape[0], dtype=np.int64) for w in self.w]
        self.s_prev = [np.zeros(w.shape[0], dtype=np.int64) for w in self.w]
        self.d = [np.zeros(w.shape[0], dtype=np.int64) for w in self.w]
        self.abuf = [np.zeros(w.shape[0], dtype=np.int64) for w in self.w]
        self.fbuf = [np.zeros(w.shape[0], dtype=np.int64) for w in self.w]
        self.bias = [lay.bias_mant.astype(np.int64) << lay.bias_exp for lay in plan.layers]
        self.fb = [lay.feedback.astype(np.int64) for lay in plan.layers]
        n_out = self.w[-1].shape[0]
        self.err = [np.zeros(n_out, dtype=np.int64) for _ in range(5)]
        self.s = [np.zeros(w.shape[0], dtype=np.int64) for w in self.w]
        self.y = [[np.zeros(w.shape[0], dtype=np.int64) for _ in range(3)] for w in self.w]
        self.z = np.zeros(n_out, dtype=np.int64)
        self.time_step = 0
        self.out_counts = np.zeros(n_out, dtype=np.int64)
        self._randoms(total_steps)
        self._rho = plan.rho
        self._rho_y = float(np.exp(-1.0 / Y_TAU))

    def _randoms(self, total_steps: int) -> None:
        """Lava's random streams: per LearningDense a TraceRandom (advanced twice per step),
        and the ConnVarRandom (seed 2, advanced once per learning epoch)."""
        n = total_steps + 1
        self.r_trace = [
            np.random.default_rng(self.plan.layer_seed(l)).random(2 * n + 1)[0::2].copy()
            for l in range(self.plan.n_layers)
        ]
        self.r_ytrace = [
            np.random.default_rng(self.plan.layer_seed(l) + 2).random(2 * n + 1)[0::2].copy()
            for l in range(self.plan.n_layers)
        ]
        self.r_conn = np.random.default_rng(CONN_RANDOM_SEED).random(n)

    def step(self, s_in: np.ndarray, labels: np.ndarray) -> None:
        """One Lava time step with input spikes ``s_in`` (int64, N_in)."""
        plan = self.plan
        self.time_step += 1
        tau = self.time_step
        P, L, T = plan.period, plan.n_layers, plan.timesteps
        phase = (tau - 1) % P
        k = (tau - 1) // P
        for l, lay in enumerate(plan.layers):
            y1, y2, y3 = self.y[l]
            _neuron_step(
                phase,
                l + 1,
                T,
                L,
                self.abuf[l],
                self.fbuf[l],
                self.v[l],
                self.s_prev[l],
                self.d[l],
                self.bias[l],
                lay.vth,
                lay.dv,
                lay.win,
                lay.delta_mult,
                self.s[l],
                y1,
                y2,
                y3,
            )
        label = int(labels[k]) if k < len(labels) else -1
        cnt, apos, aneg, zpos, zneg = self.err
        _error_step(
            phase, T, plan.error_start, L, label, self.s[-1], cnt, apos, aneg, zpos, zneg, plan.exp_table, self.z
        )
        pre = [s_in] + self.s[:-1]
        for l in range(L):
            _dense_step(self.w[l], pre[l], self.abuf[l])
            _graded_step(self.fb[l], self.z, self.fbuf[l])
        for l, lay in enumerate(plan.layers):
            y1, y2, y3 = self.y[l]
            _learn_step(
                self.w[l],
                self.tag[l],
                self.x1[l],
                pre[l],
                y1,
                y2,
                y3,
                self._rho,
                self._rho_y,
                plan.impulse,
                self.r_trace[l][tau],
                self.r_ytrace[l][tau],
                self.r_conn[tau],
                lay.dw_mant,
                lay.dw_exp + 7,
            )
        if 0 <= phase - L < T:
            self.out_counts += self.s[-1]

    def run_sample(self, dense_in: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """All ``period`` steps of one sample (dense_in: (T, N_in) 0/1); returns its output counts."""
        P, T = self.plan.period, self.plan.timesteps
        zero = np.zeros(dense_in.shape[1], dtype=np.int64)
        self.out_counts = np.zeros_like(self.out_counts)
        for phase in range(P):
            self.step(dense_in[phase].astype(np.int64) if phase < T else zero, labels)
        return self.out_counts.copy()

    def infer_sample(self, dense_in: np.ndarray) -> np.ndarray:
        """Output counts of one sample with the current integer weights, learning off
        (fresh neuron state; the learning state and random streams are not touched)."""
        plan = self.plan
        L, T = plan.n_layers, plan.timesteps
        shapes = [w.shape[0] for w in self.w]
        v = [np.zeros(n, dtype=np.int64) for n in shapes]
        sp = [np.zeros(n, dtype=np.int64) for n in shapes]
        d = [np.zeros(n, dtype=np.int64) for n in shapes]
        ab = [np.zeros(n, dtype=np.int64) for n in shapes]
        zero_err = [np.zeros(n, dtype=np.int64) for n in shapes]
        s = [np.zeros(n, dtype=np.int64) for n in shapes]
        ys = [[np.zeros(n, dtype=np.int64) for _ in range(3)] for n in shapes]
        zero_in = np.zeros(dense_in.shape[1], dtype=np.int64)
        counts = np.zeros(shapes[-1], dtype=np.int64)
        for phase in range(T + L):
            for l, lay in enumerate(plan.layers):
                _neuron_step(
                    phase,
                    l + 1,
                    T,
                    L,
                    ab[l],
                    zero_err[l],
                    v[l],
                    sp[l],
                    d[l],
                    self.bias[l],
                    lay.vth,
                    lay.dv,
                    lay.win,
                    0,
                    s[l],
                    ys[l][0],
                    ys[l][1],
                    ys[l][2],
                )
            if 0 <= phase - L < T:
                counts += s[-1]
            pre = [dense_in[phase].astype(np.int64) if phase < T else zero_in] + s[:-1]
            for l in range(L):
                _dense_step(self.w[l], pre[l], ab[l])
        return counts

    def state(self) -> dict[str, list[np.ndarray]]:
        return {
            "weights": [w.copy() for w in self.w],
            "tags": [t.copy() for t in self.tag],
            "x1": [x.copy() for x in self.x1],
            "v": [v.copy() for v in self.v],
            "d": [d.copy() for d in self.d],
        }
