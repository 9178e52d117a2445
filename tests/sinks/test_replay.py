"""End to end on real N-MNIST: a replay writes metrics, checkpoints and PNGs; resume == uninterrupted;
the dashboard in headless Chromium during a replay."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
from free_ports import free_ports

from biograd.learner.network import BioGradLearner
from biograd.pipeline.cli import main
from biograd.pipeline.run_config import build_run_config
from biograd.sinks.checkpoints import list_checkpoints, load_checkpoint
from biograd.sinks.metrics import read_metrics
from biograd.sinks.plots import PLOT_NAMES

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Small enough for the test budget, large enough for several batches, sleeps and checkpoints.
TRAIN_LIMIT = 96
SETTINGS = [
    f"source.limit={TRAIN_LIMIT}",
    "learner.batch_size=16",
    "learner.sleep_every=0",  # a sleep after every batch update: 6 sleep records
    "learner.layer_sizes=[2312, 64, 10]",
    "sinks.checkpoint_every=40",
    "sinks.keep_checkpoints=5",
    "pipeline.metrics_every=8",
    "pipeline.progress=false",
]


def _replay(run_dir, data_dir, *extra):
    args = ["replay", "--run-dir", str(run_dir), "--data", str(data_dir)]
    for setting in SETTINGS:
        args += ["--set", setting]
    assert main(args + list(extra)) == 0


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory, data_dir):
    """The uninterrupted replay, watched by `biograd sink metrics` in its own process."""
    base = tmp_path_factory.mktemp("replay")
    run = base / "straight"
    port = free_ports()
    watcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "biograd.pipeline.cli",
            "sink",
            "metrics",
            "--connect",
            f"tcp://127.0.0.1:{port}",
            "--out",
            str(base / "watched.csv"),
            "--hidden",
            "1",
            "--timeout",
            "120",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # PUB/SUB keeps nothing for late joiners: the learner waits until the sink has subscribed.
        _replay(run, data_dir, "--set", f"pipeline.output=tcp://127.0.0.1:{port}", "--set", "pipeline.wait_for_sinks=1")
        out, err = watcher.communicate(timeout=60)
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()
    assert watcher.returncode == 0, err
    return run, base / "watched.csv"


def test_replay_writes_metrics_checkpoints_and_every_png(straight_run):
    straight_run, _ = straight_run
    rows = read_metrics(straight_run / "metrics.jsonl")
    kinds = [r["type"] for r in rows]
    metrics = [r for r in rows if r["type"] == "metrics" and r["phase"] == "train"]
    assert metrics[-1]["samples"] == TRAIN_LIMIT
    assert all(0 <= r["accuracy_running"] <= 1 for r in metrics if r["accuracy_running"] is not None)
    # One row per 8 samples carries their input rate (rows at a split end may cover no samples).
    assert sum(r["events_per_s"] > 0 for r in metrics) >= TRAIN_LIMIT // 8
    sleeps = [r for r in rows if r["type"] == "sleep"]
    assert len(sleeps) == TRAIN_LIMIT // 16 and all(len(r["angle_deg"]) == 1 for r in sleeps)
    assert "angle_deg" in metrics[-1]  # the latest angle rides on metrics rows
    evals = [r for r in rows if r["type"] == "eval"]
    assert len(evals) == 1 and evals[0]["split"] == "test"
    assert np.asarray(evals[0]["confusion"]).sum() == evals[0]["samples"] > 0
    assert kinds[-1] == "end" and "confusion" in kinds
    found = [c.samples for c in list_checkpoints(straight_run)]
    assert found == [40, 80, TRAIN_LIMIT]
    for name in PLOT_NAMES:
        image = mpimg.imread(straight_run / "plots" / f"{name}.png")
        assert image.shape[0] > 200 and image.shape[1] > 300


def test_a_metrics_sink_in_its_own_process_logs_the_run_from_the_output_socket(straight_run):
    run, watched = straight_run
    rows = read_metrics(watched)
    own = read_metrics(run / "metrics.jsonl")
    assert rows[-1]["type"] == "end"
    assert rows[-1]["samples"] == TRAIN_LIMIT
    # The learner waited for it (pipeline.wait_for_sinks=1), so it logged the whole run.
    logged = [
        (r["type"], r.get("samples"), r.get("accuracy_running")) for r in rows if r["type"] in ("metrics", "eval")
    ]
    reference = [
        (r["type"], r.get("samples"), r.get("accuracy_running")) for r in own if r["type"] in ("metrics", "eval")
    ]
    assert logged == reference
    confusion = [r for r in rows if r["type"] == "confusion" and r["phase"] == "test"]
    assert confusion and np.asarray(confusion[0]["confusion"]).sum() > 0


def test_resume_from_a_checkpoint_equals_the_uninterrupted_run(straight_run, data_dir, tmp_path):
    straight_run, _ = straight_run
    ckpt = straight_run / "checkpoints" / "ckpt-000000040"
    resumed_dir = tmp_path / "resumed"
    # The run's saved settings carry over, its session's output socket and sink wait too: undo those.
    _replay(
        resumed_dir,
        data_dir,
        "--resume",
        str(ckpt),
        "--set",
        "sinks.plots=false",
        "--set",
        "pipeline.output=",
        "--set",
        "pipeline.wait_for_sinks=0",
    )
    straight = load_checkpoint(straight_run, BioGradLearner.load).learner
    resumed = load_checkpoint(resumed_dir, BioGradLearner.load).learner
    assert resumed.samples_seen == straight.samples_seen == TRAIN_LIMIT
    for name in ("weights", "biases", "feedback"):
        for a, b in zip(getattr(straight, name), getattr(resumed, name)):
            assert np.array_equal(a, b), name
    # The resumed run saw only the samples after the checkpoint.
    rows = read_metrics(resumed_dir / "metrics.jsonl")
    first = next(r for r in rows if r["type"] == "metrics" and r["phase"] == "train")
    assert first["samples"] > 40
    assert [c.samples for c in list_checkpoints(resumed_dir)] == [80, TRAIN_LIMIT]


@pytest.mark.browser
def test_dashboard_shows_a_replay_live_in_headless_chromium(data_dir, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing (scripts/ensure-browser.sh installs it with apt)")
    from playwright.sync_api import sync_playwright

    from biograd.pipeline import runner

    port = free_ports()
    cfg = build_run_config(
        None,
        [
            f"sinks.run_dir={json.dumps(str(tmp_path / 'run'))}",
            "sinks.dashboard=true",
            f"sinks.dashboard_port={port}",
            f"pipeline.port={free_ports()}",
            "sinks.plots=false",
            "learner.batch_size=16",
            "pipeline.metrics_every=5",
            "pipeline.progress=false",
            # more epochs than the test can watch: on an idle machine one epoch of
            # nmnist-1k ends within the browser phase and the dashboard goes away;
            # `stop` ends the replay when the test is done
            "source.epochs=50",
        ],
    )
    stop = threading.Event()
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("summary", runner.replay(cfg, data_dir, stop=stop)))
    thread.start()
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "state.json", timeout=2) as response:
                    if json.loads(response.read())["samples"] > 0:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "dashboard never showed a trained sample"
            assert thread.is_alive(), f"replay ended early: {result}"
            time.sleep(0.1)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1040, "height": 640})
                errors, polls = [], []
                page.on("request", lambda req: polls.append(time.monotonic()) if "state.json" in req.url else None)
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
                page.goto(url)
                page.wait_for_function("document.getElementById('status').textContent === 'live'", timeout=10_000)
                # Read the page's own numbers every 100 ms for 2 s, inside the browser.
                started = time.monotonic()
                seen = page.evaluate("""() => new Promise((done) => {
                    const ids = ['samples', 'online', 'events-per-s', 'angle', 'predicted', 'label'];
                    const out = [];
                    const timer = setInterval(() => {
                        out.push(Object.fromEntries(ids.map((k) => [k, document.getElementById(k).textContent])));
                        if (out.length >= 20) { clearInterval(timer); done(out); }
                    }, 100);
                })""")
                polls = [t for t in polls if t >= started]
                lit = page.evaluate("""() => {
                    const c = document.getElementById('frame');
                    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                    let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] + d[i+1] + d[i+2] > 60) n++;
                    return [c.width, c.height, n]; }""")
                artifacts = REPO / "test-artifacts"
                artifacts.mkdir(exist_ok=True)
                page.screenshot(path=str(artifacts / "dashboard.png"))
                assert thread.is_alive(), f"replay ended while the browser was watching: {result}"
            finally:
                browser.close()
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not errors, errors
    assert len(polls) >= 4, f"the page polled {len(polls)} times in 2 s (needs >= 2 updates/s)"
    samples = [int(s["samples"]) for s in seen]
    assert samples[-1] > samples[0], seen  # the numbers move while learning runs
    assert len({s["samples"] for s in seen}) >= 4, seen  # ... several times in those 2 s
    assert len({s["events-per-s"] for s in seen}) >= 2, seen
    last = seen[-1]
    assert last["predicted"] in tuple("0123456789") and last["label"] in tuple("0123456789")
    assert last["online"].endswith("%") and last["angle"].endswith("°")
    assert lit[:2] == [34, 34] and lit[2] > 50, lit  # an N-MNIST digit's events on the canvas
    assert (REPO / "test-artifacts" / "dashboard.png").stat().st_size > 10_000
    assert result["summary"]["reason"] == "signal"
