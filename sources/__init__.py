"""Event sources: N-MNIST, MNIST, AEDAT4 recordings, DVS cameras and DV network streams."""
