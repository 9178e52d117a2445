"""Integer-exact Numba emulation of the on-chip learner (:class:`deploy.lava_graph.LavaOnChip`
in Lava ``fixed_pt``), including Lava's random streams.

The kernels are pure functions over integer arrays, one per Lava process and step:
``_neuron_step`` (BioGradNeuron), ``_error_step`` (ErrorUnit), ``_dense_step`` /
``_graded_step`` (Dense), ``_learn_step`` / ``_synapse`` (the learning engine applying the
rule strings of :class:`deploy.plan.OnChipPlan`). Every width and shift comes from
:mod:`deploy.fixed_point`, as in the Lava process models.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from biograd.deploy.fixed_point import (
    ACC_MAX,
    ACC_MIN,
    ACT_SHIFT,
    CONN_RANDOM_SEED,
    DECAY_SHIFT,
    DECAY_UNITY,
    DELTA_SHIFT,
    ERR_UNIT,
    FLAG_Y,
    LEARN_FRAC_SHIFT,
    PSI_Y,
    SHIFT_TAG_Y,
    SHIFT_TRACE_Y,
    TAG_FACTOR_MAX,
    TAG_FACTOR_MIN,
    TAG_MAX,
    TAG_MIN,
    THIRD_FACTOR_MAX,
    TRACE_MAX,
    TRACE_MIN,
    V_MAX,
    W_LEARN_MAX,
    W_LEARN_MIN,
    Y_TAU,
)
from biograd.deploy.plan import OnChipPlan


@njit(cache=True)
def _neuron_step(phase, lag, T, L, a, e, v, s_prev, d, bias, vth, dv, win, delta_mult, s, y1, y2, y3):
    """One Lava step of BioGradNeuron (same integers as its fixed_pt model)."""
    n = v.shape[0]
    t = phase - lag
    th = vth << ACT_SHIFT
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
            dec = v[i] * (DECAY_UNITY - dv)
            if dec >= 0:
                dec = dec >> DECAY_SHIFT
            else:
                dec = -((-dec) >> DECAY_SHIFT)
            if s_prev[i] != 0:
                dec = 0
            vi = dec + (a[i] << ACT_SHIFT) + bias[i]
            if vi > V_MAX:
                vi = V_MAX
            elif vi < -V_MAX:
                vi = -V_MAX
            v[i] = vi
            s[i] = 1 if vi > th else 0
            if abs(vi - th) < win:
                y1[i] = PSI_Y
            s_prev[i] = s[i]
    if phase == T + L:
        half = 1 << (DELTA_SHIFT - 1)
        for i in range(n):
            q = (d[i] * delta_mult + half) >> DELTA_SHIFT
            if q < -THIRD_FACTOR_MAX:
                q = -THIRD_FACTOR_MAX
            elif q > THIRD_FACTOR_MAX:
                q = THIRD_FACTOR_MAX
            y2[i] = FLAG_Y + q
            y3[i] = FLAG_Y
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
                e = (table[cmax - counts[i]] * ERR_UNIT) // tot
                if i == label:
                    e -= ERR_UNIT
                apos[i] = apos[i] - zpos[i] * ERR_UNIT + e
                aneg[i] = aneg[i] - zneg[i] * ERR_UNIT - e
                zpos[i] = 1 if apos[i] > ERR_UNIT else 0
                zneg[i] = 1 if aneg[i] > ERR_UNIT else 0
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
        xj = _clip(xj, 0, TRACE_MAX)
        x1[j] = xj
        if xj != 0:
            active[n_act] = j
            n_act += 1
    for i in range(n_out):
        if y1[i] == 0 and y2[i] == 0 and y3[i] == 0:
            continue
        yy1 = _clip(_decay(y1[i], rho_y, r_ytrace), TRACE_MIN, TRACE_MAX)
        yy2 = _clip(_decay(y2[i], rho_y, r_ytrace), TRACE_MIN, TRACE_MAX)
        yy3 = _clip(_decay(y3[i], rho_y, r_ytrace), TRACE_MIN, TRACE_MAX)
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
    tt = _clip(t_old, TAG_FACTOR_MIN, TAG_FACTOR_MAX)
    wacc = w[i, j] << LEARN_FRAC_SHIFT
    # dw = -m 2^k t y2 + m 2^k t y3
    p = ((tt * yy2 * -dw_mant) >> SHIFT_TAG_Y) << dw_sexp
    wacc = _clip(wacc + _clip(p, ACC_MIN, ACC_MAX), ACC_MIN, ACC_MAX)
    p = ((tt * yy3 * dw_mant) >> SHIFT_TAG_Y) << dw_sexp
    wacc = _clip(wacc + _clip(p, ACC_MIN, ACC_MAX), ACC_MIN, ACC_MAX)
    # dt = x1 y1 - 2^1 x0 y1 - 2^-1 t y3
    acc = t_old << LEARN_FRAC_SHIFT
    p = ((_clip(x1[j], TRACE_MIN, TRACE_MAX) * yy1) >> SHIFT_TRACE_Y) << LEARN_FRAC_SHIFT
    acc = _clip(acc + _clip(p, ACC_MIN, ACC_MAX), ACC_MIN, ACC_MAX)
    if s_pre[j] != 0:
        p = (-yy1) << (1 + LEARN_FRAC_SHIFT)
        acc = _clip(acc + _clip(p, ACC_MIN, ACC_MAX), ACC_MIN, ACC_MAX)
    p = ((-(tt * yy3)) >> SHIFT_TAG_Y) << (LEARN_FRAC_SHIFT - 1)
    acc = _clip(acc + _clip(p, ACC_MIN, ACC_MAX), ACC_MIN, ACC_MAX)
    w[i, j] = _clip(_sround(wacc, r_conn), W_LEARN_MIN, W_LEARN_MAX)
    tag[i, j] = _clip(_sround(acc, r_conn), TAG_MIN, TAG_MAX)


@njit(cache=True, inline="always")
def _clip(x, lo, hi):
    return lo if x < lo else (hi if x > hi else x)


@njit(cache=True, inline="always")
def _sround(acc, r):
    """Lava's stochastic rounding of a 16-bit accumulator back to the variable (>> 7)."""
    q = acc / float(1 << LEARN_FRAC_SHIFT)
    fl = math.floor(q)
    return int(fl) + (1 if r < q - fl else 0)


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
                lay.dw_exp + LEARN_FRAC_SHIFT,
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
