"""The sinks of one run, built from its :class:`~sinks.config.SinkConfig`.

The learner stage (``pipeline/runner.py``) creates them with
:func:`open_run_sinks`, passes every sink record to ``handle`` and calls
``close`` at the end, which also draws the plots. Checkpoints are not a record
sink: the learner stage calls :class:`sinks.checkpoints.CheckpointManager`
(``CheckpointManager.from_config``) itself, since it needs the learner object.
"""
from __future__ import annotations

import logging
from pathlib import Path

from sinks.config import SinkConfig
from sinks.metrics import MetricsLog, metrics_path
from sinks.records import SinkSet

log = logging.getLogger(__name__)


class RunSinks(SinkSet):
    """The configured sinks; ``close`` also writes the PNGs when ``config.plots``."""

    def __init__(self, config: SinkConfig, sinks, dashboard=None, publisher=None):
        super().__init__(sinks)
        self.config = config
        self.run_dir = Path(config.run_dir)
        self.dashboard = dashboard
        self.publisher = publisher
        self.plots: dict[str, Path] = {}
        self.plots_skipped: dict[str, str] = {}

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.config.plots:
                from sinks.plots import make_plots
                self.plots, self.plots_skipped = make_plots(self.run_dir)
                log.info("plots in %s: %s", self.run_dir / "plots", ", ".join(self.plots) or "none")


def open_run_sinks(config: SinkConfig, n_hidden: int, append: bool = False, extra=()) -> RunSinks:
    """Metrics log, and per ``config`` the predictions publisher/file and the dashboard.

    ``n_hidden`` is the learner's number of hidden layers (CSV columns);
    ``append`` continues the run dir's metrics log (a resumed run); ``extra``
    are more sinks to feed.
    """
    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    sinks = [MetricsLog(metrics_path(run_dir, config.metrics_format), config.metrics_format,
                        n_hidden=n_hidden, append=append)]
    dashboard = publisher = None
    try:
        if config.predictions:
            from sinks.predictions import PredictionPublisher
            publisher = PredictionPublisher(config.predictions)
            sinks.append(publisher)
            log.info("predictions published on %s", publisher.address)
        if config.predictions_file:
            from sinks.predictions import PredictionWriter
            sinks.append(PredictionWriter(config.predictions_file))
        if config.dashboard:
            from sinks.dashboard import Dashboard
            dashboard = Dashboard(port=config.dashboard_port)
            sinks.append(dashboard)
            print(f"biograd: live dashboard at {dashboard.url}", flush=True)
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    sinks.extend(extra)
    return RunSinks(config, sinks, dashboard=dashboard, publisher=publisher)
