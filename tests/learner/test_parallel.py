"""train_batch (samples of a batch on several threads) gives train_sample's results bit for bit."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from biograd.core.errors import BioGradError, ConfigError
from biograd.learner import parallel
from biograd.learner.config import LearnerConfig
from biograd.learner.encoding import SpikeRaster
from biograd.learner.network import BioGradLearner

SMALL = LearnerConfig(
    layer_sizes=(30, 16, 12, 10),
    timesteps=12,
    error_start=3,
    batch_size=5,
    sleep_noise_samples=16,
    sleep_steps=10,
    lr=0.05,
    seed=3,
)


def _samples(n, cfg=SMALL, seed=0, p=0.3):
    rng = np.random.default_rng(seed)
    return [
        (SpikeRaster.from_dense(rng.random((cfg.timesteps, cfg.layer_sizes[0])) < p), int(rng.integers(10)))
        for _ in range(n)
    ]


def _assert_same(a: BioGradLearner, b: BioGradLearner):
    sa, sb = a.state_arrays(), b.state_arrays()
    assert sa.keys() == sb.keys()
    for k in sa:
        if k != "config_json":
            np.testing.assert_array_equal(np.asarray(sa[k]), np.asarray(sb[k]), err_msg=k)


@pytest.mark.parametrize(
    "changes",
    [
        {},  # sleep after every batch
        {"batch_size": 1, "sleep_every": 4},  # streaming: a sleep every 4 samples
        {"batch_size": 7, "sleep_every": 3, "optimizer": "adam"},  # sleeps inside a batch
        {"batch_size": 40, "optimizer": "rmsprop"},  # several chunks per batch
    ],
)
@pytest.mark.parametrize("threads", [1, 2])
def test_train_batch_equals_the_sample_loop_bit_for_bit(changes, threads, monkeypatch):
    monkeypatch.setattr(parallel, "CHUNK", 16)
    cfg = replace(SMALL, **changes)
    data = _samples(61, cfg)
    one = BioGradLearner(cfg)
    loop = [one.train_sample(r, y) for r, y in data]
    many = BioGradLearner(replace(cfg, threads=threads))
    # uneven calls: a call may end inside a batch, the next one goes on from there
    got = many.train_batch([r for r, _ in data[:23]], [y for _, y in data[:23]])
    got += many.train_batch([r for r, _ in data[23:]], [y for _, y in data[23:]])
    assert len(got) == len(loop)
    for x, y in zip(loop, got):
        assert (x.prediction, x.loss, x.updated, x.slept) == (y.prediction, y.loss, y.updated, y.slept)
        np.testing.assert_array_equal(x.counts, y.counts)
    assert one.updates >= 1 and one.sleeps >= 1 and one.updates == many.updates and one.sleeps == many.sleeps
    _assert_same(one, many)
    assert not all(np.array_equal(w, v) for w, v in zip(one.weights, BioGradLearner(cfg).weights))


def test_train_batch_on_real_nmnist_with_two_threads(nmnist_dir):
    """The N-MNIST network (2312-500-100-10) on real recordings: two threads, batch 16,
    chunks of 16 and a partial batch, equal to the sample loop."""
    from biograd.learner.config import NMNIST_LEARNER
    from biograd.learner.encoding import encode_nmnist
    from biograd.sources.nmnist import list_split, read_nmnist

    data = [(encode_nmnist(read_nmnist(p)), y) for p, y in list_split(nmnist_dir, "train")[:40]]
    cfg = replace(NMNIST_LEARNER, batch_size=16, sleep_noise_samples=16, sleep_steps=10)
    one = BioGradLearner(cfg)
    for r, y in data:
        one.train_sample(r, y)
    two = BioGradLearner(replace(cfg, threads=2))
    res = two.train_batch([r for r, _ in data], [y for _, y in data])
    assert sum(r.updated for r in res) == 2 and two.batch_fill == 8
    _assert_same(one, two)


def test_bad_input_is_refused_before_any_learning():
    learner = BioGradLearner(replace(SMALL, threads=2))
    (r, y), (r2, _) = _samples(2)
    with pytest.raises(BioGradError, match="label"):
        learner.train_batch([r, r2], [y, 10])
    with pytest.raises(BioGradError, match="inputs"):
        learner.train_batch([r, SpikeRaster.from_dense(np.zeros((12, 29)))], [y, y])
    with pytest.raises(BioGradError, match="2 rasters but 1 labels"):
        learner.train_batch([r, r2], [y])
    assert learner.samples_seen == 0 and all(g.n_rows == 0 for g in learner.grads)
    with pytest.raises(ConfigError, match="learner.threads"):
        replace(SMALL, threads=-1)


def test_block_edges_split_units_evenly_at_cache_line_multiples():
    from biograd.learner.parallel import block_edges

    edges, counts = block_edges([500, 100, 10, 33], 2)
    assert counts.tolist() == [2, 2, 1, 2]
    for row, n, width in zip(edges, counts, [500, 100, 10, 33]):
        cut = row[: n + 1]
        assert cut[0] == 0 and cut[-1] == width and all(np.diff(cut) > 0)
        assert all(e % 16 == 0 for e in cut[1:-1])  # threads never share a 64-byte line
    assert edges[0, 1] == 256 and edges[1, 1] == 48  # 500 -> 256 + 244, 100 -> 48 + 52
    one, n1 = block_edges([500, 100], 1)
    assert n1.tolist() == [1, 1] and one[:, 1].tolist() == [500, 100]
