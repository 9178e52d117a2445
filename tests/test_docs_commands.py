"""Every command shown in README.md and docs/*.md runs (issue 12 item 13).

Commands are found, not listed: every line of a ```sh block (a trailing ``\\`` joins lines),
in document order. Each document gets its own scratch folder (the working directory, so
``runs/a`` made by one command is there for the next) and its own ``HOME``; the real data is
``$BIOGRAD_DATA``. Small limits are appended so a command that trains takes seconds; they
come last, so they win over the document's own. A line whose comment holds
``[skip-test: reason]``, or a block after ``<!-- skip-test: reason -->``, is not run (the
reason is required and shown). A command still running after ``LONG_S`` seconds (a learner
waiting for sources, a sink, a dashboard) gets Ctrl-C and must end cleanly. A line ending in
``&`` runs in the background until the document's other commands are done.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCK = re.compile(r"(?:<!--\s*skip-test:(?P<why>[^>]*)-->\s*\n)?```(?P<lang>sh|bash|shell)\n(?P<body>.*?)```", re.S)
SKIP = re.compile(r"\[skip-test:\s*(?P<why>[^\]]+)\]")
LONG_S = 8.0  # a server (learner, sink, background job) gets Ctrl-C after this long
TIMEOUT_S = 180.0  # any command: a hard limit, then it fails
SERVERS = re.compile(r"^biograd (learner|sink)\b")
LIMIT = 40  # samples per split of any run
MAX_EPOCHS = 3
#: Exit statuses of a clean Ctrl-C: 130 from the CLI, -SIGINT when it came before the CLI's handler.
INTERRUPTED = (130, -signal.SIGINT)
#: Appended to commands that process data: small enough for the suite, settings a run accepts.
SMALL = {
    "replay": [
        "--set",
        f"source.limit={LIMIT}",
        "--set",
        "sinks.dashboard_hold=false",
        "--set",
        "sinks.plots=false",
        "--set",
        "sinks.dashboard_port=0",
    ],
    "live": ["--set", "sinks.dashboard_hold=false", "--set", "sinks.plots=false", "--set", "sinks.dashboard_port=0"],
    "eval": ["--set", f"source.limit={LIMIT}"],
    "learner": ["--set", "sinks.dashboard_hold=false", "--set", "sinks.plots=false"],
    "source": ["--set", f"source.limit={LIMIT}"],
    "label": ["--wait", "2"],
    "continual": ["--train-per-class", "3", "--test-per-class", "3", "--seeds", "0", "--quiet"],
}
#: deploy options capped to a few samples (value = the largest allowed; Lava's graph: fewer).
CAPS = {"--train": 20, "--test": 20, "--limit": 10}
LAVA_CAPS = {"--train": 3, "--test": 3, "--limit": 3}
ALLOWED_SKIP_REASON = re.compile(r"\w")


def doc_commands(path: Path) -> list[tuple[int, str, str | None]]:
    """(line number, command, skip reason or None) of every ```sh command in ``path``."""
    text = path.read_text(encoding="utf-8")
    found = []
    for block in BLOCK.finditer(text):
        first_line = text[: block.start("body")].count("\n") + 1
        block_skip = (block.group("why") or "").strip() or None
        lines = block.group("body").split("\n")
        k = 0
        while k < len(lines):
            start = k
            line = lines[k]
            while line.rstrip().endswith("\\") and k + 1 < len(lines):
                k += 1
                line = line.rstrip()[:-1] + " " + lines[k].strip()
            k += 1
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            skip = SKIP.search(stripped)
            reason = block_skip or (skip.group("why").strip() if skip else None)
            found.append((first_line + start, stripped, reason))
    return found


def _without_comment(command: str) -> str:
    """The command without its trailing ``# comment`` (the docs put no ``#`` inside quotes)."""
    return re.split(r"\s#", " " + command, maxsplit=1)[0].strip()


def adapt(command: str, ports: dict[int, int] | None = None) -> tuple[str, bool]:
    """The command as run here (comment dropped, small limits, the default ports moved to
    ``ports`` so suites running side by side never talk to each other's learners), and whether
    it runs in the background."""
    command = _without_comment(command)
    for default, port in (ports or {}).items():
        command = re.sub(rf"(?<=[:\s]){default}\b", str(port), command)
    background = command.endswith("&")
    command = command.rstrip("&").strip()
    words = command.split(" ")
    if words[:1] == ["biograd"] and len(words) > 1:
        sub = words[1]
        if sub == "deploy":
            caps = LAVA_CAPS if "lava" in words else CAPS
            for k, word in enumerate(words[:-1]):
                if word in caps and words[k + 1].isdigit():
                    words[k + 1] = str(min(int(words[k + 1]), caps[word]))
            if len(words) > 2 and words[2] == "run" and "--limit" not in words:
                words += ["--limit", str(caps["--limit"])]
        if sub == "replay" and "--epochs" in words[:-1]:
            k = words.index("--epochs") + 1
            words[k] = str(min(int(words[k]), MAX_EPOCHS))
        words += SMALL.get(sub, [])
    return " ".join(words), background


def all_commands():
    return [(doc, *c) for doc in DOCS for c in doc_commands(doc)]


def test_commands_are_found_in_every_document_with_a_sh_block():
    commands = all_commands()
    docs = {doc.name for doc, *_ in commands}
    assert {"README.md", "sinks.md", "sources.md", "protocol.md", "deploy.md"} <= docs, docs
    for doc, line, _command, reason in commands:
        assert reason is None or ALLOWED_SKIP_REASON.search(reason), f"{doc.name}:{line}: skip without a reason"


def _run(command: str, cwd: Path, env: dict, timeout_s: float, ctrl_c_s: float) -> tuple[int, str, bool]:
    """Run ``command`` in bash; Ctrl-C after ``ctrl_c_s`` (then it must end), killed after ``timeout_s``."""
    proc = subprocess.Popen(
        ["bash", "-c", "exec " + command],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    interrupted = False
    try:
        out, _ = proc.communicate(timeout=ctrl_c_s)
    except subprocess.TimeoutExpired:
        interrupted = True
        os.killpg(proc.pid, signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            return -9, out, True
    return proc.returncode, out, interrupted


def _free_ports(n: int) -> int:
    """A base port with ``n`` consecutive free ports."""
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            base = sock.getsockname()[1]
        try:
            for port in range(base, base + n):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no free ports")


def _env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["HOME"] = str(home)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("BIOGRAD_DATA", str(REPO.parent / "shared" / "data"))
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.mark.parametrize("doc", [d for d in DOCS if doc_commands(d)], ids=lambda d: d.name)
def test_every_command_in_the_docs_runs(doc, tmp_path, data_dir):
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    env = _env(home)
    env["BIOGRAD_DATA"] = str(data_dir)
    base = _free_ports(3)
    env["BIOGRAD_PORT"] = str(base)  # the default ports of every command in this document
    ports = {5555: base, 5556: base + 1, 5557: base + 2, 8765: _free_ports(1)}
    failures, skipped, background = [], [], []
    try:
        for line, command, reason in doc_commands(doc):
            if reason:
                skipped.append(f"{doc.name}:{line} {reason}")
                continue
            if command.startswith("make "):  # make targets run the same CLI through .venv
                command = command.replace("make run", "biograd replay", 1)
            run, in_background = adapt(command, ports)
            if in_background:
                proc = subprocess.Popen(
                    ["bash", "-c", "exec " + run],
                    cwd=work,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    start_new_session=True,
                )
                background.append((line, run, proc))
                time.sleep(1.0)  # a server binds before the next command connects
                continue
            started = time.monotonic()
            server = bool(SERVERS.match(run))
            code, out, interrupted = _run(run, work, env, TIMEOUT_S, LONG_S if server else TIMEOUT_S)
            print(f"{doc.name}:{line} {time.monotonic() - started:5.1f} s rc {code}: {run}")
            if not (code == 0 or (server and interrupted and code in INTERRUPTED)):
                failures.append(f"{doc.name}:{line}: `{run}` exited {code}\n{out[-2500:]}")
        for line, run, proc in background:
            try:
                out, _ = proc.communicate(timeout=LONG_S)
                interrupted = False
            except subprocess.TimeoutExpired:
                interrupted = True
                os.killpg(proc.pid, signal.SIGINT)
                try:
                    out, _ = proc.communicate(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    out, _ = proc.communicate()
            if proc.returncode not in ((0, *INTERRUPTED) if interrupted else (0,)):
                failures.append(f"{doc.name}:{line}: `{run} &` exited {proc.returncode}\n{out[-2500:]}")
    finally:
        for _, _, proc in background:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    print("\n".join(["skipped:"] + skipped))
    assert not failures, "\n\n".join(failures)
