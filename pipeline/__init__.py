"""BioGrad streaming pipeline: the event record, configuration, wire protocol and runner."""
