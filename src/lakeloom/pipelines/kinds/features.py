"""The ``features``, ``training_set`` and ``publish`` step kinds: the feature store in a pipeline.

::

    [[steps]]
    name = "rfm"
    kind = "features"
    table = "features.customer_rfm_daily"
    primary_keys = ["customer_id"]
    timestamp_key = "ts"
    query = "select ... from raw.orders ..."   # SQL on the workspace's engine, or:
    # builtin = "churn.rfm_daily"              # lakeloom's own (SQL locally, PySpark on Spark)
    mode = "overwrite"                         # or "merge": upsert on keys + timestamp

    [[steps]]
    name = "training_set"
    kind = "training_set"
    labels = "raw.churn_labels"
    label = "churned"
    output_table = "ml.churn_training"
    lookups = [
        { table = "features.customer_rfm_daily", lookup_key = "customer_id",
          timestamp_lookup_key = "label_date" },
    ]
    model = { experiment = "churn_by_key", models = ["logistic_regression"],
              registered_model_name = "churn_by_key", exclude = ["customer_id", "label_date"] }

    [[steps]]
    name = "publish"
    kind = "publish"
    tables = ["features.customer_rfm_daily"]
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import Any, Literal

from lakeloom.errors import InvalidTableName
from lakeloom.lakehouse.names import parse_table_name
from lakeloom.pipelines.kinds.sql import referenced_tables
from lakeloom.pipelines.steps import StepContext, step_kind

__all__ = [
    "FeaturesParams",
    "PublishParams",
    "TrainingSetParams",
    "features_step",
    "publish_step",
    "training_set_step",
]

_LOOKUP_KEYS = {
    "table",
    "lookup_key",
    "features",
    "rename_outputs",
    "timestamp_lookup_key",
    "lookback_window",
    "default_values",
}
_MODEL_KEYS = {
    "experiment",
    "models",
    "registered_model_name",
    "exclude",
    "hyperparameters",
    "metric",
    "seed",
    "test_size",
}


def _table_name(key: str, value: str) -> str:
    try:
        return ".".join(parse_table_name(value))
    except InvalidTableName as exc:
        raise ValueError(f"key {key!r}: {exc}") from None


@dataclass(frozen=True)
class FeaturesParams:
    """Keys of a ``features`` step."""

    table: str
    primary_keys: list[str]
    timestamp_key: str | None = None
    #: SQL over the lakehouse (the engine's dialect).
    query: str | None = None
    #: A computation lakeloom ships: ``churn.demographics``, ``churn.rfm_daily``.
    builtin: str | None = None
    #: For ``churn.rfm_daily``: the last snapshot day and how many days before it.
    as_of: datetime.date | None = None
    days: int = 90
    mode: Literal["overwrite", "merge"] = "overwrite"
    description: str = ""
    tags: dict[str, str] | None = None

    def __post_init__(self) -> None:
        _table_name("table", self.table)
        if (self.query is None) == (self.builtin is None):
            raise ValueError("give key 'query' or key 'builtin' (one of them)")
        if self.query is not None and not self.query.strip():
            raise ValueError("key 'query' must not be empty")
        if not self.primary_keys:
            raise ValueError("key 'primary_keys' must name at least one column")


@step_kind("features")
def features_step(ctx: StepContext, params: FeaturesParams) -> str | None:
    """Compute features and write them to a feature table (a new Delta version)."""
    from lakeloom.features.churn import CHURN_FEATURES, INPUTS, churn_features

    ws = ctx.workspace
    name = _table_name("table", params.table)
    if params.query is not None:
        for used in referenced_tables(params.query, ws.tables.table_names()):
            ctx.used(used)
        frame = ws.sql(params.query)
        description = params.description
    else:
        assert params.builtin is not None
        for used in INPUTS.get(params.builtin, []):
            ctx.used(used)
        frame = churn_features(
            ws.tables, ws.engine, params.builtin, as_of=params.as_of, days=params.days
        )
        description = params.description or CHURN_FEATURES[params.builtin][2]
    fs = ws.features
    if any(t.name == name for t in fs.list_tables()):
        version = fs.write_table(name, frame, mode=params.mode)
    else:
        if ws.tables.exists(name):  # a plain table from an earlier run: replace it
            ws.tables.drop(name)
        fs.create_table(
            name,
            params.primary_keys,
            params.timestamp_key,
            df=frame,
            description=description,
            tags=params.tags,
        )
        version = ws.tables.version(name)
    ctx.wrote(name, version)
    rows = ws.tables.describe(name).rows
    return f"{rows:,} rows in {name} v{version}"


@dataclass(frozen=True)
class TrainingSetParams:
    """Keys of a ``training_set`` step."""

    #: The label table (its version is pinned and recorded); for a scoring set, the rows to
    #: score (the entities, and a time column when the lookups are point in time).
    labels: str
    lookups: list[dict[str, Any]]
    #: The label column; leave it out to build the features of rows to score.
    label: str | None = None
    output_table: str | None = None
    exclude_columns: list[str] | None = None
    #: Ignore feature rows written after each label's time (Delta time travel).
    write_time_cutoff: bool = False
    #: Train on the set and log the best model as a feature-aware model.
    model: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        _table_name("labels", self.labels)
        if self.output_table is not None:
            _table_name("output_table", self.output_table)
        if not self.lookups:
            raise ValueError("key 'lookups' must hold at least one lookup")
        for i, lk in enumerate(self.lookups):
            if not isinstance(lk, dict):
                raise ValueError(f"lookups[{i}] must be a table of keys")
            unknown = sorted(set(lk) - _LOOKUP_KEYS)
            if unknown:
                raise ValueError(
                    f"lookups[{i}] has unknown key(s) {', '.join(unknown)}; known keys: "
                    f"{', '.join(sorted(_LOOKUP_KEYS))}"
                )
            for key in ("table", "lookup_key"):
                if key not in lk:
                    raise ValueError(f"lookups[{i}] needs key {key!r}")
        if self.model is not None:
            unknown = sorted(set(self.model) - _MODEL_KEYS)
            if unknown:
                raise ValueError(
                    f"key 'model' has unknown key(s) {', '.join(unknown)}; known keys: "
                    f"{', '.join(sorted(_MODEL_KEYS))}"
                )
            if "experiment" not in self.model:
                raise ValueError("key 'model' needs 'experiment'")
            if self.label is None:
                raise ValueError("key 'model' needs key 'label' (a model learns from labels)")


@step_kind("training_set")
def training_set_step(ctx: StepContext, params: TrainingSetParams) -> str | None:
    """Join labels with features point in time; optionally train and log a feature-aware model."""
    from lakeloom.features import FeatureLookup

    ws = ctx.workspace
    ctx.used(params.labels)
    lookups = [
        FeatureLookup(
            table_name=lk["table"],
            lookup_key=lk["lookup_key"],
            feature_names=lk.get("features"),
            rename_outputs=lk.get("rename_outputs"),
            timestamp_lookup_key=lk.get("timestamp_lookup_key"),
            lookback_window=lk.get("lookback_window"),
            default_values=lk.get("default_values"),
        )
        for lk in params.lookups
    ]
    for lk in lookups:
        ctx.used(lk.table_name)
    ts = ws.features.create_training_set(
        params.labels,
        lookups,
        label=params.label,
        exclude_columns=params.exclude_columns or [],
        write_time_cutoff=params.write_time_cutoff,
    )
    data = ts.to_arrow()
    parts = [f"{data.num_rows:,} rows x {data.num_columns} columns"]
    if params.output_table is not None:
        target = _table_name("output_table", params.output_table)
        version = ws.tables.write(target, data, mode="overwrite", schema_mode="overwrite")
        ctx.wrote(target, version)
        _record_spec(ws, target, version, ts.spec)
        parts.append(f"into {target} v{version}")
    if params.model is not None:
        assert params.label is not None  # checked with the keys
        parts.append(_train_and_log(ctx, ts, params.label, params.model))
    return ", ".join(parts)


def _record_spec(ws: Any, table: str, version: int, spec: dict[str, Any]) -> None:
    """Keep the training set's spec beside its table (``fs.rebuild_training_set`` reads it)."""
    from lakeloom.lakehouse.storage import Storage

    ref = ws.tables.resolve(table)
    Storage(ref.uri, ref.storage_options).write_text(
        json.dumps({"version": version, "spec": spec}, indent=2), "_lakeloom", "training_set.json"
    )


