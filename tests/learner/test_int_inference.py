"""learner.int_inference on its own: the integer kernels against a NumPy transcription of the
Loihi fixed-point equations (no deploy import), on networks built to exercise every path."""

import numpy as np
import pytest

from biograd.core.errors import BioGradError
from biograd.core.events import Geometry, make_events
from biograd.learner.encoding import SpikeRaster, encode_events
from biograd.learner.int_inference import V_MAX, IntLayer, IntNetwork

GEO = Geometry(6, 5)  # 2 x 5 x 6 = 60 inputs


def oracle_counts(layers, dense):
    """Output counts of a (T, n_in) 0/1 raster, straight from the module docstring's equations."""
    x = dense.astype(np.int64)
    for q in layers:
        v = np.zeros(q.wt.shape[1], dtype=np.int64)
        out = np.zeros((x.shape[0], q.wt.shape[1]), dtype=np.int64)
        for t in range(x.shape[0]):
            d = v * q.decay
            v = np.sign(d) * (np.abs(d) >> 12) + ((x[t] @ q.wt.astype(np.int64)) << q.shift) + q.bias
            v = np.clip(v, -V_MAX, V_MAX)
            out[t] = v > q.vth
            v[out[t] == 1] = 0
        x = out
    return x.sum(axis=0)


def random_layers(sizes, seed, vth=3000 << 6):
    """Layers whose hidden units fire at very different rates (some always, some never), so
    the hidden-layer deltas see units starting, stopping and staying on."""
    rng = np.random.default_rng(seed)
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        wt = rng.integers(-127, 128, (n_in, n_out)).astype(np.int8)
        bias = rng.integers(-(vth // 2), vth, n_out).astype(np.int64)
        bias[: n_out // 8] = 2 * vth  # always over threshold
        layers.append(IntLayer(wt, 6, bias, vth, int(rng.integers(0, 4097))))
    return layers


def dense_raster(rng, T, n_in, rate):
    return (rng.random((T, n_in)) < rate).astype(np.uint8)


@pytest.mark.parametrize("sizes", [(60, 23, 10), (60, 40, 33, 17, 5), (60, 7)])
def test_raster_counts_equal_the_equations(sizes):
    layers = random_layers(sizes, seed=len(sizes))
    net = IntNetwork(layers, 25)
    rng = np.random.default_rng(1)
    total = 0
    for rate in (0.0, 0.05, 0.3, 0.9):
        for _ in range(3):
            dense = dense_raster(rng, 25, 60, rate)
            want = oracle_counts(layers, dense)
            np.testing.assert_array_equal(net.counts(SpikeRaster.from_dense(dense)), want)
            total += want.sum()
    assert total > 100


def test_hidden_units_start_and_stop_within_a_sample():
    """The hidden layer's input is carried from step to step as a sum of changes: a sample
    whose input switches off and on again makes hidden units stop and restart."""
    layers = random_layers((60, 48, 12), seed=4, vth=500 << 6)
    net = IntNetwork(layers, 30)
    dense = np.zeros((30, 60), dtype=np.uint8)
    dense[:10, :30] = 1
    dense[15:25, 30:] = 1
    dense[27:, ::3] = 1
    want = oracle_counts(layers, dense)
    np.testing.assert_array_equal(net.counts(SpikeRaster.from_dense(dense)), want)
    # the first layer's spikes really change: some units stop and some start during the sample
    h = oracle_counts(layers[:1], dense[:10]), oracle_counts(layers[:1], dense[15:25])
    assert np.any((h[0] > 0) & (h[1] == 0)) and np.any((h[0] == 0) & (h[1] > 0))
    # samples are independent: the carried sums are reset between them
    np.testing.assert_array_equal(net.counts(SpikeRaster.from_dense(dense)), want)


def test_packed_events_equal_the_equations():
    layers = random_layers((60, 40, 10), seed=6)
    net = IntNetwork(layers, 20)
    rng = np.random.default_rng(7)
    samples = []
    for n in (0, 50, 800, 3000):
        t = np.sort(rng.integers(-500, 22000, n))
        samples.append(make_events(t, rng.integers(0, 6, n), rng.integers(0, 5, n), rng.integers(0, 2, n)))
    starts = np.cumsum([0] + [len(e) for e in samples])
    got = net.counts_events_packed(np.concatenate(samples), starts, GEO, 1000)
    for e, g in zip(samples, got):
        dense = encode_events(e, GEO, 20, 1000).to_dense()
        np.testing.assert_array_equal(g, oracle_counts(layers, dense))
        np.testing.assert_array_equal(net.counts_events(e, GEO, 1000), g)
    assert got.sum() > 0


def test_weights_outside_the_halved_mantissa_range_are_refused():
    q = random_layers((60, 10), seed=8)[0]
    wt = q.wt.copy()
    wt[3, 4] = -128  # no even 8-bit mantissa halves to -128; -W would not fit int8
    with pytest.raises(BioGradError, match="-127..127"):
        IntNetwork([q._replace(wt=wt)], 10)
