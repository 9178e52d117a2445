"""The dashboard teaches the learner: in headless Chromium, clicking a label button (and pressing a
digit key) changes what the learner trains on. Live windows are cut from the real DAVIS346
recording and sent over and over, as a camera would."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from free_ports import free_ports

from biograd.core.protocol import Phase
from biograd.core.transport import Sender
from biograd.pipeline.launch import thread_source
from biograd.pipeline.run_config import build_run_config
from biograd.pipeline.runner import run_learner

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO = Path(__file__).resolve().parents[2]


def _recording_windows(cfg, data_root):
    from biograd.sources import make_windower, open_source

    stream = open_source(cfg.source, data_root)
    windower = make_windower(cfg.source, stream)
    windows = [w for packet in stream for w in windower.push(packet)] + list(windower.flush())
    return [w for w in windows if w.events.size]


@pytest.mark.browser
def test_clicking_a_label_button_changes_what_the_learner_trains_on(davis_file, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing (scripts/ensure-browser.sh installs it with apt)")
    from playwright.sync_api import sync_playwright

    dash_port = free_ports(1)
    predictions = tmp_path / "predictions.jsonl"
    cfg = build_run_config(
        None,
        [
            "source.kind=aedat",
            f"source.path={json.dumps(str(davis_file))}",
            "source.resize=[34, 34]",
            "source.window_us=20000",
            "learner.layer_sizes=[2312, 32, 10]",
            "learner.batch_size=1",
            f"sinks.run_dir={json.dumps(str(tmp_path / 'run'))}",
            "sinks.dashboard=true",
            f"sinks.dashboard_port={dash_port}",
            "sinks.plots=false",
            f"sinks.predictions_file={json.dumps(str(predictions))}",
            f"pipeline.port={free_ports(3)}",
        ],
    )
    windows = _recording_windows(cfg, None)

    def camera(address, output, ctx, stop, position):
        """The recording's windows, again and again, 10 per second."""
        sender = Sender(address, ctx, flow="drop", name="camera", kind="aedat", stop=stop)
        n = 0
        while not stop.wait(0.1):
            w = windows[n % len(windows)]
            sender.send_sample(f"live/{n:05d}", None, w.geometry, w.events, Phase.LIVE, 0, n)
            n += 1
        sender.close("stopped")
        return n

    stop = threading.Event()
    result = {}

    def body():
        try:
            result["summary"] = run_learner(cfg, None, stop=stop, start_source=thread_source(camera), live=True)
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=body)
    thread.start()

    def trained():
        if not predictions.exists():
            return []
        rows = [json.loads(line) for line in predictions.read_text().splitlines() if line.strip()]
        return [(r["sample_id"], r["label"]) for r in rows if r["label"] is not None]

    try:
        url = f"http://127.0.0.1:{dash_port}/"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1040, "height": 760})
                errors = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                deadline = time.monotonic() + 60
                while True:  # the learner compiles before it serves
                    try:
                        page.goto(url)
                        break
                    except Exception:
                        assert time.monotonic() < deadline and thread.is_alive(), result
                        time.sleep(0.5)
                page.wait_for_function("document.getElementById('status').textContent === 'live'", timeout=30_000)
                page.wait_for_function("!document.getElementById('teach-7').disabled", timeout=10_000)
                assert trained() == []  # nothing labelled: the learner only predicts
                page.click("#teach-7")
                page.wait_for_function(
                    "document.getElementById('answer').textContent.includes('label 7 queued')", timeout=10_000
                )
                deadline = time.monotonic() + 20
                while not trained():
                    assert time.monotonic() < deadline, "no window was trained on after the click"
                    time.sleep(0.1)
                first = trained()
                assert [label for _, label in first] == [7]
                page.keyboard.press("3")  # the keyboard teaches too
                deadline = time.monotonic() + 20
                while len(trained()) < 2:
                    assert time.monotonic() < deadline, "no window was trained on after the key press"
                    time.sleep(0.1)
                page.wait_for_function("document.getElementById('samples').textContent === '2'", timeout=10_000)
                artifacts = REPO / "test-artifacts"
                artifacts.mkdir(exist_ok=True)
                page.screenshot(path=str(artifacts / "dashboard-teach.png"), full_page=True)
            finally:
                browser.close()
    finally:
        stop.set()
        thread.join(timeout=60)
    assert "error" not in result, result.get("error")
    labelled = trained()
    assert [label for _, label in labelled] == [7, 3]
    assert labelled[0][0] != labelled[1][0]  # each label went to its own window
    assert result["summary"]["samples"] == 2
    assert not errors, errors
