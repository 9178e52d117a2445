import numpy as np
import pytest
from deploy_helpers import random_rasters

from biograd.core.errors import DataFormatError, DataNotFoundError
from biograd.deploy.inference import reference_counts
from biograd.deploy.params import NetworkParams
from biograd.deploy.quantize import quantization_report, quantize_layer, quantize_network


def test_layer_integers_respect_loihi_ranges_and_round_trip():
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.1, (30, 50))
    b = rng.normal(0, 0.05, 30)
    q = quantize_layer(w, b, lam=0.3, vth=0.3)
    assert q.weights.dtype == np.int32
    assert np.all(q.weights % 2 == 0) and q.weights.min() >= -254 and q.weights.max() <= 254
    assert np.abs(q.weights).max() == 254  # the largest weight uses the whole mantissa
    assert 0 <= q.weight_exp <= 7 and 0 < q.vth <= 4096
    assert np.all(np.abs(q.bias_mant) <= 4095) and 0 <= q.bias_exp <= 7
    wq, bq, th, lam = q.dequantized()
    assert np.max(np.abs(wq - w)) <= q.w_lsb + 1e-15  # even grid: error at most one LSB
    assert np.max(np.abs(bq - b)) <= 2**q.bias_exp / q.scale / 2 + 1e-15
    assert abs(th - 0.3) <= 32 / q.scale + 1e-15  # vth << 6: half a step of 64
    assert q.dv == round(4096 * 0.7) and abs(lam - 0.3) <= 0.5 / 4096


def test_large_bias_raises_the_bias_exponent():
    w = np.full((2, 3), 0.01)
    small = quantize_layer(w, np.array([0.001, -0.001]), 0.3, 0.3)
    large = quantize_layer(w, np.array([0.05, -0.05]), 0.3, 0.3)
    assert large.bias_exp > small.bias_exp
    assert np.all(np.abs(large.bias_mant) <= 4096)
    np.testing.assert_allclose(large.dequantized()[1], [0.05, -0.05], rtol=1e-3)
    # a bias beyond 13 bits x 2^7 saturates, and the dequantised value shows it
    huge = quantize_layer(w, np.array([5.0, -5.0]), 0.3, 0.3)
    assert huge.bias_exp == 7 and abs(huge.dequantized()[1][0] - 5.0) > 1.0


def test_report_per_layer(params):
    rows = quantization_report(params, quantize_network(params))
    assert [r["layer"] for r in rows] == [0, 1]
    assert rows[0]["shape"] == [16, 40]
    for r in rows:
        assert 0 < r["weight_rel_rms"] < 0.01 and r["vth_rel"] < 1e-2 and r["decay_abs"] < 1e-3


def test_fixed_point_network_keeps_most_spike_counts(params):
    """The integer network is the float network up to rounding: counts stay close."""
    fixed = quantize_network(params)
    diffs = [
        np.abs(reference_counts(params, r) - reference_counts(params, r, fixed)).sum()
        for r in random_rasters(10, params.timesteps, 40)
    ]
    total = sum(reference_counts(params, r).sum() for r in random_rasters(10, params.timesteps, 40))
    assert total > 0
    assert sum(diffs) <= 0.1 * total


def test_checkpoint_round_trip_and_errors(learner, tmp_path):
    path = learner.save(tmp_path / "net.npz")
    p = NetworkParams.from_checkpoint(path)
    assert p.layer_sizes == (40, 16, 10) and p.timesteps == 10 and p.error_start == 3
    np.testing.assert_array_equal(p.weights[0], learner.weights[0])
    with pytest.raises(DataNotFoundError, match="missing.npz"):
        NetworkParams.from_checkpoint(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataFormatError, match="bad.npz"):
        NetworkParams.from_checkpoint(bad)
    data = dict(np.load(path, allow_pickle=False))
    data["W1"] = data["W1"][:, :3]
    np.savez(tmp_path / "short.npz", **data)
    with pytest.raises(DataFormatError, match="W1 has shape"):
        NetworkParams.from_checkpoint(tmp_path / "short.npz")
