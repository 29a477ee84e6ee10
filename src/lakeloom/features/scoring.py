"""``score_batch``: the platform's one batch-scoring entry point (``ws.score_batch``).

DataFrame in, predictions out. Any MLflow model works: a model URI (``models:/churn@production``,
``models:/churn/3``, ``runs:/<id>/model``) or a model already loaded. A feature-aware model
(:func:`lakeloom.features.feature_model.log_model`) needs only the lookup keys, plus the label
time column for point-in-time features: the features are joined with the workspace's engine at
the tables' latest versions (as of each row's time when the time column is there, else each
key's latest row). Input that already holds the features is scored as it is.

Models load with lakeloom's trust rules (:func:`lakeloom.models.loading.load_model_dir`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa

from lakeloom.engines.base import Engine, Frame
from lakeloom.errors import InvalidArgument, LakeloomError, SchemaMismatch, TrackingError
from lakeloom.features.feature_model import (
    FeatureAwareModel,
    as_arrow,
    is_feature_aware,
    predictions_column,
)
from lakeloom.features.tables import FeatureTables
from lakeloom.lakehouse.tables import Tables
from lakeloom.tracking.runs import using_tracking
from lakeloom.tracking.store import TrackingConfig

__all__ = ["FeatureSource", "ScoringContext", "load_scoring_model", "score_batch"]

FeatureSource = Literal["offline", "online", "provided"]


@dataclass(frozen=True)
class ScoringContext:
    """What scoring needs from the workspace."""

    tracking: TrackingConfig
    tables: Tables
    engine: Engine
    #: An ``OnlineStore`` for ``feature_source="online"`` (opened by the caller).
    online_store: Any = None


def load_scoring_model(
    tracking: TrackingConfig, model: Any, *, trusted_types: Iterable[str] = ()
) -> Any:
    """The model ``model`` names (a URI), loaded with lakeloom's trust rules; objects pass."""
    if not isinstance(model, str):
        if not hasattr(model, "predict"):
            raise InvalidArgument(
                f"model must be a model URI or an object with predict(), got {type(model).__name__}"
            )
        return model
    import mlflow.artifacts

    from lakeloom.models.loading import load_model_dir

    uri = model if ":/" in model else f"models:/{model}"
    with tempfile.TemporaryDirectory() as tmp:
        try:
            with using_tracking(tracking):
                local = mlflow.artifacts.download_artifacts(
                    artifact_uri=uri,
                    dst_path=tmp,
                    tracking_uri=tracking.tracking_uri,
                    registry_uri=tracking.registry_uri,
                )
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise TrackingError(f"cannot load model {uri}: {first}") from None
        with using_tracking(tracking):
            return load_model_dir(local, trusted_types=trusted_types, what=f"model {uri}")


def _feature_model(model: Any) -> FeatureAwareModel | None:
    if isinstance(model, FeatureAwareModel):
        return model
    return is_feature_aware(model)


def score_batch(
    ctx: ScoringContext,
    model: Any,
    data: Any,
    *,
    result_column: str = "prediction",
    include_features: bool = False,
    feature_source: FeatureSource | None = None,
    trusted_types: Iterable[str] = (),
) -> Frame:
    """Predictions for every row of ``data``: its columns plus ``result_column``.

    ``feature_source`` (feature-aware models): ``"offline"`` joins the features from the
    feature tables (default when the input lacks them), ``"online"`` reads them from
    ``ctx.online_store``, ``"provided"`` uses the input's own columns. ``include_features``
    also returns the looked-up features. A model that returns several columns gives
    ``<result_column>_<name>`` columns. The result is the engine's frame (Arrow locally).

    >>> ws.score_batch("models:/churn@production", new_customers)  # doctest: +SKIP
    """
    loaded = load_scoring_model(ctx.tracking, model, trusted_types=trusted_types)
    table = as_arrow(data)
    if result_column in table.column_names:
        raise InvalidArgument(
            f"the input already has a column {result_column!r}; choose another result_column"
        )
    fam = _feature_model(loaded)
    features: pa.Table | None = None
    if fam is not None:
        source = feature_source or (
            "provided" if fam.has_features(table.column_names) else "offline"
        )
        if source == "offline":
            fts = FeatureTables(ctx.tables, ctx.engine)
            versions = {}

            def version(name: str) -> int:
                if name not in versions:
                    versions[name] = fts.version(name)
                return versions[name]

            features = fam.features_offline(
                ctx.engine,
                table,
                resolve=ctx.tables.resolve,
                version=version,
                unique=lambda name, v: v is not None and fts.verified_unique(name, v),
            )
        elif source == "online":
            if ctx.online_store is None:
                raise InvalidArgument("feature_source='online' needs the workspace's online store")
            features = fam.features_online(ctx.online_store, table)
        elif source == "provided":
            features = table
        else:
            raise InvalidArgument(
                f"feature_source must be 'offline', 'online' or 'provided', got {source!r}"
            )
        predictions = fam.predict_features(features)
    else:
        if feature_source not in (None, "provided"):
            raise InvalidArgument(
                f"feature_source={feature_source!r} needs a feature-aware model (logged with "
                "fs.log_model); this model takes its features as input columns"
            )
        predictions = _predict_plain(loaded, table)
    out = features if include_features and features is not None else table
    for suffix, column in predictions_column(predictions, table.num_rows).items():
        name = f"{result_column}_{suffix}" if suffix else result_column
        if name in out.column_names:
            raise InvalidArgument(f"the result would have column {name!r} twice")
        out = out.append_column(name, column)
    return ctx.engine.from_input(out)


def _predict_plain(model: Any, table: pa.Table) -> Any:
    frame = table.to_pandas()
    wanted = getattr(model, "feature_names_in_", None)
    if wanted is not None:
        missing = [str(c) for c in wanted if c not in frame.columns]
        if missing:
            raise SchemaMismatch(
                f"the input lacks the model's column(s) {', '.join(map(repr, missing))}"
            )
        frame = frame.loc[:, [str(c) for c in wanted]]
    try:
        return model.predict(frame)
    except LakeloomError:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InvalidArgument(f"the model cannot score this input: {first}") from exc
