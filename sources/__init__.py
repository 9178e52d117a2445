"""Event sources: N-MNIST, MNIST, AEDAT4 recordings, DVS cameras and DV network streams."""

from biograd.sources.factory import PacketStream, make_windower, open_source  # noqa: F401
