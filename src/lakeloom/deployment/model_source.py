"""Which model a URI names, its downloaded folder, and what its MLflow metadata says.

Batch scoring and SQL's ``predict`` pin a URI (``models:/name@alias``, ``models:/name/3``,
``name@alias``, ``runs:/<run>/<path>`` or MLflow 3's ``models:/m-<id>``) to one version before
they load it, so that an alias moving meanwhile does not change what scores the rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from lakeloom.deployment.config import parse_model_ref
from lakeloom.errors import InvalidArgument, ModelNotFound, TrackingError
from lakeloom.tracking.runs import using_tracking
from lakeloom.tracking.store import TrackingConfig, client

__all__ = [
    "ResolvedModel",
    "classes_of",
    "download_model",
    "model_columns",
    "model_uri",
    "resolve_model",
    "signature_columns",
    "signature_output_type",
]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass(frozen=True)
class ResolvedModel:
    """A model URI pinned to what it points at now."""

    uri: str
    #: The registered model's name and version (None for a ``runs:/`` URI).
    name: str | None
    version: int | None
    run_id: str | None

    @property
    def download_uri(self) -> str:
        """The URI of exactly this version (an alias may move while scoring runs)."""
        if self.name is not None and self.version is not None:
            return f"models:/{self.name}/{self.version}"
        return self.uri


def model_uri(model: str) -> str:
    """``churn_model@production`` and ``churn_model/3`` as registry URIs; URIs pass."""
    return model if ":/" in model else f"models:/{model}"


def resolve_model(tracking: TrackingConfig, model: str) -> ResolvedModel:
    """Pin ``model`` (a registry or ``runs:/`` URI) to a version, or raise ``ModelNotFound``."""
    from mlflow.exceptions import MlflowException

    uri = model_uri(model.strip())
    c = client(tracking)
    if uri.startswith("runs:/"):
        run_id = uri[len("runs:/") :].split("/", 1)[0]
        try:
            c.get_run(run_id)
        except MlflowException:
            raise ModelNotFound(
                f"model {uri}: run {run_id!r} does not exist; `lakeloom runs compare` lists runs"
            ) from None
        return ResolvedModel(uri, None, None, run_id)
    ref = parse_model_ref(uri)
    try:
        if ref.alias is not None:
            mv = c.get_model_version_by_alias(ref.name, ref.alias)
        elif ref.version is not None:
            mv = c.get_model_version(ref.name, str(ref.version))
        else:
            escaped = ref.name.replace("'", "\\'")
            versions = c.search_model_versions(f"name='{escaped}'")
            if not versions and ref.name.startswith("m-"):
                # MLflow 3's logged-model URI (models:/m-<id>), what log_model returns
                logged = c.get_logged_model(ref.name)
                return ResolvedModel(uri, ref.name, None, logged.source_run_id)
            if not versions:
                raise ModelNotFound(
                    f"model {uri}: model {ref.name!r} has no versions; "
                    "`lakeloom models list` lists registered models"
                )
            mv = max(versions, key=lambda v: int(v.version))
    except MlflowException as exc:
        what = f"alias {ref.alias!r}" if ref.alias else f"version {ref.version}"
        try:
            c.get_registered_model(ref.name)
        except MlflowException:
            raise ModelNotFound(
                f"model {uri}: no registered model {ref.name!r}; `lakeloom models list` lists them"
            ) from None
        raise ModelNotFound(
            f"model {uri}: model {ref.name!r} has no {what} ({_first_line(exc)}); "
            f"`lakeloom models show {ref.name}` lists its versions and aliases"
        ) from None
    return ResolvedModel(uri, ref.name, int(mv.version), mv.run_id)


def download_model(tracking: TrackingConfig, resolved: ResolvedModel, into: str) -> Path:
    """Download the model's folder into ``into``; returns the folder with its ``MLmodel``."""
    import os

    import mlflow.artifacts

    # MLflow's own download bar would interleave with the caller's progress.
    previous = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    try:
        with using_tracking(tracking):
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=resolved.download_uri,
                dst_path=into,
                tracking_uri=tracking.tracking_uri,
                registry_uri=tracking.registry_uri,
            )
    except Exception as exc:
        raise TrackingError(f"cannot download model {resolved.uri}: {_first_line(exc)}") from None
    finally:
        if previous is None:
            os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
        else:
            os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = previous
    folder = Path(local)
    if not (folder / "MLmodel").is_file():
        raise InvalidArgument(f"{resolved.uri} is not an MLflow model (no MLmodel file)")
    return folder


def signature_columns(mlmodel: Any) -> list[str] | None:
    """The input column names of the model's MLflow signature (None: no column signature)."""
    signature = getattr(mlmodel, "signature", None)
    inputs = getattr(signature, "inputs", None) if signature is not None else None
    if inputs is None or not getattr(inputs, "has_input_names", lambda: False)():
        return None
    return [str(n) for n in inputs.input_names()]


def signature_output_type(mlmodel: Any) -> pa.DataType:
    """The Arrow type of the model's (first) output in its signature; float64 by default."""
    signature = getattr(mlmodel, "signature", None)
    outputs = getattr(signature, "outputs", None) if signature is not None else None
    try:
        spec = outputs.inputs[0] if outputs is not None else None
        kind = str(getattr(spec, "type", "")).lower()
    except (AttributeError, IndexError):
        kind = ""
    for word, typ in (
        ("long", pa.int64()),
        ("integer", pa.int32()),
        ("boolean", pa.bool_()),
        ("string", pa.string()),
        ("float", pa.float32()),
        ("int64", pa.int64()),
        ("int32", pa.int32()),
        ("bool", pa.bool_()),
    ):
        if word in kind:
            return typ
    return pa.float64()


def model_columns(model: Any, mlmodel: Any) -> list[str] | None:
    """The columns a plain model consumes, in order (None: it does not say)."""
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        return [str(n) for n in names]
    return signature_columns(mlmodel)


def classes_of(model: Any) -> list[Any] | None:
    """A classifier's classes (scored through ``predict_proba``), else None."""
    classes = getattr(model, "classes_", None)
    if classes is None or not hasattr(model, "predict_proba"):
        return None
    return [c.item() if hasattr(c, "item") else c for c in classes]
