"""Continual learning: metrics by hand, each protocol's task split, the CLI and Lava's CLP."""

import json

import numpy as np
import pytest

from biograd.pipeline.cli import main
from biograd.pipeline.continual.metrics import average_accuracy, backward_transfer, forgetting, summarize
from biograd.pipeline.continual.protocols import build_protocol

NAN = float("nan")


def test_metrics_of_a_tiny_accuracy_matrix_by_hand():
    # task 0 peaks after task 1 (0.8), so forgetting (from the best) and BWT (from the diagonal) differ
    R = [[0.5, NAN, NAN], [0.8, 0.9, NAN], [0.6, 0.7, 1.0]]
    assert average_accuracy(R) == pytest.approx((0.6 + 0.7 + 1.0) / 3)
    assert forgetting(R) == pytest.approx(((0.8 - 0.6) + (0.9 - 0.7)) / 2)
    assert backward_transfer(R) == pytest.approx(((0.6 - 0.5) + (0.7 - 0.9)) / 2)
    one = summarize([[0.7]])
    assert (one.average_accuracy, one.forgetting, one.backward_transfer) == (0.7, 0.0, 0.0)
    with pytest.raises(ValueError, match="not evaluated"):
        average_accuracy([[0.5, NAN], [NAN, 0.9]])


def _ids(rasters):
    return {(r.indptr.tobytes(), r.indices.tobytes()) for r in rasters}


def test_class_incremental_splits_hold_two_classes_each(data_dir):
    for name in ("split-mnist", "split-nmnist"):
        p = build_protocol(name, data_dir, seed=0, train_per_class=4, test_per_class=2)
        assert p.kind == "class-incremental" and p.n_tasks == 5
        seen = set()
        for k, t in enumerate(p.tasks):
            assert set(t.train_labels) == {2 * k, 2 * k + 1} and set(t.test_labels) == {2 * k, 2 * k + 1}
            assert len(t.train) == 8 and len(t.test) == 4
            assert not (_ids(t.train) & seen)
            seen |= _ids(t.train)
    # another seed streams the same samples in another order
    a = build_protocol("split-mnist", data_dir, seed=0, train_per_class=4, test_per_class=2).tasks[0]
    b = build_protocol("split-mnist", data_dir, seed=1, train_per_class=4, test_per_class=2).tasks[0]
    order = lambda task: [r.indices.tobytes() for r in task.train]  # noqa: E731
    assert _ids(a.train) == _ids(b.train) and order(a) != order(b)


def test_permuted_mnist_is_domain_incremental(data_dir):
    p = build_protocol("permuted-mnist", data_dir, seed=0, train_per_class=5, test_per_class=2)
    assert p.kind == "domain-incremental" and p.n_tasks == 5
    base = p.tasks[0]
    for k, t in enumerate(p.tasks):
        assert len(t.train) == 10 and set(t.test_labels) == set(range(10))
        np.testing.assert_array_equal(t.test_labels, base.test_labels)
        # same test images, inputs permuted: the same spike counts per step, other neurons (task > 0)
        for r0, r in zip(base.test, t.test):
            np.testing.assert_array_equal(r0.indptr, r.indptr)
            assert (k == 0) == np.array_equal(r0.indices, r.indices)
    assert sum(len(t.train) for t in p.tasks) == 50


def test_new_class_appears_mid_stream(data_dir):
    p = build_protocol("new-class-mnist", data_dir, seed=0, train_per_class=6, test_per_class=2)
    first, second = p.tasks
    assert p.kind == "live-stream" and 9 not in set(first.train_labels) and 9 in set(second.train_labels)
    assert set(first.test_labels) == set(range(9)) and set(second.test_labels) == {9}
    assert len(first.train) + len(second.train) == 60 and not (_ids(first.train) & _ids(second.train))


def test_cli_runs_methods_side_by_side_and_plots(tmp_path, data_dir, capsys):
    out = tmp_path / "cl"
    args = ["continual", "--protocol", "split-mnist", "--methods", "biograd", "biograd-replay", "onchip"]
    args += ["--train-per-class", "6", "--test-per-class", "3", "--hidden", "20", "--quiet"]
    assert main(args + ["--out", str(out), "--data", str(data_dir)]) == 0
    text = capsys.readouterr().out
    assert "| biograd-replay | 1 |" in text and "| onchip | 1 |" in text
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["method"] for r in rows] == ["biograd", "biograd-replay", "onchip"]
    for r in rows:
        m = r["matrix"]
        assert all(m[i][j] is None for i in range(5) for j in range(i + 1, 5))
        assert all(m[i][j] is not None for i in range(5) for j in range(i + 1))
        assert r["average_accuracy"] == pytest.approx(np.mean(m[4]))
    assert rows[1]["train_samples"] > rows[0]["train_samples"] == 60  # replayed samples counted
    assert (out / "matrix-split-mnist.png").stat().st_size > 1000


def test_lava_clp_learns_prototypes_in_lava(data_dir):
    from biograd.pipeline.continual.clp import LavaCLP

    t = build_protocol("split-mnist", data_dir, seed=0, train_per_class=3, test_per_class=2).tasks[0]
    clp = LavaCLP(784, capacity=len(t.train))
    for r, y in zip(t.train, t.train_labels):
        clp.learn(r, y)
    clp.end_task()
    assert clp.lava_steps > 0 and 2 <= clp.n_prototypes <= len(t.train)
    assert set(clp.labels[: clp.n_prototypes] - 1) == {0, 1}  # labelled by the Readout, 1-based
    # one-shot memory: the training samples are recalled
    assert np.mean(clp.predict(t.train) == t.train_labels) >= 5 / 6
