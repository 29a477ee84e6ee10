"""Where MLflow tracks and registers for a workspace, and the wiring that points MLflow there.

Embedded default: ``sqlite:///<root>/mlflow.db`` with artifacts in ``<root>/mlartifacts``.
Scale-out: any tracking server (``http://...``) by settings or environment; precedence is
``LAKELOOM_TRACKING_URI`` > ``MLFLOW_TRACKING_URI`` > ``lakeloom.toml`` > the default.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from lakeloom.errors import TrackingError
from lakeloom.lakehouse.storage import Storage
from lakeloom.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "TrackingConfig",
    "activate",
    "check_server",
    "client",
    "ensure_experiment",
    "tracking_config",
    "user_environment",
]

# MLflow's own variable for the artifact root of stores it creates in-process: setting it
# makes a user's plain ``mlflow.create_experiment`` put artifacts in the workspace too.
_ARTIFACT_ROOT_ENV = "_MLFLOW_SERVER_ARTIFACT_ROOT"


@dataclass(frozen=True)
class TrackingConfig:
    """Resolved MLflow locations of a workspace."""

    tracking_uri: str
    registry_uri: str
    #: Artifact root for new experiments; None lets a tracking server decide.
    artifact_root: str | None

    @property
    def embedded(self) -> bool:
        """True for the sqlite store inside the workspace."""
        return self.tracking_uri.startswith("sqlite:")


def _local_cache(storage: Storage) -> Path:
    digest = hashlib.sha256(storage.root.encode()).hexdigest()[:16]
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "lakeloom" / digest


def tracking_config(settings: Settings, storage: Storage) -> TrackingConfig:
    """Resolve the tracking and registry URIs and the artifact root from settings."""
    if settings.tracking_uri:
        tracking = settings.tracking_uri
        artifacts = settings.artifact_location or None
        if tracking.startswith("sqlite:") and artifacts is None:
            artifacts = storage.uri("mlartifacts")
    else:
        # sqlite cannot live on an object store: keep it in a local cache for remote roots.
        folder = Path(storage.uri()) if storage.is_local else _local_cache(storage)
        folder.mkdir(parents=True, exist_ok=True)
        tracking = f"sqlite:///{(folder / 'mlflow.db').resolve()}"
        artifacts = settings.artifact_location or (
            str((folder / "mlartifacts").resolve())
            if storage.is_local
            else storage.uri("mlartifacts")
        )
    return TrackingConfig(
        tracking_uri=tracking,
        registry_uri=settings.registry_uri or tracking,
        artifact_root=artifacts,
    )


#: MLflow's variables that ``mlflow.set_tracking_uri``/``set_registry_uri`` also set (so that
#: subprocesses inherit them): what lakeloom last put there, and what the user had before.
_MLFLOW_URI_VARS = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
_set_by_lakeloom: dict[str, str | None] = {}
_set_by_user: dict[str, str | None] = {}
# Every value lakeloom ever exported, so that one put back later (e.g. by a test's environment
# restore) is still known as lakeloom's own rather than taken for the user's choice.
_exported: dict[str, set[str]] = {var: set() for var in _MLFLOW_URI_VARS}
_MARKER = "_LAKELOOM_EXPORTED_"


def activate(config: TrackingConfig) -> None:
    """Point the process-wide MLflow URIs at ``config`` (the last workspace opened wins)."""
    mlflow = sys.modules.get("mlflow")

    for var in _MLFLOW_URI_VARS:
        current = os.environ.get(var)
        if current in _exported[var]:
            continue
        if var not in _set_by_lakeloom or current != _set_by_lakeloom[var]:
            _set_by_user[var] = current  # the user's own value (or its absence)
    if mlflow is not None:
        mlflow.set_tracking_uri(config.tracking_uri)
        mlflow.set_registry_uri(config.registry_uri)
    else:
        # MLflow is not loaded yet (a CLI command that never tracks): its variables do the
        # same job without paying its import time; MLflow reads them when it loads.
        os.environ["MLFLOW_TRACKING_URI"] = config.tracking_uri
        os.environ["MLFLOW_REGISTRY_URI"] = config.registry_uri
    for var in _MLFLOW_URI_VARS:
        _set_by_lakeloom[var] = value = os.environ.get(var)
        if value is not None:
            _exported[var].add(value)
            # Child processes inherit the exported URI; this marker tells their lakeloom
            # that it came from a parent's workspace, not from the user.
            os.environ[_MARKER + var] = value
    if config.artifact_root and config.embedded:
        os.environ[_ARTIFACT_ROOT_ENV] = config.artifact_root
    else:
        os.environ.pop(_ARTIFACT_ROOT_ENV, None)


def user_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment as the user set it: without the MLflow URIs a workspace opened earlier
    in this process exported (``mlflow.set_tracking_uri`` exports ``MLFLOW_TRACKING_URI``),
    which would otherwise take precedence over the next workspace's own store.
    """
    out = dict(os.environ if env is None else env)
    for var in _MLFLOW_URI_VARS:
        if (
            out.get(var) in _exported[var]
            or out.get(var) == out.get(_MARKER + var)
            or (var in _set_by_lakeloom and out.get(var) == _set_by_lakeloom[var])
        ):
            original = _set_by_user.get(var)
            if original is None:
                out.pop(var, None)
            else:
                out[var] = original
    return out


