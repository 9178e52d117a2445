"""Wire samples to the learner's input: a SpikeRaster per sample."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

from biograd.core.errors import EventFormatError
from biograd.core.protocol import Phase
from biograd.core.transport import WireSample


def default_bin_us(cfg) -> int:
    return cfg.pipeline.bin_us or (1000 if cfg.source.kind == "mnist" else 5000)


class Encoder:
    """Wire sample → SpikeRaster, as the learner expects (``learner.encoding.encode_events``).

    Polarity channels follow from the input layer: 2·W·H inputs = ON and OFF, W·H = one
    channel. Dataset samples are binned from t = 0 (N-MNIST and MNIST-as-events start
    there); live windows from their first event.
    """

    def __init__(self, cfg):
        from biograd.learner.encoding import encode_events

        self._encode = encode_events
        self.n_inputs = cfg.learner.layer_sizes[0]
        self.timesteps = cfg.learner.timesteps
        self.bin_us = default_bin_us(cfg)

    def __call__(self, sample: WireSample):
        g = sample.geometry
        if self.n_inputs == 2 * g.width * g.height:
            channels = 2
        elif self.n_inputs == g.width * g.height:
            channels = 1
        else:
            raise EventFormatError(
                f"sample {sample.sample_id!r}: a {g.width}x{g.height} sensor gives {2 * g.width * g.height} "
                f"(ON/OFF) or {g.width * g.height} inputs, the learner has {self.n_inputs} "
                f"(learner.layer_sizes[0]); crop/down-sample the source to match"
            )
        origin = int(sample.events["t"][0]) if sample.phase == Phase.LIVE and sample.events.size else 0
        return self._encode(
            sample.events,
            g,
            self.timesteps,
            self.bin_us,
            channels,
            t_origin=origin,
            source=f"sample {sample.sample_id!r}",
        )


class PrefetchingEncoder(Encoder):
    """An :class:`Encoder` that bins the next samples on a worker thread while the learner
    trains the current one: the Numba binning and learner kernels both release the GIL, so
    binning leaves the learner's critical path (on the machine's other core).

    :meth:`prefetch` starts a sample early; calling the encoder returns that result (or bins
    at once). Same rasters, same errors (raised by the call), same order of learning.
    """

    AHEAD = 2  # samples binned in advance at most

    def __init__(self, cfg):
        super().__init__(cfg)
        self._pool: ThreadPoolExecutor | None = None
        self._ahead: dict[int, tuple[WireSample, Future]] = {}

    def prefetch(self, sample: WireSample) -> None:
        if len(self._ahead) >= self.AHEAD or id(sample) in self._ahead:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="biograd-binning")
        # the sample is kept with its future, so its id cannot be reused meanwhile
        self._ahead[id(sample)] = (sample, self._pool.submit(Encoder.__call__, self, sample))

    def __call__(self, sample: WireSample):
        entry = self._ahead.pop(id(sample), None)
        if entry is not None and entry[0] is sample:
            return entry[1].result()
        return super().__call__(sample)

    def close(self) -> None:
        self._ahead.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
