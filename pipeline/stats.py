"""What the learner stage counts: per-phase accuracy and loss, and test confusion matrices."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class PhaseStats:
    """Running figures of one phase (train / test / live) of one epoch."""

    correct: int = 0
    labelled: int = 0
    loss_sum: float = 0.0
    losses: int = 0

    def add(self, correct: bool | None, loss: float | None) -> None:
        if correct is not None:
            self.correct += int(correct)
            self.labelled += 1
        if loss is not None and math.isfinite(loss):
            self.loss_sum += loss
            self.losses += 1

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None

    @property
    def loss(self) -> float | None:
        return self.loss_sum / self.losses if self.losses else None


@dataclass
class RunStats:
    """:class:`PhaseStats` per (phase, epoch) and one confusion matrix per test epoch."""

    n_classes: int
    phases: dict[tuple[str, int], PhaseStats] = field(default_factory=dict)
    confusion: dict[int, np.ndarray] = field(default_factory=dict)

    def phase(self, phase: str, epoch: int) -> PhaseStats:
        """The figures of ``phase`` in ``epoch`` (zeros if nothing was counted yet)."""
        return self.phases.get((phase, epoch)) or PhaseStats()

    def add(self, phase: str, epoch: int, correct: bool | None, loss: float | None) -> None:
        self.phases.setdefault((phase, epoch), PhaseStats()).add(correct, loss)

    def add_test(self, epoch: int, label: int, predicted: int) -> None:
        conf = self.confusion.get(epoch)
        if conf is None:
            conf = self.confusion[epoch] = np.zeros((self.n_classes, self.n_classes), np.int64)
        conf[label, predicted] += 1

    def pop_confusion(self, epoch: int) -> np.ndarray:
        """The test confusion matrix of ``epoch``, forgotten here (it goes into an eval record)."""
        if epoch in self.confusion:
            return self.confusion.pop(epoch)
        return np.zeros((self.n_classes, self.n_classes), np.int64)


@dataclass
class LearningCurve:
    """Online accuracy of the labelled training samples in at most ``max_buckets`` windows, and the
    test accuracy of each epoch: the short curve printed at the end of a run.

    Fixed memory for any run length: when the windows exceed ``max_buckets``, neighbours merge
    and the window doubles.
    """

    max_buckets: int = 10
    width: int = 10  # samples per window
    buckets: list[list[int]] = field(default_factory=list)  # [correct, samples] per window
    evals: list[tuple[int, float, int]] = field(default_factory=list)  # (epoch, accuracy, samples)

    def add(self, correct: bool) -> None:
        if not self.buckets or self.buckets[-1][1] >= self.width:
            if len(self.buckets) >= self.max_buckets:
                merged = [self.buckets[k] for k in range(0, len(self.buckets), 2)]
                for k in range(1, len(self.buckets), 2):
                    merged[k // 2] = [a + b for a, b in zip(merged[k // 2], self.buckets[k])]
                self.buckets, self.width = merged, self.width * 2
            if not self.buckets or self.buckets[-1][1] >= self.width:
                self.buckets.append([0, 0])
        self.buckets[-1][0] += int(correct)
        self.buckets[-1][1] += 1

    def render(self) -> str:
        lines = []
        if self.buckets:
            lines.append("learning curve (online accuracy: each training sample predicted before it is learned):")
            start = 1
            for correct, n in self.buckets:
                acc = correct / n
                lines.append(f"  samples {start:>7}-{start + n - 1:<7} {acc * 100:5.1f} %  {'#' * round(acc * 40)}")
                start += n
        for epoch, acc, n in self.evals:
            lines.append(f"  test accuracy after epoch {epoch + 1}: {acc * 100:.1f} % on {n} samples")
        return "\n".join(lines)
