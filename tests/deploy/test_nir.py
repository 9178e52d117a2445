"""NIR export: the graph written by ``biograd deploy export --format nir`` reads back equal."""

import nir
import numpy as np
import pytest
from deploy_helpers import small_learner

from biograd.core.errors import DataFormatError
from biograd.deploy.nir_export import from_nir, simulate_nir, to_nir, write_nir
from biograd.deploy.params import NetworkParams
from biograd.pipeline.cli import main
from biograd.pipeline.datasets import load_rasters


def test_cli_export_reads_back_with_equal_graph_and_parameters(tmp_path, capsys):
    learner = small_learner(sizes=(40, 16, 12, 10), T=10, te=3, seed=5)
    ckpt = learner.save(tmp_path / "net.npz")
    out = tmp_path / "net.nir"
    assert main(["deploy", "export", str(ckpt), "--format", "nir", "--out", str(out), "--dt", "0.002"]) == 0
    assert "NIR graph 40-16-12-10" in capsys.readouterr().out
    graph = nir.read(out)
    assert graph.edges == [
        ("input", "affine0"),
        ("affine0", "lif0"),
        ("lif0", "affine1"),
        ("affine1", "lif1"),
        ("lif1", "affine2"),
        ("affine2", "lif2"),
        ("lif2", "output"),
    ]
    assert {k: type(v).__name__ for k, v in graph.nodes.items()} == {
        "input": "Input",
        "affine0": "Affine",
        "lif0": "LIF",
        "affine1": "Affine",
        "lif1": "LIF",
        "affine2": "Affine",
        "lif2": "LIF",
        "output": "Output",
    }
    params = NetworkParams.from_checkpoint(ckpt)
    written = to_nir(params, dt=0.002)
    for name, node in written.nodes.items():
        back = graph.nodes[name]
        for key, value in node.to_dict().items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(back.to_dict()[key], value, err_msg=f"{name}.{key}")
    for l in range(3):
        np.testing.assert_array_equal(graph.nodes[f"affine{l}"].weight, params.weights[l])
        np.testing.assert_array_equal(graph.nodes[f"affine{l}"].bias, params.biases[l])
        np.testing.assert_array_equal(graph.nodes[f"lif{l}"].v_threshold, np.full(params.layer_sizes[l + 1], 0.3))
    net = from_nir(out)
    assert net.timesteps == 10 and net.dt == 0.002
    np.testing.assert_allclose(net.vdecay[0], 0.3, rtol=1e-12)
    np.testing.assert_allclose(net.input_scale[1], 1.0, rtol=1e-12)
    assert main(["deploy", "export", str(ckpt), "--format", "nir"]) == 2
    assert "needs --out" in capsys.readouterr().err


def test_nir_graph_predicts_like_the_learner_on_real_mnist(data_dir, tmp_path):
    """Train a small net on real MNIST, export, read back, simulate: the same output counts."""
    learner = small_learner(sizes=(784, 32, 10), T=20, te=5, seed=1)
    train, labels = load_rasters("mnist", "train", data_dir, limit=150, seed=3, timesteps=20)
    for r, y in zip(train, labels):
        learner.train_sample(r, int(y))
    test, _ = load_rasters("mnist", "test", data_dir, limit=30, seed=4, timesteps=20)
    path = tmp_path / "mnist.nir"
    write_nir(NetworkParams.from_learner(learner), path)
    net = from_nir(path)
    mine = np.array([learner.predict(r)[1] for r in test])
    theirs = np.array([simulate_nir(net, r.to_dense()) for r in test])
    assert mine.sum() > 0  # the network spikes, so the comparison means something
    np.testing.assert_array_equal(theirs, mine)


def test_a_graph_that_is_not_a_chain_is_refused(tmp_path):
    g = to_nir(NetworkParams.from_learner(small_learner()))
    g.edges.append(("input", "lif0"))
    with pytest.raises(DataFormatError, match="more than one node"):
        from_nir(g)
