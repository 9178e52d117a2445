"""Event sources: N-MNIST, MNIST, event files of every format faery reads, Tonic datasets, DVS
cameras (dv-processing or faery), DV network streams and AEStream/SPIF UDP."""

from biograd.sources.factory import PacketStream, make_windower, open_source  # noqa: F401
