"""``biograd deploy export|run|learn`` end to end on small networks."""

import numpy as np
from deploy_helpers import small_learner

from biograd.learner.network import BioGradLearner
from biograd.pipeline.cli import main


def test_export_writes_the_integer_network(learner, tmp_path, capsys):
    ckpt = learner.save(tmp_path / "net.npz")
    out = tmp_path / "loihi.npz"
    assert main(["deploy", "export", str(ckpt), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "W rel rms" in text and "16x40" in text
    with np.load(out, allow_pickle=False) as z:
        w0 = z["W0"]
        assert w0.shape == (16, 40) and np.all(w0 % 2 == 0) and np.abs(w0).max() <= 254
        assert int(z["dv0"]) == round(4096 * 0.7) and int(z["timesteps"]) == 10


def test_export_of_a_broken_file_is_one_clear_line(tmp_path, capsys):
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"\x00" * 10)
    assert main(["deploy", "export", str(bad)]) == 2
    assert "broken.npz" in capsys.readouterr().err


def test_run_on_real_mnist_compares_with_the_learner(tmp_path, data_dir, capsys):
    learner = small_learner(sizes=(784, 20, 10), T=20, te=5, seed=2)
    ckpt = learner.save(tmp_path / "mnist.npz")
    assert (
        main(
            [
                "deploy",
                "run",
                str(ckpt),
                "--dataset",
                "mnist",
                "--limit",
                "4",
                "--backend",
                "floating_pt",
                "--compare",
                "--data",
                str(data_dir),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "Lava floating_pt accuracy" in out and "same prediction as Lava on 1.0000" in out


def test_learn_emulated_on_real_mnist_saves_a_checkpoint(tmp_path, data_dir, capsys):
    out = tmp_path / "learned.npz"
    assert (
        main(
            [
                "deploy",
                "learn",
                "--dataset",
                "mnist",
                "--hidden",
                "16",
                "--train",
                "30",
                "--test",
                "10",
                "--out",
                str(out),
                "--data",
                str(data_dir),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "on-chip learning (emulate): 30 samples" in text and "test accuracy" in text
    learned = BioGradLearner.load(out)
    assert learned.config.layer_sizes == (784, 16, 10)
    # weights sit on the on-chip grid (2^-11)
    w = learned.weights[0] * 2**11
    np.testing.assert_array_equal(w, np.round(w))


def test_learn_in_lava_and_in_the_emulation_give_the_same_network(tmp_path, data_dir, capsys):
    """Real MNIST through the CLI: the Lava graph and the Numba emulation learn identical integers."""
    common = [
        "--dataset",
        "mnist",
        "--hidden",
        "8",
        "--train",
        "3",
        "--test",
        "3",
        "--data",
        str(data_dir),
        "--set",
        "deploy.onchip_lr=0.01",
    ]
    assert main(["deploy", "learn", "--engine", "lava", "--out", str(tmp_path / "lava.npz")] + common) == 0
    assert main(["deploy", "learn", "--engine", "emulate", "--out", str(tmp_path / "emu.npz")] + common) == 0
    text = capsys.readouterr().out
    assert "on-chip learning (lava): 3 samples" in text
    lava, emu = BioGradLearner.load(tmp_path / "lava.npz"), BioGradLearner.load(tmp_path / "emu.npz")
    fresh = BioGradLearner(lava.config)
    for l in range(2):
        np.testing.assert_array_equal(lava.weights[l], emu.weights[l])
    assert any(np.any(np.abs(lava.weights[l] - fresh.weights[l]) > 2**-10) for l in range(2))


def test_learn_shows_progress_and_derives_delta_scale_from_the_depth(tmp_path, data_dir, capsys):
    """A 2-hidden-layer checkpoint learns without --set deploy.delta_scale; progress is printed."""
    ckpt = small_learner(sizes=(784, 12, 8, 10), T=20, te=5, seed=3).save(tmp_path / "deep.npz")
    args = ["deploy", "learn", str(ckpt), "--dataset", "mnist", "--train", "20", "--test", "4"]
    assert main(args + ["--data", str(data_dir)]) == 0
    text = capsys.readouterr().out
    assert "delta_scale = [640.0, 640.0, 64.0] (default for 3 weight layers)" in text
    lines = [line for line in text.splitlines() if "samples (" in line and "running accuracy" in line]
    assert len(lines) >= 2 and lines[-1].strip().startswith("20/20 samples"), text
    assert main(args + ["--data", str(data_dir), "--quiet", "--set", "deploy.delta_scale=[100.0,64.0]"]) == 2
    assert "give 1 value or 3" in capsys.readouterr().err
