"""`biograd predict FILE|DIR --checkpoint CKPT`: classify recordings of any supported format.

A recording (AEDAT4, EVT2/EVT3 .raw, DAT, ES, CSV) is cut into windows as live
does (``source.window_us`` / ``source.window_events``, after ``source.roi``,
``resize``, filters and ``polarity``) and gets one line per window; with
``--per-file`` the windows' output scores are summed into one prediction per
file. An N-MNIST ``.bin`` file is one sample. When the model's input does not
match the sensor and no ``source.resize`` is given, the recording is resized
to the model's input (keeping the aspect ratio) and a note says so. In a
folder whose sub-folders are named by digits (N-MNIST's ``Test/<digit>/``),
the folder name is taken as the true label and the accuracy is printed.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from biograd.core.errors import BioGradError, DataNotFoundError
from biograd.pipeline.commands.options import add_config_options, run_config_from_args

log = logging.getLogger(__name__)


def _files(target: Path) -> list[Path]:
    if target.is_file():
        return [target]
    if not target.is_dir():
        raise DataNotFoundError(f"{target}: no such file or folder")
    files = sorted(p for p in target.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise DataNotFoundError(f"{target}: the folder holds no files")
    return files


def _input_geometry(n_inputs: int):
    """The square sensor a model with ``n_inputs`` ON/OFF inputs expects (N-MNIST: 2 x 34 x 34)."""
    from biograd.core.events import Geometry

    for channels in (2, 1):
        side = math.isqrt(n_inputs // channels)
        if side * side * channels == n_inputs:
            return Geometry(side, side)
    return None


def _samples(path: Path, cfg, n_inputs: int):
    """(name, events, geometry, is_window) of one file, as the model will see them."""
    from biograd.core.events import NMNIST_GEOMETRY
    from biograd.sources import make_windower, open_source

    if path.suffix == ".bin":
        from biograd.sources.nmnist import read_nmnist

        yield path.name, read_nmnist(path), NMNIST_GEOMETRY, False
        return
    src = replace(cfg.source, kind="file", path=str(path), speed=0.0)
    stream = open_source(src)
    g = stream.geometry
    if n_inputs not in (g.width * g.height, 2 * g.width * g.height) and not src.resize:
        target = _input_geometry(n_inputs)
        if target is not None:
            print(f"note: {path.name} is {g.width}x{g.height}; resized to the model's {target.width}x{target.height}")
            src = replace(src, resize=(target.width, target.height))
            stream = open_source(src)
    windower = make_windower(src, stream)
    k = 0
    for packet in stream:
        for sample in windower.push(packet):
            yield f"{path.name}#{k}", sample.events, sample.geometry, True
            k += 1
    for sample in windower.flush():
        yield f"{path.name}#{k}", sample.events, sample.geometry, True
        k += 1


def cmd_predict(args) -> int:
    from biograd.core.protocol import Phase
    from biograd.core.transport import WireSample
    from biograd.pipeline.encoder import Encoder
    from biograd.pipeline.load import open_checkpoint
    from biograd.sources.formats import detect

    # a run folder, checkpoint folder or .npz (learner.save, deploy learn --out)
    learner = open_checkpoint(args.checkpoint).learner
    cfg = run_config_from_args(args)
    cfg = replace(cfg, learner=learner.config)  # the model decides inputs and timesteps
    encode = Encoder(cfg)
    n_inputs = learner.config.layer_sizes[0]
    target = Path(args.target).expanduser()
    correct = labelled = 0
    for path in _files(target):
        if path.suffix != ".bin":
            try:
                detect(path)
            except BioGradError as exc:
                if target.is_dir():
                    print(f"skipped {path}: {exc}")
                    continue
                raise
        truth = int(path.parent.name) if target.is_dir() and path.parent.name.isdigit() else None
        total, windows = None, 0
        for name, events, geometry, is_window in _samples(path, cfg, n_inputs):
            if events.size == 0:
                continue
            phase = Phase.LIVE if is_window else Phase.TEST
            predicted, scores = learner.predict(encode(WireSample(name, None, geometry, events, phase, 0, 0, 0)))
            scores = np.asarray(scores, dtype=np.float64)
            windows += 1
            if args.per_file:
                total = scores if total is None else total + scores
                continue
            share = float(scores[int(predicted)] / scores.sum()) if scores.sum() > 0 else 0.0
            span = (int(events["t"][-1]) - int(events["t"][0])) / 1e3
            print(
                f"{name}  predicted {int(predicted)}  ({share:.0%} of output spikes, {events.size} events, {span:.0f} ms)"
            )
            if truth is not None and not is_window:
                correct, labelled = correct + int(int(predicted) == truth), labelled + 1
        if args.per_file:
            if total is None:
                print(f"{path.name}  no events")
                continue
            predicted = int(np.argmax(total))
            print(f"{path.name}  predicted {predicted}  (from {windows} window{'s' * (windows != 1)})")
            if truth is not None:
                correct, labelled = correct + int(predicted == truth), labelled + 1
    if labelled:
        print(f"accuracy {correct / labelled:.4f} on {labelled} files labelled by their folder")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "predict",
        help="classify recordings (any supported format, a file or a folder) with a trained checkpoint",
    )
    p.add_argument("target", metavar="FILE|DIR")
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="run folder, checkpoint folder or .npz")
    p.add_argument("--per-file", action="store_true", help="one prediction per file (scores summed over windows)")
    add_config_options(p)
    p.set_defaults(func=cmd_predict)
