"""The one exception tree of lakeloom.

Every error lakeloom raises on purpose is a :class:`LakeloomError`; its message is one line
that says what was wrong, with which value, and what to do. The CLI prints that line and
exits with code 2 (no traceback unless ``--debug``).
"""

from __future__ import annotations

from collections.abc import Iterable
from difflib import get_close_matches

__all__ = [
    "AliasConflict",
    "AutoMLError",
    "ConcurrentWriteConflict",
    "DeploymentError",
    "EndpointConfigError",
    "EngineUnavailable",
    "ExperimentNotFound",
    "GateRefused",
    "InvalidArgument",
    "InvalidTableName",
    "LakeloomError",
    "ModelLoadError",
    "ModelNotFound",
    "MonitoringError",
    "PipelineError",
    "RunNotFound",
    "SchemaMismatch",
    "SettingsError",
    "TableNotFound",
    "TimeLimitTooSmall",
    "TrackingError",
    "TrainingError",
    "UnsupportedTableFeature",
    "UntrustedModelTypes",
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


def _hint(name: str, known: Iterable[str], listing: str) -> str:
    close = get_close_matches(name, list(known), n=3, cutoff=0.6)
    return f"; did you mean {', '.join(close)}?" if close else f"; {listing}"


class ExperimentNotFound(TrackingError, LookupError):
    """An MLflow experiment that does not exist was asked for."""

    def __init__(self, name: str, known: Iterable[str] = ()) -> None:
        super().__init__(
            f"experiment {name!r} does not exist"
            + _hint(name, known, "`lakeloom runs experiments` lists them")
        )
        self.name = name


class RunNotFound(TrackingError, LookupError):
    """An MLflow run that does not exist (or has no model) was asked for."""


class ModelNotFound(TrackingError, LookupError):
    """A registered model, model version or alias that does not exist was asked for."""


class AliasConflict(ConcurrentWriteConflict):
    """Another promotion moved the same alias at the same time; re-read and retry."""


class TrainingError(LakeloomError):
    """Fitting or evaluating a model failed; its MLflow run is marked FAILED."""


class GateRefused(LakeloomError):
    """A promotion gate ran and said no: the candidate was not promoted (exit code 1)."""

    exit_code = 1


class UntrustedModelTypes(LakeloomError):
    """A saved model names types lakeloom does not trust to load (loading runs their code)."""

    def __init__(self, message: str, types: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.types = sorted(types)


class AutoMLError(LakeloomError):
    """AutoML cannot learn from the data or settings given (one class, too few rows...)."""


class TimeLimitTooSmall(AutoMLError):
    """An AutoML time limit leaves no time for even one trial after lakeloom's own work."""


class DeploymentError(LakeloomError):
    """A real-time endpoint cannot start or serve (a model that fails to load, a bad port...)."""


class EndpointConfigError(DeploymentError):
    """An endpoint configuration (``endpoint.toml``) holds a value that is not allowed."""


class ModelLoadError(DeploymentError):
    """A model version could not be downloaded, loaded or warmed up for serving."""


class MonitoringError(LakeloomError):
    """A monitoring run could not complete (a webhook refused its summary, no rows...)."""
