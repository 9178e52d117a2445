"""The layer contract of scripts/check_layers.py holds, and the checker does catch a violation."""

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("check_layers", REPO / "scripts" / "check_layers.py")
check_layers = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_layers)


def test_no_module_imports_a_layer_above_or_beside_it():
    assert check_layers.violations() == []


def test_checker_flags_upward_sideways_and_top_level_imports(tmp_path):
    for folder in ("biograd/core", "sources", "learner", "sinks", "deploy", "pipeline"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "biograd/core/bad.py").write_text("def f():\n    from biograd.pipeline.runner import replay\n")
    (tmp_path / "sources/bad.py").write_text("import biograd.learner.encoding\n")
    (tmp_path / "deploy/ok.py").write_text("from biograd.learner import kernels\nfrom biograd.core import errors\n")
    (tmp_path / "deploy/bad.py").write_text("from biograd.sinks import plots\n")
    (tmp_path / "sinks/old.py").write_text("from pipeline.errors import BioGradError\n")
    (tmp_path / "learner/typing_only.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from biograd.sources.base import Sample\n"
    )
    found = "\n".join(check_layers.violations(tmp_path))
    assert "biograd/core/bad.py:2: imports biograd.pipeline.runner" in found
    assert "sources/bad.py:1: imports biograd.learner.encoding" in found
    assert "deploy/bad.py:1: imports biograd.sinks" in found
    assert "sinks/old.py:1: imports pipeline.errors" in found
    assert "deploy/ok.py" not in found and "typing_only" not in found
