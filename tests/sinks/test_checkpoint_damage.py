"""Damaged checkpoints (issue 13.11): rejected before allocating, NaN / negative counters
rejected, fallback to the newest good one, crash leftovers cleaned."""

from __future__ import annotations

import json
import resource

import numpy as np
import pytest
from sink_helpers import random_samples, small_learner

from biograd.core.errors import DataFormatError
from biograd.learner.network import BioGradLearner
from biograd.sinks.checkpoints import LEARNER_FILE, CheckpointManager, list_checkpoints, load_checkpoint


def _rewrite(npz, **changes):
    with np.load(npz, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    data.update(changes)
    with open(npz, "wb") as f:
        np.savez(f, **data)


def _trained(tmp_path, n=4):
    learner = small_learner(sizes=(40, 8, 10), batch_size=2)
    manager = CheckpointManager(tmp_path, every_samples=2, keep=5)
    for raster, label in random_samples(n, 40, 12):
        learner.train_sample(raster, label)
        manager.maybe_save(learner, {"position": {"epoch": 0, "next_index": learner.samples_seen}})
    return learner, [c.path for c in list_checkpoints(tmp_path)]


def test_huge_layers_in_a_forged_config_are_refused_before_allocating(tmp_path):
    _, paths = _trained(tmp_path)
    npz = paths[-1] / LEARNER_FILE
    with np.load(npz, allow_pickle=False) as z:
        config = json.loads(str(z["config_json"]))
    config["layer_sizes"] = [40, 200_000, 10]  # 8 GB of weights if believed
    _rewrite(npz, config_json=np.array(json.dumps(config)))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(DataFormatError, match=r"asks for layers \[40, 200000, 10\] but W0 holds"):
        load_checkpoint(paths[-1], BioGradLearner.load)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # kB: nothing big allocated


@pytest.mark.parametrize("what", ["nan", "inf", "counters"])
def test_nan_weights_and_negative_counters_are_rejected(tmp_path, what):
    _, paths = _trained(tmp_path)
    npz = paths[-1] / LEARNER_FILE
    with np.load(npz, allow_pickle=False) as z:
        w, counters = z["W0"].copy(), z["counters"].copy()
    if what == "counters":
        counters[1] = -5
        _rewrite(npz, counters=counters)
        match = "negative counters"
    else:
        w[0, 0] = np.nan if what == "nan" else np.inf
        _rewrite(npz, W0=w)
        match = "NaN or infinite"
    with pytest.raises(DataFormatError, match=match):
        load_checkpoint(paths[-1], BioGradLearner.load)


def test_a_damaged_newest_checkpoint_falls_back_to_the_newest_good_one(tmp_path, caplog):
    _, paths = _trained(tmp_path, n=6)
    assert [p.name for p in paths] == ["ckpt-000000002", "ckpt-000000004", "ckpt-000000006"]
    (paths[-1] / LEARNER_FILE).write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataFormatError, match="ckpt-000000006"):
        load_checkpoint(paths[-1], BioGradLearner.load)  # that checkpoint, named: a clear error
    loaded = load_checkpoint(tmp_path, BioGradLearner.load)  # the run dir: newest good one
    assert loaded.path == paths[1] and loaded.samples == 4
    assert "damaged, trying an older one" in caplog.text
    for p in paths[:2]:
        (p / LEARNER_FILE).write_bytes(b"")
    with pytest.raises(DataFormatError, match="no loadable checkpoint"):
        load_checkpoint(tmp_path, BioGradLearner.load)


def test_crash_leftovers_are_cleaned_by_the_next_save(tmp_path):
    learner, paths = _trained(tmp_path)
    root = paths[0].parent
    (root / ".old-ckpt-000000002-1234").mkdir()
    (root / ".old-ckpt-000000002-1234" / LEARNER_FILE).write_bytes(b"x")
    (root / ".tmp-ckpt-000000004-abc").mkdir()
    half = root / "ckpt-000000001"  # a prune killed half-way: state.json already gone
    half.mkdir()
    (half / LEARNER_FILE).write_bytes(b"x")
    CheckpointManager(tmp_path, keep=5).save_final(learner)
    assert sorted(p.name for p in root.iterdir()) == ["ckpt-000000002", "ckpt-000000004", "ckpt-000000004-final"]
