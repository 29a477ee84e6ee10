"""The one exception tree of lakeloom.

Every error lakeloom raises on purpose is a :class:`LakeloomError`; its message is one line
that says what was wrong, with which value, and what to do. The CLI prints that line and
exits with code 2 (no traceback unless ``--debug``).
"""

from __future__ import annotations

from collections.abc import Iterable
from difflib import get_close_matches

__all__ = [
    "ConcurrentWriteConflict",
    "EngineUnavailable",
    "InvalidArgument",
    "InvalidTableName",
    "LakeloomError",
    "PipelineError",
    "SchemaMismatch",
    "SettingsError",
    "TableNotFound",
    "TrackingError",
    "UnsupportedTableFeature",
]


class LakeloomError(Exception):
    """Base class of every error lakeloom raises on purpose."""

    #: Process exit code the CLI uses for this error.
    exit_code: int = 2


class InvalidArgument(LakeloomError, ValueError):
    """An argument has a value that is not allowed."""


class SettingsError(LakeloomError):
    """``lakeloom.toml`` or a ``LAKELOOM_*`` variable holds a value that is not allowed."""


class InvalidTableName(LakeloomError, ValueError):
    """A table name is not of the form ``schema.table`` with safe identifiers."""


class TableNotFound(LakeloomError, LookupError):
    """A table that does not exist was asked for."""

    def __init__(self, name: str, known: Iterable[str] = ()) -> None:
        close = get_close_matches(name, list(known), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `lakeloom tables` lists them"
        super().__init__(f"table {name!r} does not exist{hint}")
        self.name = name
        self.close_matches = close


class SchemaMismatch(LakeloomError):
    """Data does not fit a table's schema (missing column, incompatible type...)."""


class ConcurrentWriteConflict(LakeloomError):
    """Another writer changed the table at the same time; the operation can be retried."""

    retryable: bool = True


class UnsupportedTableFeature(LakeloomError):
    """A Delta table uses a feature this engine cannot read or write."""


class EngineUnavailable(LakeloomError):
    """The configured compute engine cannot start (no Java, Spark Connect not answering...)."""


class TrackingError(LakeloomError):
    """MLflow tracking or registry could not do what was asked."""


class PipelineError(LakeloomError):
    """A pipeline file is invalid or one of its steps failed."""
