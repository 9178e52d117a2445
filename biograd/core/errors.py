"""Exceptions shared by every stage.

All derive from :class:`BioGradError` so a CLI can print them as one clear line
instead of a traceback.
"""

from __future__ import annotations


class BioGradError(Exception):
    """Base class for errors a user can act on."""


class ConfigError(BioGradError, ValueError):
    """A configuration key or value is invalid; the message names the key."""


class EventFormatError(BioGradError, ValueError):
    """An event array breaks the event record's rules (dtype, geometry, time order)."""


class DataFormatError(BioGradError, ValueError):
    """A file on disk is truncated or corrupt; the message names the file and offset."""

    def __init__(self, path, problem: str, offset: int | None = None):
        self.path = str(path)
        self.offset = offset
        self.problem = problem
        where = f"{self.path}" + (f" at byte offset {offset}" if offset is not None else "")
        super().__init__(f"{where}: {problem}")


class DataNotFoundError(BioGradError, FileNotFoundError):
    """A dataset is not where the option / BIOGRAD_DATA says."""


class HardwareUnavailableError(BioGradError, RuntimeError):
    """A camera or a Loihi chip was asked for and is not there."""
