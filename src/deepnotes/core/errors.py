"""Exceptions that carry a message meant for the person at the keyboard.

Everything a user can get wrong (an unknown experiment, a config key that does not exist, a value
of the wrong type, a data file in the wrong format) raises a subclass of :class:`UsageError`; the
CLI prints its message on one line and exits with code 2. Failures of a run itself (a loss that
became NaN) raise :class:`DivergenceError`, which the CLI reports with exit code 3.
"""

from __future__ import annotations


class UsageError(ValueError):
    """Bad input from the user: the message names what was expected and what was received."""


class ConfigError(UsageError):
    """An unknown experiment, config key or preset, or a value of the wrong type or range."""


class DataFormatError(UsageError):
    """A data file that is missing, truncated, or not in the format its loader reads."""


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss; the message names the step and last good checkpoint."""


class CollectiveTimeoutError(RuntimeError):
    """A collective of a torchrun job ended without every rank: another rank stopped, crashed or
    stalled past the collective timeout (``DEEPNOTES_DIST_TIMEOUT`` seconds, default 5 minutes).

    The message is one line naming this rank, the operation and the timeout (see
    :mod:`deepnotes.core.distributed`).
    """
