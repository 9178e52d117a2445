"""Sinks: predictions, metrics, checkpoints, plots and the live dashboard."""
