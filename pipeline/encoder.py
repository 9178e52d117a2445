"""Wire samples to the learner's input: a SpikeRaster per sample."""

from __future__ import annotations

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
