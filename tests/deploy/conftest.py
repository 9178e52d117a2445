"""Fixtures of the deployment tests."""

from __future__ import annotations

import pytest
from deploy_helpers import small_learner

from biograd.deploy.params import NetworkParams


@pytest.fixture
def learner():
    return small_learner()


@pytest.fixture
def params(learner):
    return NetworkParams.from_learner(learner)
