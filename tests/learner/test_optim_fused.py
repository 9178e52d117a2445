"""The one-call-per-layer optimizer steps equal the former per-part formulas bit for bit.

The reference below is the code the steps replaced (per-synapse rows with every division and a
power per skipped row; biases in a second call; ``layer_rms`` with NumPy for the bias and the
scalars). Compared on rows of the real 2312-500 layer, bit patterns included, then over a
streaming run on real N-MNIST long enough (t > 165) for Adam's first bias correction to round
to 1 (the division the fused step then drops). ``bench/optim_step.py --former`` times this
reference against the current step.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from nmnist_io import nmnist_files, read_nmnist_bin
from numba import njit

from biograd.learner import kernels, optim_kernels
from biograd.learner.config import NMNIST_STREAMING, LearnerConfig
from biograd.learner.encoding import encode_nmnist
from biograd.learner.network import BioGradLearner
from biograd.learner.optim import Adaptive, LayerRMS


@njit(error_model="numpy")
def old_adaptive_rows(wt, gwt, m, v, last, touched, rows, n_rows, hyper, t, adam):
    n = wt.shape[1]
    lr, inv_n, b1, b2, eps = hyper[0], hyper[1], hyper[2], hyper[3], hyper[4]
    s = np.empty(6, dtype=hyper.dtype)
    s[0] = 1.0 - float(b1)
    s[1] = 1.0 - float(b2)
    s[2] = 1.0 - float(b1) ** t
    s[3] = 1.0 - float(b2) ** t
    omb1, omb2, c1, c2 = s[0], s[1], s[2], s[3]
    for r in range(n_rows):
        j = rows[r]
        gap = t - 1 - last[j]
        s[4] = float(b1) ** gap if adam and gap else 1.0
        s[5] = float(b2) ** gap if gap else 1.0
        d1, d2 = s[4], s[5]
        w = wt[j]
        g = gwt[j]
        vr = v[j]
        if adam:
            mr = m[j]
            for i in range(n):
                gi = g[i] * inv_n
                mi = b1 * (d1 * mr[i]) + omb1 * gi
                vi = b2 * (d2 * vr[i]) + omb2 * gi * gi
                mr[i] = mi
                vr[i] = vi
                w[i] -= lr * (mi / c1) / (np.sqrt(vi / c2) + eps)
                g[i] = 0
        else:
            for i in range(n):
                gi = g[i] * inv_n
                vi = b2 * (d2 * vr[i]) + omb2 * gi * gi
                vr[i] = vi
                w[i] -= lr * gi / (np.sqrt(vi) + eps)
                g[i] = 0
        last[j] = t
        touched[j] = 0


@njit
def old_scaled_rows(wt, gwt, touched, rows, n_rows, scale):
    n = wt.shape[1]
    for r in range(n_rows):
        j = rows[r]
        w = wt[j]
        g = gwt[j]
        for i in range(n):
            w[i] -= scale * g[i]
            g[i] = 0.0
        touched[j] = 0


class OldAdaptive(Adaptive):
    def step(self, layers, grads, batch_fill):
        self.t += 1
        c = self.config
        hyper = np.array([c.lr, 1.0 / batch_fill, c.beta1, c.beta2, c.eps], dtype=self.dtype)
        changed = any(g.gb.any() for g in grads)
        one_row, flag = np.zeros(1, dtype=np.int32), np.zeros(1, dtype=np.uint8)
        for l, (lay, g) in enumerate(zip(layers, grads)):
            args = (self.m[l], self.v[l], self.last[l], g.touched, g.rows, g.n_rows, hyper, self.t, self.adam)
            old_adaptive_rows(lay.wt, g.gwt, *args)
            g.n_rows = 0
            args = (self.mb[l], self.vb[l], self.lastb[l], flag, one_row, 1, hyper, self.t, self.adam)
            old_adaptive_rows(lay.b.reshape(1, -1), g.gb.reshape(1, -1), *args)
        return changed


class OldLayerRMS(LayerRMS):
    def step(self, layers, grads, batch_fill):
        self.t += 1
        c = self.config
        inv_n = 1.0 / batch_fill
        corr = 1.0 - c.beta2**self.t
        changed = any(g.gb.any() for g in grads)
        for l, (lay, g) in enumerate(zip(layers, grads)):
            s = self.s[l]
            ms_w = optim_kernels.sum_sq_rows(g.gwt, g.rows, g.n_rows) * inv_n * inv_n / g.gwt.size
            gb = g.gb.astype(np.float64) * inv_n
            ms_b = float(np.mean(gb * gb))
            s[0] = c.beta2 * s[0] + (1.0 - c.beta2) * ms_w
            s[1] = c.beta2 * s[1] + (1.0 - c.beta2) * ms_b
            scale_w = self.dtype.type(c.lr * inv_n / (np.sqrt(s[0] / corr) + c.eps))
            scale_b = c.lr / (np.sqrt(s[1] / corr) + c.eps)
            old_scaled_rows(lay.wt, g.gwt, g.touched, g.rows, g.n_rows, scale_w)
            g.n_rows = 0
            lay.b[...] -= (scale_b * gb).astype(lay.b.dtype)
            g.gb[:] = 0
        return changed


def _bits_equal(a, b, what):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape, what
    view = {4: np.uint32, 8: np.uint64}.get(a.dtype.itemsize)
    if view is None:
        np.testing.assert_array_equal(a, b, err_msg=what)
    else:
        np.testing.assert_array_equal(a.view(view), b.view(view), err_msg=what)


def former_optimizer(cfg, layers):
    return (
        OldLayerRMS(cfg, layers) if cfg.optimizer == "layer_rms" else OldAdaptive(cfg, layers, cfg.optimizer == "adam")
    )


def _pair(cfg, rng):
    """Two learners, the new step and the former one, over the same random real-sized state (moments)."""
    new, old = BioGradLearner(cfg), BioGradLearner(cfg)
    old.optimizer = former_optimizer(cfg, old.layers)
    opt = new.optimizer
    if isinstance(opt, Adaptive):
        for l in range(cfg.n_layers):
            for arr in [opt.v[l], opt.vb[l]] + ([opt.m[l], opt.mb[l]] if opt.adam else []):
                scale = 1e-6 if arr is opt.v[l] or arr is opt.vb[l] else 1e-3
                x = rng.random(arr.shape) * scale
                if arr is opt.m[l] or arr is opt.mb[l]:
                    x -= scale / 2
                x[rng.random(arr.shape) < 0.01] = 0.0
                arr[...] = x
            opt.v[l][:3] = np.float32(1e-38) if cfg.dtype == "float32" else 1e-300  # subnormal after decay
    elif isinstance(opt, LayerRMS):
        for s in opt.s:
            s[:] = rng.random(2) * 1e-7
    for a, b in zip(new.optimizer.state_arrays().items(), old.optimizer.state_arrays().items()):
        b[1][...] = a[1]
    return new, old


def _fill_grads(learners, rng, inv_n_fill):
    cfg = learners[0].config
    for l in range(cfg.n_layers):
        n_in, n_out = learners[0].grads[l].gwt.shape
        gw = np.zeros((n_in, n_out))
        rows = rng.random(n_in) < 0.4
        live = rng.random(n_out) < 0.3  # most hidden neurons silent in a sample: zero columns
        gw[rows] = rng.standard_normal((rows.sum(), n_out)) * 1e-3 * live * inv_n_fill
        gb = rng.standard_normal(n_out) * 1e-3 * live
        for lr_ in learners:
            g = lr_.grads[l]
            g.gwt[...] = gw
            g.gb[...] = gb
            g.reindex()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["rmsprop", "adam", "layer_rms", "sgd"])
def test_fused_steps_equal_the_former_formulas_on_real_sized_rows(name, dtype):
    cfg = replace(NMNIST_STREAMING, optimizer=name, dtype=dtype, sleep=False, seed=7)
    if dtype == "float64":
        cfg = replace(cfg, layer_sizes=(300, 60, 20, 10))
    rng = np.random.default_rng(11)
    if name == "sgd":
        new, old = BioGradLearner(cfg), BioGradLearner(cfg)
    else:
        new, old = _pair(cfg, rng)
    # steps t: the first, ordinary, Adam's c1 rounded to 1 (float32: t > 165), c2 too (t > 17 000),
    # past int_power's cut-off to math.pow (t > 65 536)
    for t in (1, 2, 40, 170, 400, 17500, 70000):
        for fill in (1, 3):
            if name != "sgd":
                for lr_ in (new, old):
                    lr_.optimizer.t = t - 1
            if isinstance(new.optimizer, Adaptive):
                # gaps: 0 for most rows, a few up to the table's end and beyond it
                n0 = new.optimizer.last[0].shape[0]
                gap = np.where(rng.random(n0) < 0.6, 0, rng.integers(1, 6000, n0))
                for l, last in enumerate(new.optimizer.last):
                    k = last.shape[0]
                    last[:] = np.maximum(t - 1 - gap[:k], 0)
                    old.optimizer.last[l][:] = last
                for lr_ in (new, old):
                    for lb in lr_.optimizer.lastb:
                        lb[:] = t - 1
            _fill_grads([new, old], rng, fill)
            for lr_ in (new, old):
                lr_.batch_fill = fill
            changed = [lr_.optimizer.step(lr_.layers, lr_.grads, fill) for lr_ in (new, old)]
            assert changed[0] is changed[1] is True
            sa, sb = new.optimizer.state_arrays(), old.optimizer.state_arrays()
            for k in sa:
                _bits_equal(sa[k], sb[k], f"{name} t={t} {k}")
            for l in range(cfg.n_layers):
                _bits_equal(new.layers[l].wt, old.layers[l].wt, f"{name} {dtype} t={t} fill={fill} W{l}")
                _bits_equal(new.layers[l].b, old.layers[l].b, f"{name} {dtype} t={t} fill={fill} b{l}")
                assert not new.grads[l].gwt.any() and not new.grads[l].gb.any()
                assert not new.grads[l].touched.any()
    if name == "sgd":
        # and the SGD layer step against the kernel it replaced
        rng = np.random.default_rng(3)
        wt = rng.standard_normal((2312, 500)).astype(np.float32)
        gwt = np.zeros_like(wt)
        rows = np.flatnonzero(rng.random(2312) < 0.4).astype(np.int32)
        gwt[rows] = rng.standard_normal((rows.size, 500))
        b, gb = rng.standard_normal(500).astype(np.float32), rng.standard_normal(500).astype(np.float32)
        copies = [(wt.copy(), gwt.copy(), b.copy(), gb.copy()) for _ in range(2)]
        touched = np.ones(2312, dtype=np.uint8)
        kernels.apply_update(*copies[0], np.float32(1e-3), touched, rows, rows.size)
        assert optim_kernels.sgd_layer(*copies[1], np.float32(1e-3), touched, rows, rows.size)
        for x, y in zip(*copies):
            _bits_equal(x, y, "sgd_layer")


def test_pairwise_sum_is_numpys_mean_order():
    rng = np.random.default_rng(0)
    for n in list(range(1, 300)) + [500, 777, 2312]:
        a = rng.standard_normal(n) * 10.0 ** rng.integers(-8, 8, n)
        assert optim_kernels.pairwise_sum(a, 0, n) / n == np.mean(a), n


def test_beta_powers_table_is_the_per_row_power():
    hyper = np.array([1e-4, 1.0, 0.9, 0.999, 1e-8], dtype=np.float32)
    table = optim_kernels.beta_powers(hyper, 3, 5000)
    check = np.empty(1, dtype=np.float32)

    @njit
    def direct(beta, gap, out):
        out[0] = float(beta) ** gap
        return out[0]

    for d in (1, 2, 3, 17, 255, 1024, 4095, 4999):
        assert table[d] == direct(hyper[3], np.int64(d), check)


@pytest.fixture(scope="module")
def nmnist_stream(nmnist_dir):
    files = nmnist_files(nmnist_dir, "Train")
    assert len(files) >= 200, f"expected the 1000 nmnist-1k Train files under {nmnist_dir}"
    pick = np.random.default_rng(4).permutation(len(files))[:200]
    return [(encode_nmnist(read_nmnist_bin(files[i][0])), files[i][1]) for i in pick]


@pytest.mark.parametrize("name", ["rmsprop", "adam", "layer_rms"])
def test_streaming_run_equals_the_former_step_bit_for_bit(nmnist_stream, name):
    """The streaming preset (2312-500-100-10, batch 1, sleep every 128) over 200 real samples."""
    cfg: LearnerConfig = replace(NMNIST_STREAMING, optimizer=name)
    new, old = BioGradLearner(cfg), BioGradLearner(cfg)
    old.optimizer = former_optimizer(cfg, old.layers)
    for raster, label in nmnist_stream:
        a, b = new.train_sample(raster, label), old.train_sample(raster, label)
        assert a.loss == b.loss and np.array_equal(a.counts, b.counts)
    assert new.last_change == old.last_change and new.sleeps == old.sleeps == 1
    sa, sb = new.state_arrays(), old.state_arrays()
    assert sa.keys() == sb.keys()
    for k in sa:
        if np.asarray(sa[k]).dtype.kind in "fiu":
            _bits_equal(sa[k], sb[k], f"{name} {k}")