def _train_and_log(ctx: StepContext, ts: Any, label: str, model: dict[str, Any]) -> str:
    ws = ctx.workspace
    result = ws.train(
        ts,
        label=label,
        experiment=str(model["experiment"]),
        models=model.get("models"),
        exclude=list(model.get("exclude") or []),
        params=model.get("hyperparameters"),
        metric=model.get("metric"),
        seed=int(model.get("seed", 42)),
        test_size=float(model.get("test_size", 0.2)),
        run_name=f"{ctx.pipeline}/{ctx.step}",
    )
    best = result.best()
    import mlflow.sklearn

    from lakeloom.features.scoring import load_scoring_model

    fitted = load_scoring_model(ws.tracking, best.model_uri)

    info = ws.features.log_model(
        fitted,
        "feature_model",
        flavor=mlflow.sklearn,
        training_set=ts,
        registered_model_name=model.get("registered_model_name"),
        run_id=best.run_id,
    )
    where = (
        f"{model['registered_model_name']} v{info.registered_model_version}"
        if model.get("registered_model_name")
        else info.model_uri
    )
    ranking = ", ".join(f"{r.model} {r.metrics[result.metric]:.3f}" for r in result.ranked())
    return f"{result.metric}: {ranking}; best as feature-aware model {where}"


@dataclass(frozen=True)
class PublishParams:
    """Keys of a ``publish`` step."""

    tables: list[str]
    mode: Literal["snapshot", "incremental"] = "snapshot"
    #: Rows older than this (by event time) read as missing: "7d", "12h".
    ttl: str | None = None

    def __post_init__(self) -> None:
        if not self.tables:
            raise ValueError("key 'tables' must name at least one feature table")
        for t in self.tables:
            _table_name("tables", t)


@step_kind("publish")
def publish_step(ctx: StepContext, params: PublishParams) -> str | None:
    """Copy the latest row per key of feature tables to the online store."""
    ws = ctx.workspace
    done = []
    for name in params.tables:
        ctx.used(name)
        report = ws.features.publish_table(name, mode=params.mode, ttl=params.ttl)
        done.append(f"{name} ({report.rows_written:,} rows, {report.mode})")
    return "published " + ", ".join(done)
