"""A damaged N-MNIST folder (issue 13.11): one bad .bin, a dangling symlink and a directory named
*.bin are skipped and counted; the replay goes on and the other samples keep their indices."""

from __future__ import annotations

import shutil
import threading
import time

import zmq

from biograd.core.protocol import MsgType
from biograd.core.transport import Receiver, WireSample
from biograd.pipeline.run_config import build_run_config
from biograd.sources.stage import run_replay_source


def test_bad_files_in_a_folder_are_skipped_and_counted(nmnist_dir, tmp_path, caplog):
    root = tmp_path / "nmnist"
    for split in ("Train", "Test"):
        for digit in (0, 1):
            src = sorted((nmnist_dir / split / str(digit)).glob("*.bin"))[:3]
            (root / split / str(digit)).mkdir(parents=True)
            for f in src:
                shutil.copy(f, root / split / str(digit) / f.name)
    (root / "Train" / "0" / "99999.bin").write_bytes(b"\x01\x02\x03")  # not a multiple of 5 bytes
    (root / "Train" / "1" / "dangling.bin").symlink_to(tmp_path / "nowhere.bin")
    (root / "Train" / "1" / "folder.bin").mkdir()
    cfg = build_run_config(None, [f"source.path={root}", "pipeline.progress=false", f"sinks.run_dir={tmp_path}"])
    ctx = zmq.Context()
    receiver = Receiver("inproc://damaged", ctx=ctx)
    sent: list = []
    thread = threading.Thread(
        target=lambda: sent.append(run_replay_source(cfg, None, "inproc://damaged", threading.Event(), ctx=ctx))
    )
    thread.start()
    items: list = []
    deadline = time.monotonic() + 30
    while not any(getattr(i, "type", None) == MsgType.STREAM_END for i in items) and time.monotonic() < deadline:
        items += receiver.poll(50)
    thread.join(10)
    train = [i for i in items if isinstance(i, WireSample) and i.phase.name == "TRAIN"]
    assert len(train) == 6 and sent == [6 + 6]  # 7 files listed, the bad one skipped; 6 test samples
    assert sorted(s.index for s in train) != list(range(6))  # the bad one's index is not reused
    end = next(i for i in items if getattr(i, "type", None) == MsgType.STREAM_END)
    assert end.payload["skipped"] == 1 and receiver.counters.skipped == 1
    assert "99999.bin" in caplog.text and "2 *.bin entries are not readable files" in caplog.text
    receiver.close()
    ctx.destroy(0)
