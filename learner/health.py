"""Health guard: says once when learning has stalled, stops it when the weights are no longer finite.

Three conditions, counted over labelled (training) samples (settings ``learner.guard_*``):

* the output layer did not spike for ``guard_silent`` samples in a row — the error then only
  pushes every output up, and accuracy sits at chance until it recovers (a warning, said once
  until the output spikes again);
* no weight changed for ``guard_stalled`` samples — no neuron inside the surrogate window, or a
  batch larger than the stream (a warning, said once until a weight changes again);
* a weight, bias or feedback value is NaN or infinite — checked every ``guard_check_every``
  samples and before every checkpoint. :class:`LearningHalted` is raised: the caller stops
  learning, writes no further checkpoint (the last one on disk is the last good state) and
  exits non-zero with the reason.
"""

from __future__ import annotations

import numpy as np

from biograd.core.errors import BioGradError


class LearningHalted(BioGradError):
    """Learning stopped because the learner's state is no longer usable (the message says why)."""


def non_finite(learner) -> str | None:
    """The first array of the learner holding NaN/inf, described; None when all are finite."""
    groups = (("W", learner.weights), ("b", learner.biases), ("B", learner.feedback))
    for name, arrays in groups:
        for l, a in enumerate(arrays):
            if not np.isfinite(a).all():
                bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
                return f"{name}{l} has {bad} non-finite value(s)"
    return None


class HealthGuard:
    def __init__(self, silent: int, stalled: int, check_every: int):
        self.silent_limit = silent
        self.stalled_limit = stalled
        self.check_every = check_every
        self.silent_run = 0
        self._said_silent = False
        self._said_stalled = False
        self._since_check = 0

    @classmethod
    def from_config(cls, config) -> HealthGuard:
        return cls(config.guard_silent, config.guard_stalled, config.guard_check_every)

    def observe(self, learner, result) -> list[str]:
        """After a training sample: the warnings to say now (each once); raises LearningHalted."""
        out = []
        if int(np.sum(result.counts)) == 0:
            self.silent_run += 1
        else:
            self.silent_run = 0
            self._said_silent = False
        if self.silent_limit and self.silent_run >= self.silent_limit and not self._said_silent:
            self._said_silent = True
            out.append(
                f"the output layer has not spiked for {self.silent_run} labelled samples "
                f"(at sample {learner.samples_seen}): learning is stuck at chance; try a smaller learner.lr "
                f"or an adaptive learner.optimizer"
            )
        stalled = learner.samples_seen - learner.last_change
        if learner.last_change and stalled == 0:
            self._said_stalled = False
        if self.stalled_limit and stalled >= self.stalled_limit and not self._said_stalled:
            self._said_stalled = True
            out.append(
                f"no weight has changed for {stalled} labelled samples (at sample {learner.samples_seen}, "
                f"learner.batch_size = {learner.config.batch_size}): nothing is being learned"
            )
        self._since_check += 1
        if self.check_every and self._since_check >= self.check_every:
            self.check_finite(learner)
        return out

    def check_finite(self, learner) -> None:
        """Raise LearningHalted if any weight, bias or feedback value is NaN or infinite."""
        self._since_check = 0
        problem = non_finite(learner)
        if problem is not None:
            raise LearningHalted(
                f"learning halted at sample {learner.samples_seen}: {problem} "
                f"(diverged; try a smaller learner.lr). No checkpoint was written after this point."
            )
