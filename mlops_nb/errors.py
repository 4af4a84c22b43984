"""The few exception types mlops_nb raises on purpose.

Each one carries a message meant for the user: one line saying what was wrong and what to do.
The CLI prints ``str(error)`` and exits with code 2; the magics turn them into ``UsageError``.
"""


class MlopsError(Exception):
    """Base class: anything mlops_nb reports as the user's problem, not a bug."""


class NotALogError(MlopsError):
    """The path exists but is not an mlops_nb log (another file, a corrupt database)."""


class LogVersionError(MlopsError):
    """The log was written by a newer mlops_nb than the one running."""


class LogNotFoundError(MlopsError):
    """A command that only reads was pointed at a log that does not exist."""


class RunNotFoundError(MlopsError):
    """No run with the given id (or id prefix) is in the log."""


class QueryError(MlopsError):
    """A user's SQL was refused (not read-only) or failed (syntax, unknown column...)."""


class NoActiveRunError(MlopsError):
    """A module-level logging call was made while no run was active."""


class TrackLineError(MlopsError):
    """A ``%%mlops track`` line with arguments that are not ``STAGE [--name NAME]``."""


class LogGoneError(MlopsError):
    """The log file was deleted while this process had it open."""
