"""The project's own setup: bootstrap refuses cleanly without Python 3.10; the CLI shows built stages."""

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_bootstrap_without_python310_says_what_to_install_and_builds_nothing(tmp_path):
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "bootstrap.sh", tmp_path / "scripts")
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    # A PATH with the shell tools the script uses and no Python at all, and no pyenv.
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("dirname", "cat", "rm", "touch"):
        (tools / tool).symlink_to(shutil.which(tool))
    env = {"PATH": str(tools), "HOME": str(tmp_path / "home"), "PYENV_ROOT": str(tmp_path / "nopyenv")}
    proc = subprocess.run(
        [shutil.which("bash"), "scripts/bootstrap.sh"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert "Python 3.10 not found" in proc.stderr
    assert "pyenv install 3.10" in proc.stderr
    assert not (tmp_path / ".venv").exists()


def test_bootstrap_accepts_explicit_interpreter_only_if_310(tmp_path):
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "bootstrap.sh", tmp_path / "scripts")
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    env = dict(os.environ, BIOGRAD_PYTHON="/bin/true")
    proc = subprocess.run(
        ["bash", "scripts/bootstrap.sh"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1
    assert "BIOGRAD_PYTHON=/bin/true is not a working Python 3.10" in proc.stderr


def test_every_shown_subcommand_has_a_handler():
    from biograd.pipeline.cli import build_parser

    parser = build_parser()
    help_text = parser.format_help()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for command, subparser in sub.choices.items():
        assert command in help_text
        assert subparser.get_default("func") is not None or subparser._subparsers is not None, command


def test_installed_package_has_one_import_name(tmp_path):
    """Outside the repository only ``biograd`` imports; the stage folders are its subpackages."""
    code = (
        "import importlib, json\n"
        "out = {}\n"
        "for name in ('pipeline', 'sources', 'learner', 'sinks', 'deploy'):\n"
        "    try:\n"
        "        importlib.import_module(name); out[name] = 'importable'\n"
        "    except ImportError:\n"
        "        out[name] = 'missing'\n"
        "    out['biograd.' + name] = importlib.import_module('biograd.' + name).__file__\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run(
        [str(REPO / ".venv" / "bin" / "python"), "-c", code],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    import json

    found = json.loads(proc.stdout)
    for name in ("pipeline", "sources", "learner", "sinks", "deploy"):
        assert found[name] == "missing", f"top-level {name!r} must not be importable once installed"
        assert Path(found["biograd." + name]).parent == REPO / name


def test_every_stage_subpackage_is_packaged():
    import tomli

    setup = tomli.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    stages = ("pipeline", "sources", "learner", "sinks", "deploy")
    on_disk = {
        "biograd." + ".".join(p.parent.relative_to(REPO).parts)
        for stage in stages
        for p in (REPO / stage).rglob("__init__.py")
    }
    on_disk |= {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "biograd").rglob("__init__.py")}
    assert on_disk <= set(setup["packages"]), sorted(on_disk - set(setup["packages"]))
