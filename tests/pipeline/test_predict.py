"""``biograd predict FILE|DIR --checkpoint CKPT`` on recordings of several formats and on N-MNIST files."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace

import numpy as np
import pytest

from biograd.core.events import NMNIST_GEOMETRY, to_faery
from biograd.core.protocol import Phase
from biograd.core.transport import WireSample
from biograd.learner.config import LearnerConfig
from biograd.learner.network import BioGradLearner
from biograd.pipeline.cli import main
from biograd.pipeline.encoder import Encoder
from biograd.pipeline.run_config import build_run_config
from biograd.sources.aedat4 import AedatRecording
from biograd.sources.nmnist import read_nmnist

faery = pytest.importorskip("faery")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    cfg = LearnerConfig(layer_sizes=(2 * 34 * 34, 16, 10), timesteps=12, error_start=4, seed=1, sleep=False)
    return BioGradLearner(cfg).save(tmp_path_factory.mktemp("ckpt") / "net.npz")


@pytest.mark.parametrize("name", ["rec.evt3.raw", "rec.csv", "rec.aedat4"])
def test_predict_a_recording_per_window_any_format(tmp_path, data_dir, checkpoint, name, capsys):
    events = AedatRecording(data_dir / "aedat4" / "davis346.aedat4").read_all()
    faery.events_stream_from_array(to_faery(events), (346, 260)).to_file(tmp_path / name)
    assert (
        main(["predict", str(tmp_path / name), "--checkpoint", str(checkpoint), "--set", "source.window_events=20000"])
        == 0
    )
    out = capsys.readouterr().out
    assert f"note: {name} is 346x260; resized to the model's 34x34" in out
    lines = re.findall(rf"{re.escape(name)}#(\d+)  predicted (\d)", out)
    assert len(lines) == -(-events.size // 20000)  # every window, the last partial one too
    assert main(["predict", str(tmp_path / name), "--checkpoint", str(checkpoint), "--per-file"]) == 0
    assert re.search(rf"^{re.escape(name)}  predicted \d  \(from \d+ windows?\)$", capsys.readouterr().out, re.M)


def test_predict_nmnist_folder_matches_the_learner(tmp_path, nmnist_dir, checkpoint, capsys):
    for digit in ("3", "7"):
        (tmp_path / digit).mkdir()
        for f in sorted((nmnist_dir / "Test" / digit).glob("*.bin"))[:2]:
            shutil.copy(f, tmp_path / digit / f.name)
    assert main(["predict", str(tmp_path), "--checkpoint", str(checkpoint)]) == 0
    out = capsys.readouterr().out
    learner = BioGradLearner.load(checkpoint)
    encode = Encoder(replace(build_run_config(None, []), learner=learner.config))
    for f in sorted(tmp_path.rglob("*.bin")):
        ev = read_nmnist(f)
        want, _ = learner.predict(encode(WireSample(f.name, None, NMNIST_GEOMETRY, ev, Phase.TEST, 0, 0, 0)))
        assert re.search(rf"^{f.name}  predicted {int(want)} ", out, re.M), (f.name, out)
    got = re.findall(r"predicted (\d)", out)
    truth = [int(f.parent.name) for f in sorted(tmp_path.rglob("*.bin"))]
    acc = np.mean([int(g) == t for g, t in zip(got, truth)])
    assert f"accuracy {acc:.4f} on 4 files labelled by their folder" in out


def test_predict_of_a_missing_path_is_one_clear_line(checkpoint, tmp_path, capsys):
    assert main(["predict", str(tmp_path / "nope.raw"), "--checkpoint", str(checkpoint)]) == 2
    assert "nope.raw: no such file or folder" in capsys.readouterr().err
