"""The exported network in Lava against the Numba learner and the integer reference."""

import numpy as np
import pytest
from deploy_helpers import random_rasters, small_learner

from biograd.core.errors import BioGradError
from biograd.deploy.inference import reference_counts, run_inference
from biograd.deploy.params import NetworkParams
from biograd.deploy.quantize import quantize_network


def test_floating_pt_gives_the_learners_counts_and_predictions(learner, params):
    rasters = random_rasters(6, params.timesteps, 40)
    res = run_inference(params, rasters, "floating_pt")
    learner_out = [learner.predict(r) for r in rasters]
    expected = np.array([c for _, c in learner_out])
    assert expected.sum() > 0  # the network does spike
    np.testing.assert_array_equal(res.counts, expected)
    np.testing.assert_array_equal(res.predictions, [p for p, _ in learner_out])


def test_fixed_pt_equals_the_integer_reference(params):
    rasters = random_rasters(6, params.timesteps, 40, seed=2)
    fixed = quantize_network(params)
    res = run_inference(params, rasters, "fixed_pt", fixed=fixed)
    expected = np.array([reference_counts(params, r, fixed) for r in rasters])
    assert expected.sum() > 0
    np.testing.assert_array_equal(res.counts, expected)


def test_real_nmnist_through_sources_and_encoder(nmnist_dir):
    from biograd.pipeline.datasets import load_rasters

    rasters, labels = load_rasters("nmnist", "test", nmnist_dir.parent, limit=3)
    assert len(rasters) == 3 and rasters[0].n_inputs == 2312 and rasters[0].timesteps == 60
    learner = small_learner(sizes=(2312, 24, 10), T=60, te=19, seed=3)
    params = NetworkParams.from_learner(learner)
    res = run_inference(params, rasters, "floating_pt")
    expected = np.array([learner.predict(r)[1] for r in rasters])
    assert expected.sum() > 0
    np.testing.assert_array_equal(res.counts, expected)


def test_raster_of_the_wrong_width_is_rejected(params):
    with pytest.raises(BioGradError, match="sample 0: raster has 41 inputs"):
        run_inference(params, random_rasters(1, params.timesteps, 41), "floating_pt")


def test_chunked_runs_give_the_same_counts(params):
    rasters = random_rasters(5, params.timesteps, 40, seed=4)
    whole = run_inference(params, rasters, "floating_pt")
    chunked = run_inference(params, rasters, "floating_pt", chunk=2)
    np.testing.assert_array_equal(whole.counts, chunked.counts)
    assert chunked.steps == 5 * params.timesteps + 3 * params.n_layers
