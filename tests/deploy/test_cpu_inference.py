"""The int8 event kernel (learner.int_inference) runs the Loihi export's integers exactly."""

import numpy as np
import pytest
from deploy_helpers import random_rasters, small_learner

from biograd.core.errors import BioGradError, EventFormatError
from biograd.core.events import NMNIST_GEOMETRY, Geometry, make_events
from biograd.deploy.cpu_inference import cpu_network, int_layer, quantized_cpu_network
from biograd.deploy.inference import reference_counts
from biograd.deploy.params import NetworkParams
from biograd.deploy.quantize import FixedLayer, quantize_network
from biograd.learner.encoding import NMNIST_BIN_US, NMNIST_TIMESTEPS, encode_events, encode_nmnist
from biograd.learner.int_inference import IntLayer, IntNetwork

GEO = Geometry(5, 4)  # 2 x 4 x 5 = 40 inputs


@pytest.mark.parametrize("weight_exp", [None, 0, 3])
def test_raster_counts_equal_the_integer_oracle(params, weight_exp):
    fixed = quantize_network(params, weight_exp)
    net = cpu_network(fixed, params.timesteps)
    total = 0
    for r in random_rasters(30, params.timesteps, 40, seed=weight_exp or 7):
        want = reference_counts(params, r, fixed)
        np.testing.assert_array_equal(net.counts(r), want)
        total += want.sum()
    assert total > 50  # the network is active: the comparison is not between zeros


def test_int16_chunks_and_the_24_bit_clip_are_exact():
    """600 inputs spiking at once with weight 127 (more than 256 rows per partial sum), and a
    current far past the 24-bit voltage range: the kernel still equals the oracle."""
    rng = np.random.default_rng(3)
    w = np.full((12, 600), 254, dtype=np.int32)
    w[6:] = -254
    w[3] = rng.integers(-127, 128, 600) * 2
    q = FixedLayer(w, 7, rng.integers(-4096, 4096, 12).astype(np.int32), 3, 1000, 4095, 1229, 1.0)
    params = NetworkParams(
        (np.zeros((12, 600)),), (np.zeros(12),), (), (0.7,), (0.3,), (0.3,), (1.0,), timesteps=8, error_start=1
    )
    dense = (rng.random((8, 600)) < 0.9).astype(np.uint8)
    dense[2] = 1
    from biograd.learner.encoding import SpikeRaster

    raster = SpikeRaster.from_dense(dense)
    want = reference_counts(params, raster, [q])
    np.testing.assert_array_equal(cpu_network([q], 8).counts(raster), want)
    assert want[:6].sum() > 0 and want[6:].sum() == 0


def _events(rng, n, t_max, geometry=GEO):
    t = np.sort(rng.integers(-3000, t_max, n))
    return make_events(
        t, rng.integers(0, geometry.width, n), rng.integers(0, geometry.height, n), rng.integers(0, 2, n)
    )


@pytest.mark.parametrize(("channels", "bin_us", "round_us", "origin"), [(2, 1000, 1000, 0), (1, 700, 300, 500)])
def test_fused_event_path_equals_binning_then_the_raster_kernel(learner, channels, bin_us, round_us, origin):
    """Events straight into the kernel (no CSR) give the counts of encode_events + counts,
    with repeats in a bin, events before the origin and past the window."""
    if channels == 1:
        learner = small_learner(sizes=(20, 16, 10))
    params = NetworkParams.from_learner(learner)
    net = quantized_cpu_network(params)
    rng = np.random.default_rng(5)
    T = params.timesteps
    samples = [_events(rng, n, T * bin_us + 4000 + origin) for n in (0, 1, 30, 400, 2000)]
    for ev in samples:
        kw = {"t_origin": origin, "round_us": round_us}
        raster = encode_events(ev, GEO, T, bin_us, channels, **kw)
        np.testing.assert_array_equal(net.counts_events(ev, GEO, bin_us, channels, **kw), net.counts(raster))
    packed = np.concatenate(samples)
    starts = np.cumsum([0] + [len(e) for e in samples])
    got = net.counts_events_packed(packed, starts, GEO, bin_us, channels, t_origin=origin, round_us=round_us)
    want = [net.counts(encode_events(e, GEO, T, bin_us, channels, t_origin=origin, round_us=round_us)) for e in samples]
    np.testing.assert_array_equal(got, np.array(want))
    assert np.array(want).sum() > 0


