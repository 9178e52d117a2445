"""The learner stage outlives its source (issue 12 item 6): a finished recording with
--keep-running, or a camera/stream source that is started again after it ended."""

from __future__ import annotations

import json
import threading
import time

from free_ports import free_ports

from biograd.core.transport import send_control
from biograd.pipeline.launch import thread_source
from biograd.pipeline.run_config import build_run_config


def test_after_the_recording_ends_the_learner_still_answers_until_shutdown(davis_file, tmp_path):
    from biograd.pipeline.runner import live

    port = free_ports(3)
    cfg = build_run_config(
        None,
        [
            "source.kind=aedat",
            f"source.path={json.dumps(str(davis_file))}",
            "source.resize=[34, 34]",
            "source.window_us=20000",
            "learner.layer_sizes=[2312, 16, 10]",
            f"sinks.run_dir={json.dumps(str(tmp_path / 'run'))}",
            "sinks.plots=false",
            f"pipeline.port={port}",
            f"sinks.predictions_file={json.dumps(str(tmp_path / 'predictions.jsonl'))}",
        ],
    )
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("summary", live(cfg, None, outlive=True)))
    thread.start()
    control = f"tcp://127.0.0.1:{port + 1}"
    try:
        # The 0.13 s recording is over once its windows were predicted; the learner is still up.
        predictions = tmp_path / "predictions.jsonl"
        deadline, seen = time.monotonic() + 60, -1
        while True:
            n = len(predictions.read_text().splitlines()) if predictions.exists() else 0
            if n >= 5 and n == seen:
                break
            assert time.monotonic() < deadline and thread.is_alive(), result
            seen = n
            time.sleep(1.0)
        assert thread.is_alive()
        answer = send_control(control, "pause")[-1]
        assert answer["status"] == "done" and answer["paused"] is True
        assert send_control(control, "shutdown")[-1]["status"] == "done"
    finally:
        thread.join(30)
    summary = result["summary"]
    assert summary["reason"] == "shutdown" and 5 <= summary["processed"] <= 8


def test_a_stream_source_that_ended_is_started_again_and_the_learner_stays_alive():
    calls = []

    def target(address, output, ctx, stop, position):
        calls.append(time.monotonic())
        return 3  # a camera that sent 3 windows, then dropped

    stop = threading.Event()
    alive, join = thread_source(target, outlive=True, restart_s=0.05)(None, None, None, stop, None)
    deadline = time.monotonic() + 10
    while len(calls) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(calls) >= 3 and alive()
    stop.set()
    join()


def test_a_source_that_fails_before_sending_anything_fails_the_run():
    def target(address, output, ctx, stop, position):
        raise OSError("no camera")

    stop = threading.Event()
    alive, join = thread_source(target, outlive=True, restart_s=0.05)(None, None, None, stop, None)
    time.sleep(0.3)
    assert not alive()
    try:
        join()
    except OSError as exc:
        assert "no camera" in str(exc)
    else:
        raise AssertionError("the failure was not surfaced")
