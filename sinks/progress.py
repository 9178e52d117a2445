"""A terminal progress bar as a sink: samples done (of the sources' announced total), the
phase and epoch, events per second and the running accuracy of the current phase."""

from __future__ import annotations

import sys
import time


class ProgressBar:
    """tqdm on stderr, fed by prediction records. Hidden when stderr is not a terminal unless
    ``always`` (``pipeline.progress = true`` asks for a bar where one can be seen)."""

    def __init__(self, always: bool = False, file=None):
        self.always = always
        self.file = file or sys.stderr
        self._bar = None
        self._t0 = time.monotonic()
        self._events = 0
        self._done = 0
        self._acc: dict[tuple[str, int], list[int]] = {}  # (phase, epoch) -> [correct, labelled]

    def _get(self):
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(unit="sample", dynamic_ncols=True, disable=False if self.always else None, file=self.file)
        return self._bar

    def stream_started(self, info: dict) -> None:
        total = info.get("total")
        bar = self._get()
        if isinstance(total, int) and total > 0:
            bar.total = (bar.total or 0) + total
            bar.refresh()

    def handle(self, record: dict) -> None:
        if record.get("type") != "prediction":
            return
        phase, epoch = record["phase"], int(record.get("epoch", 0))
        acc = self._acc.setdefault((phase, epoch), [0, 0])
        if record.get("correct") is not None:
            acc[0] += int(record["correct"])
            acc[1] += 1
        self._events += int(record.get("events", 0))
        self._done += 1
        bar = self._get()
        if bar.disable:
            return
        bar.update(1)
        if self._done % 10 == 0:
            elapsed = max(time.monotonic() - self._t0, 1e-9)
            bar.set_description(f"{phase} e{epoch}", refresh=False)
            bar.set_postfix(
                {"ev/s": f"{self._events / elapsed:,.0f}", "acc": f"{acc[0] / acc[1]:.3f}" if acc[1] else "-"},
                refresh=False,
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
