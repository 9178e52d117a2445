"""The README's Python API example runs as written, on real N-MNIST, and learns."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def _readme_python_block() -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Python API") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_api_example_runs_and_learns(tmp_path, data_dir):
    env = {**os.environ, "BIOGRAD_DATA": str(data_dir)}
    proc = subprocess.run(
        [sys.executable, "-c", _readme_python_block()],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    accuracy = float(re.search(r"test accuracy ([0-9.]+)", proc.stdout).group(1))
    assert accuracy > 0.2, proc.stdout  # chance is 0.1; 200 streaming samples learn well above it
    assert (tmp_path / "my-learner.npz").is_file()
    assert (tmp_path / "runs" / "api").is_dir()


def test_api_loads_every_checkpoint_form_and_encodes_like_the_pipeline(tmp_path):
    import biograd
    from biograd.core.errors import ConfigError
    from biograd.core.events import Geometry, empty_events

    learner = biograd.make_learner(["learner.layer_sizes=[2312, 8, 10]"])
    npz = learner.save(tmp_path / "a.npz")
    again = biograd.load_learner(npz)
    assert all(np.array_equal(a, b) for a, b in zip(learner.weights, again.weights))
    events = empty_events(3)
    events["t"] = [0, 5000, 299_000]
    events["x"], events["y"], events["p"] = [0, 1, 33], [0, 2, 33], [1, 0, 1]
    raster = biograd.encode(events, biograd.settings(), geometry=Geometry(34, 34))
    assert raster.timesteps == 60 and raster.n_spikes == 3
    with pytest.raises(ConfigError, match="geometry"):
        biograd.encode(events)
    with pytest.raises(AttributeError):
        biograd.no_such_function  # noqa: B018
