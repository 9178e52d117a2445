"""Deployment on Intel Loihi through Lava (CPU simulator here, chip with lava-loihi)."""
