"""Helpers shared by the deployment tests: small BioGrad networks and random rasters."""

from __future__ import annotations

import numpy as np

from biograd.learner.config import LearnerConfig
from biograd.learner.encoding import SpikeRaster
from biograd.learner.network import BioGradLearner


def small_learner(sizes=(40, 16, 10), T=10, te=3, seed=0) -> BioGradLearner:
    return BioGradLearner(
        LearnerConfig(
            layer_sizes=sizes, timesteps=T, error_start=te, dtype="float64", seed=seed, sleep=False, batch_size=1
        )
    )


def random_rasters(n, T, n_in, density=0.35, seed=1):
    rng = np.random.default_rng(seed)
    return [SpikeRaster.from_dense(rng.random((T, n_in)) < density) for _ in range(n)]