def test_events_out_of_time_order_are_binned_first(learner):
    net = quantized_cpu_network(NetworkParams.from_learner(learner))
    rng = np.random.default_rng(8)
    ev = _events(rng, 600, 12000)
    shuffled = ev[rng.permutation(len(ev))]
    want = net.counts(encode_events(ev, GEO, learner.config.timesteps, 1000))
    np.testing.assert_array_equal(net.counts_events(shuffled, GEO, 1000), want)
    packed = np.concatenate([ev, shuffled, ev])
    starts = np.array([0, len(ev), 2 * len(ev), 3 * len(ev)])
    np.testing.assert_array_equal(net.counts_events_packed(packed, starts, GEO, 1000), np.array([want] * 3))


def test_bad_events_raise_naming_the_event(learner):
    net = quantized_cpu_network(NetworkParams.from_learner(learner))
    ev = _events(np.random.default_rng(9), 50, 5000)
    bad = ev.copy()
    bad["x"][10] = 5
    with pytest.raises(EventFormatError, match=r"packet 7: event 10 has x=5"):
        net.counts_events(bad, GEO, 1000, source="packet 7")
    late = np.concatenate([ev, make_events([10**9], [0], [9], [0])])  # past the window, still checked
    with pytest.raises(EventFormatError, match=r"event 50 has y=9"):
        net.counts_events(late, GEO, 1000)
    with pytest.raises(EventFormatError, match="expected a 1-D array"):
        net.counts_events(np.zeros(3), GEO, 1000)
    with pytest.raises(BioGradError, match="inputs"):
        net.counts_events(ev, Geometry(6, 4), 1000)
    with pytest.raises(BioGradError, match="starts"):
        net.counts_events_packed(ev, np.array([0, 10]), GEO, 1000)


def test_malformed_layers_and_rasters_are_refused(params):
    q = quantize_network(params)
    layers = [int_layer(f) for f in q]
    with pytest.raises(BioGradError, match="int8"):
        IntNetwork([layers[0]._replace(wt=layers[0].wt.astype(np.int16))], 10)
    with pytest.raises(BioGradError, match="inputs"):
        IntNetwork([layers[1], layers[0]], 10)
    with pytest.raises(BioGradError, match="even"):
        int_layer(FixedLayer(q[0].weights + 1, 0, q[0].bias_mant, 0, 10, 4095, 100, 1.0))
    net = IntNetwork(layers, 10)
    with pytest.raises(BioGradError, match="time steps"):
        net.counts(random_rasters(1, 9, 40)[0])
    assert isinstance(layers[0], IntLayer) and layers[0].wt.dtype == np.int8


def test_real_nmnist_samples_match_the_oracle_and_the_float_network(nmnist_dir):
    """A 2312-500-100-10 network on real N-MNIST recordings: the fused kernel gives the integer
    oracle's counts (so Lava fixed_pt's), and predicts like the float network it was exported from."""
    from dataclasses import replace

    from biograd.learner.config import NMNIST_LEARNER
    from biograd.learner.network import BioGradLearner
    from biograd.sources.nmnist import list_split, read_nmnist

    learner = BioGradLearner(replace(NMNIST_LEARNER, batch_size=16, sleep=False))
    for path, label in list_split(nmnist_dir, "train")[:160]:
        learner.train_sample(encode_nmnist(read_nmnist(path)), label)
    params = NetworkParams.from_learner(learner)
    fixed = quantize_network(params)
    net = cpu_network(fixed, NMNIST_TIMESTEPS)
    same = total = 0
    for k, (path, _) in enumerate(list_split(nmnist_dir, "test")[:12]):
        events = read_nmnist(path)
        raster = encode_nmnist(events)
        got = net.counts_events(events, NMNIST_GEOMETRY, NMNIST_BIN_US)
        if k < 2:  # the NumPy oracle is slow at this size
            np.testing.assert_array_equal(got, reference_counts(params, raster, fixed))
        np.testing.assert_array_equal(got, net.counts(raster))
        total += got.sum()
        same += int(np.argmax(got) == learner.predict(raster)[0])
    assert total > 0 and same >= 10
