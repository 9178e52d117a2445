"""What the sinks cost next to the learner, measured in one run on real N-MNIST.

For each sink: the time to handle one sample's records (a prediction, with its input frame for
the dashboard, and a metrics row: the worst case, ``pipeline.metrics_every = 1``), next to the
time the default N-MNIST learner (2312-500-100-10) takes to train on one sample. Also one
checkpoint save and one ``biograd report``.

    BIOGRAD_DATA=../shared/data .venv/bin/python bench/sinks.py [--samples 200] [--json PATH]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from biograd.core.data import data_root  # noqa: E402
from biograd.core.records import event_frame  # noqa: E402
from biograd.learner.config import NMNIST_LEARNER  # noqa: E402
from biograd.learner.encoding import encode_nmnist  # noqa: E402
from biograd.learner.network import BioGradLearner  # noqa: E402
from biograd.sinks.checkpoints import CheckpointManager  # noqa: E402
from biograd.sinks.dashboard import Dashboard  # noqa: E402
from biograd.sinks.metrics import MetricsLog  # noqa: E402
from biograd.sinks.plots import make_plots  # noqa: E402
from biograd.sinks.predictions import PredictionPublisher, PredictionWriter  # noqa: E402
from biograd.sources.nmnist import list_split, read_nmnist  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--data", help="dataset root (default $BIOGRAD_DATA)")
    parser.add_argument("--json", metavar="PATH", help="write the figures as one flat JSON object")
    args = parser.parse_args()

    files = list_split(data_root(args.data) / "nmnist-1k", "train")[: args.samples]
    samples = [(read_nmnist(f), label) for f, label in files]
    learner = BioGradLearner(NMNIST_LEARNER)
    rasters = [encode_nmnist(ev) for ev, _ in samples]
    learner.train_sample(rasters[0], samples[0][1])  # compile / warm up before timing

    records = []
    t0 = time.perf_counter()
    for i, (raster, (events, label)) in enumerate(zip(rasters, samples)):
        r = learner.train_sample(raster, label)
        records.append(
            (
                {
                    "type": "prediction",
                    "sample_id": f"train/{i}",
                    "index": i,
                    "phase": "train",
                    "predicted": r.prediction,
                    "label": label,
                    "correct": r.prediction == label,
                    "counts": r.counts.tolist(),
                    "events": int(events.shape[0]),
                    "time": time.time(),
                },
                {
                    "type": "metrics",
                    "samples": learner.samples_seen,
                    "phase": "train",
                    "accuracy_running": 0.5,
                    "loss": r.loss,
                    "events_per_s": 1e5,
                    "samples_per_s": 30.0,
                    "dropped": 0,
                    "invalid": 0,
                    "gaps": 0,
                    "sleeps": learner.sleeps,
                    "time": time.time(),
                },
            )
        )
    learner_us = (time.perf_counter() - t0) / len(rasters) * 1e6
    frames = [event_frame(ev, 34, 34) for ev, _ in samples]

    tmp = Path(tempfile.mkdtemp(prefix="bench-sinks-"))
    sinks = {
        "metrics_jsonl": lambda: MetricsLog(tmp / "m.jsonl", "jsonl"),
        "metrics_csv": lambda: MetricsLog(tmp / "m.csv", "csv", n_hidden=2),
        "predictions_file": lambda: PredictionWriter(io.StringIO()),
        "predictions_pub": lambda: PredictionPublisher("tcp://127.0.0.1:0"),
        "dashboard_with_frames": lambda: Dashboard(port=0),
    }
    figures = {"learner_train_us_per_sample": learner_us}
    rows = []
    for name, make in sinks.items():
        sink = make()
        with_frames = name.startswith("dashboard")
        t0 = time.perf_counter()
        for i, (prediction, metrics) in enumerate(records):
            if with_frames:
                prediction = {**prediction, "frame": frames[i]}
            sink.handle(prediction)
            sink.handle(metrics)
        us = (time.perf_counter() - t0) / len(records) * 1e6
        sink.close()
        figures[f"{name}_us_per_sample"] = us
        rows.append((name, us, us / learner_us))

    manager = CheckpointManager(tmp, keep=1)
    t0 = time.perf_counter()
    manager.save_final(learner)
    figures["checkpoint_save_ms"] = (time.perf_counter() - t0) * 1e3
    log = MetricsLog(tmp / "metrics.jsonl")
    for prediction, metrics in records:
        log.handle(prediction)
        log.handle(metrics)
    log.close()
    t0 = time.perf_counter()
    made, _ = make_plots(tmp)
    figures["report_s"] = time.perf_counter() - t0
    frame_bytes = np.mean([len(json.dumps(f)) for f in frames])
    figures["frame_json_bytes"] = float(frame_bytes)

    print(f"{len(records)} N-MNIST samples; learner (2312-500-100-10, batch 128) {learner_us:.0f} µs/sample\n")
    print(f"{'sink (prediction + metrics per sample)':40s} {'µs/sample':>10s} {'/ learner':>10s}")
    for name, us, ratio in rows:
        print(f"{name:40s} {us:10.1f} {ratio:10.4f}")
    print(
        f"\ncheckpoint save {figures['checkpoint_save_ms']:.1f} ms = "
        f"{figures['checkpoint_save_ms'] * 1e3 / learner_us:.1f} learner samples; "
        f"report ({len(made)} PNGs) {figures['report_s']:.2f} s; frame JSON {frame_bytes:.0f} B"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