def client(config: TrackingConfig) -> MlflowClient:
    """An ``MlflowClient`` bound to ``config`` (lakeloom's own calls never use globals).

    Raises :class:`TrackingError` at once when a tracking server (``http(s)://``) does not
    answer, rather than after MLflow's minutes of retries.
    """
    from mlflow import MlflowClient

    for uri in dict.fromkeys((config.tracking_uri, config.registry_uri)):
        check_server(uri)
    return MlflowClient(tracking_uri=config.tracking_uri, registry_uri=config.registry_uri)


#: How long a tracking server may take to accept a connection, and then to answer.
SERVER_TIMEOUT = (3.0, 10.0)
#: A server that answered is not asked again for this many seconds.
_ANSWER_KEPT_S = 30.0
_answered: dict[str, float] = {}


def check_server(uri: str) -> None:
    """Raise :class:`TrackingError` unless the tracking server at ``uri`` answers.

    Any HTTP answer counts (even 401 or 404: MLflow then says what is wrong); only no
    connection, a refused one or a timeout fail. Other URIs (``sqlite:``, ``databricks``...)
    are not checked. Proxies set in the environment are used, as MLflow uses them.
    """
    if not uri.startswith(("http://", "https://")):
        return
    answered = _answered.get(uri)
    if answered is not None and time.monotonic() - answered < _ANSWER_KEPT_S:
        return
    import requests

    try:
        with requests.get(uri, timeout=SERVER_TIMEOUT, stream=True, allow_redirects=False):
            pass
    except requests.exceptions.SSLError:
        pass  # something answers; MLflow reports the TLS problem with its own settings
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise TrackingError(
            f"tracking server {_shown(uri)} does not answer: {_reason(exc)}; start it, or point "
            "tracking_uri in lakeloom.toml (or LAKELOOM_TRACKING_URI) at a running server"
        ) from None
    _answered[uri] = time.monotonic()


def _shown(uri: str) -> str:
    """``uri`` without a password it may carry."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _reason(exc: Exception) -> str:
    import requests

    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"no connection within {SERVER_TIMEOUT[0]:g}s"
    if isinstance(exc, requests.exceptions.Timeout):
        return f"connected, but no answer within {SERVER_TIMEOUT[1]:g}s"
    found = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(exc))
    return found.group(1).strip().lower() if found else "no connection"


def ensure_experiment(config: TrackingConfig, name: str) -> str:
    """The id of experiment ``name``, created (with its artifacts in the workspace) if missing."""
    from mlflow.exceptions import MlflowException

    if not name or not name.strip():
        raise TrackingError("experiment name must not be empty")
    c = client(config)
    try:
        found = c.get_experiment_by_name(name)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                c.restore_experiment(found.experiment_id)
            return str(found.experiment_id)
        location = None
        if config.artifact_root:
            location = config.artifact_root.rstrip("/") + "/" + _slug(name)
        return str(c.create_experiment(name, artifact_location=location))
    except MlflowException as exc:
        raise TrackingError(
            f"cannot use experiment {name!r} at {config.tracking_uri}: {exc.message}"
        ) from None


def _slug(name: str) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name.strip())
    return safe[:64] + "-" + hashlib.sha1(name.encode()).hexdigest()[:8]
