"""Table-to-table batch scoring: ``ws.score_batch(model, "raw.t", output_table="pred.t")``.

The input (a table, read at its latest version, or a frame) streams through the engine's
:meth:`~lakeloom.engines.base.Engine.map_batches` with a :class:`BatchScorer`; the result is
written with one Delta commit at the end, so the output table is either at its old version
or fully at the new one. ``overwrite`` replaces the table, ``merge`` upserts on the key
columns (both idempotent: re-running gives the same table), ``append`` adds rows.

Output columns: the key columns, ``prediction``, ``probability_<class>`` per class for
classifiers, and ``model_name``, ``model_version``, ``run_id``, ``scored_at`` (UTC).

* Plain models: the model's input columns (its signature, else ``feature_names_in_``) must
  be in the input; keys default to the input's other columns.
* Feature-aware models (``fs.log_model``): the input needs the lookup keys (and the label time
  for point-in-time features); the engine joins the features, then the wrapped model
  scores. Keys default to the lookup keys (and the time column when present).
* Spark ML models (``mlflow.spark``, from ``lakeloom train --engine spark``): scored by Spark
  itself (``PipelineModel.transform``), on the spark engine only.

On the spark engine scoring is distributed (``mapInArrow``; the model folder travels with
the tasks and loads once per Python worker). Nothing is written when the input is bad.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

from lakeloom.deployment.batch_model import (
    PROVENANCE_FIELDS,
    BatchScorer,
    LoadedModel,
    Provenance,
)
from lakeloom.deployment.model_source import (
    ResolvedModel,
    classes_of,
    download_model,
    model_columns,
    resolve_model,
    signature_columns,
    signature_output_type,
)
from lakeloom.engines.base import Engine, Frame, TableRef
from lakeloom.engines.delta_log import arrow_schema, open_delta
from lakeloom.errors import (
    InvalidArgument,
    LakeloomError,
    SchemaMismatch,
)
from lakeloom.lakehouse.tables import Tables
from lakeloom.tracking.runs import using_tracking
from lakeloom.tracking.store import TrackingConfig

__all__ = [
    "MODES",
    "BatchScoringContext",
    "BatchScoringResult",
    "ResolvedModel",
    "resolve_model",
    "score_table",
]

ScoreMode = Literal["overwrite", "append", "merge"]
MODES: tuple[str, ...] = ("overwrite", "append", "merge")
#: Called with the number of rows scored so far (local engine: after every batch).
Progress = Callable[[int], None]


@dataclass(frozen=True)
class BatchScoringContext:
    """What batch scoring needs from the workspace."""

    tracking: TrackingConfig
    tables: Tables
    engine: Engine


@dataclass(frozen=True)
class BatchScoringResult:
    """What a table-to-table scoring did."""

    output_table: str
    version: int
    mode: str
    #: Rows scored (None when the engine cannot tell without another pass).
    rows: int | None
    input_table: str | None
    input_version: int | None
    model_uri: str
    model_name: str | None
    model_version: int | None
    run_id: str | None
    scored_at: datetime
    columns: list[str]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        out = asdict(self)
        out["scored_at"] = self.scored_at.isoformat()
        out["seconds"] = round(self.seconds, 3)
        return out


# -- what the input and the model look like ----------------------------------------------
def schema_of(frame: Any) -> pa.Schema:
    """The Arrow schema of a frame without reading its rows."""
    if isinstance(frame, pa.Table | pa.RecordBatchReader):
        return frame.schema
    from lakeloom.engines.spark_types import arrow_schema_of

    return arrow_schema_of(frame)


def output_fields(
    keys: Sequence[str], input_schema: pa.Schema, prediction: pa.DataType, classes: Sequence[Any]
) -> pa.Schema:
    """Keys, ``prediction``, ``probability_<class>`` per class, provenance."""
    fields = [input_schema.field(k) for k in keys]
    fields.append(pa.field("prediction", prediction))
    fields.extend(pa.field(f"probability_{c}", pa.float64()) for c in classes)
    fields.extend(PROVENANCE_FIELDS)
    names = [f.name for f in fields]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InvalidArgument(
            f"the output would have column(s) {', '.join(map(repr, repeated))} twice: a key "
            "column has the name of an output column; pass other keys"
        )
    return pa.schema(fields)


def _check_keys(keys: Sequence[str], input_schema: pa.Schema) -> None:
    missing = [k for k in keys if k not in input_schema.names]
    if missing:
        raise SchemaMismatch(
            f"key column(s) {', '.join(map(repr, missing))} not in the input; its columns: "
            f"{', '.join(input_schema.names)}"
        )


def _check_model_columns(columns: Sequence[str] | None, input_schema: pa.Schema, uri: str) -> None:
    if columns is None:
        return
    missing = [c for c in columns if c not in input_schema.names]
    if missing:
        raise SchemaMismatch(
            f"the input lacks column(s) {', '.join(map(repr, missing))} that model {uri} "
            f"takes; its columns: {', '.join(input_schema.names)}"
        )


# -- the plan ------------------------------------------------------------------------------
@dataclass
class _Plan:
    frame: Any  # what map_batches (or Spark ML) reads: a TableRef or a frame
    input_schema: pa.Schema
    keys: list[str]
    mapped: Frame = None


def _table_rows(ref: TableRef, version: int) -> int | None:
    """Rows of a table version from its log's file statistics (no data read)."""
    try:
        dt = open_delta(ref, version=version)
        actions = pa.table(dt.get_add_actions(flatten=True))
        if "num_records" not in actions.column_names:
            return None
        column = actions.column("num_records")
        if column.null_count:
            return None
        return int(sum(column.to_pylist()))
    except (OSError, LakeloomError, ValueError):
        return None


def score_table(
    ctx: BatchScoringContext,
    model: str,
    data: Any,
    *,
    output_table: str,
    mode: str = "overwrite",
    keys: Sequence[str] | str | None = None,
    trusted_types: Sequence[str] = (),
    progress: Progress | None = None,
    on_start: Callable[[int | None], None] | None = None,
) -> BatchScoringResult:
    """Score ``data`` (a table name or a frame) with ``model`` into ``output_table``.

    See the module docstring. ``on_start`` gets the number of input rows when known
    (a progress bar's total), ``progress`` the rows scored so far.

    >>> ws.score_batch("models:/churn_model@production", "raw.new_customers",
    ...                output_table="predictions.customer_churn")  # doctest: +SKIP
    """
    started = time.monotonic()
    if mode not in MODES:
        raise InvalidArgument(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if not isinstance(model, str) or not model.strip():
        raise InvalidArgument(
            "table-to-table scoring needs a model URI such as models:/churn_model@production "
            f"(it is recorded with every row), got {type(model).__name__}"
        )
    out_ref = ctx.tables.ref(output_table)
    key_list = [keys] if isinstance(keys, str) else (list(keys) if keys is not None else None)
    engine = ctx.engine

    input_table: str | None = None
    input_version: int | None = None
    total: int | None = None
    if isinstance(data, str):
        in_ref = ctx.tables.resolve(data)
        dt = open_delta(in_ref)
        input_table, input_version = in_ref.name, dt.version()
        input_schema = arrow_schema(dt)
        source: Any = in_ref
        total = _table_rows(in_ref, input_version)
    else:
        source = engine.from_input(data)
        input_schema = schema_of(source)
        if isinstance(source, pa.Table):
            total = source.num_rows

    resolved = resolve_model(ctx.tracking, model)
    scored_at = datetime.now(UTC)
    provenance = Provenance(resolved.name, resolved.version, resolved.run_id, scored_at)
    tmp = tempfile.mkdtemp(prefix="lakeloom-score-")
    counter = _Counter(progress)
    try:
        folder = download_model(ctx.tracking, resolved, tmp)
        from mlflow.models import Model

        mlmodel = Model.load(str(folder / "MLmodel"))
        flavors = mlmodel.flavors
        metadata = mlmodel.metadata or {}
        inputs = _PlanInputs(
            ctx, folder, mlmodel, source, input_schema, key_list, provenance, resolved,
            tuple(trusted_types), counter,
        )  # fmt: skip
        if "spark" in flavors:
            plan = _spark_ml_plan(inputs)
        elif metadata.get("lakeloom_feature_aware"):
            plan = _feature_aware_plan(inputs)
        else:
            plan = _plain_plan(inputs)
        if mode == "merge" and not plan.keys:
            raise InvalidArgument(
                "mode 'merge' needs key columns to match rows on; pass keys=[...] (--keys)"
            )
        if on_start is not None:
            on_start(total)
        version = _write(ctx, out_ref, plan, mode)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = counter.rows if counter.rows or total is None else total
    if progress is not None and rows is not None:
        progress(rows)
    columns = list(schema_of(plan.mapped).names) if plan.mapped is not None else []
    return BatchScoringResult(
        output_table=out_ref.name,
        version=version,
        mode=mode,
        rows=rows,
        input_table=input_table,
        input_version=input_version,
        model_uri=resolved.uri,
        model_name=resolved.name,
        model_version=resolved.version,
        run_id=resolved.run_id,
        scored_at=scored_at,
        columns=columns,
        seconds=time.monotonic() - started,
    )


class _Counter:
    """Counts rows as batches pass (in this process: the local engine)."""

    def __init__(self, progress: Progress | None) -> None:
        self.rows = 0
        self._progress = progress

    def wrap(self, fn: Callable[[pa.RecordBatch], pa.RecordBatch]) -> Any:
        counter = self

        class _Counted:
            def __call__(self, batch: pa.RecordBatch) -> pa.RecordBatch:
                out = fn(batch)
                counter.rows += batch.num_rows
                if counter._progress is not None:
                    counter._progress(counter.rows)
                return out

            def __reduce__(self) -> Any:
                return (_identity, (fn,))  # on Spark executors: the function alone

        return _Counted()


def _identity(fn: Any) -> Any:
    return fn


@dataclass(frozen=True)
class _PlanInputs:
    """What every scoring plan starts from: the downloaded model and the input."""

    ctx: BatchScoringContext
    folder: Path
    mlmodel: Any
    source: Any
    input_schema: pa.Schema
    keys: list[str] | None
    provenance: Provenance
    resolved: ResolvedModel
    trusted_types: tuple[str, ...]
    counter: _Counter


def _plain_plan(inputs: _PlanInputs) -> _Plan:
    ctx, input_schema, resolved = inputs.ctx, inputs.input_schema, inputs.resolved
    keys = inputs.keys
    loaded = LoadedModel(str(inputs.folder), inputs.trusted_types, f"model {resolved.uri}")
    estimator = loaded.model
    columns = model_columns(estimator, inputs.mlmodel)
    _check_model_columns(columns, input_schema, resolved.uri)
    if keys is None:  # the input's columns that the model does not take
        used = set(columns or [])
        keys = [c for c in input_schema.names if c not in used] if columns is not None else []
    _check_keys(keys, input_schema)
    classes = classes_of(estimator)
    if classes is not None:
        prediction = pa.array(classes).type
    else:
        prediction = signature_output_type(inputs.mlmodel)
    if classes is not None and pa.types.is_large_string(prediction):
        prediction = pa.string()
    schema = output_fields(keys, input_schema, prediction, classes or [])
    scorer = BatchScorer(loaded, columns, keys, classes, schema, inputs.provenance)
    mapped = ctx.engine.map_batches(inputs.source, inputs.counter.wrap(scorer), schema)
    return _Plan(inputs.source, input_schema, keys, mapped)


def _feature_aware_plan(inputs: _PlanInputs) -> _Plan:
    import mlflow.pyfunc

    from lakeloom.features.feature_model import is_feature_aware
    from lakeloom.features.tables import FeatureTables

    ctx, input_schema, resolved = inputs.ctx, inputs.input_schema, inputs.resolved
    keys, source, folder = inputs.keys, inputs.source, inputs.folder
    with using_tracking(ctx.tracking):
        fam = is_feature_aware(mlflow.pyfunc.load_model(str(folder)))
    if fam is None or fam.spec is None:
        raise InvalidArgument(f"{resolved.uri} says it is feature-aware but has no feature spec")
    spec = fam.spec
    if keys is None:
        keys = spec.key_columns + [t for t in spec.timestamp_columns if t in input_schema.names]
    _check_keys(keys, input_schema)
    fts = FeatureTables(ctx.tables, ctx.engine)
    versions: dict[str, int] = {}

    def version(name: str) -> int:
        if name not in versions:
            versions[name] = fts.version(name)
        return versions[name]

    looked_up = {o for lk in spec.lookups for o in lk.outputs}
    spine_cols = [c for c in input_schema.names if c not in looked_up]
    lookups = spec.engine_lookups(
        spine_cols,
        ctx.tables.resolve,
        version=version,
        unique=lambda name, v: v is not None and fts.verified_unique(name, v),
    )
    if isinstance(source, pa.RecordBatchReader):
        source = source.read_all()
    # Input columns that a lookup also returns are replaced by the looked-up values.
    narrower = spine_cols if set(spine_cols) != set(input_schema.names) else None
    if isinstance(source, TableRef):
        frame = ctx.engine.read(source, columns=narrower)
    elif narrower is not None:
        frame = (
            source.select(narrower) if isinstance(source, pa.Table) else source.select(*narrower)
        )
    else:
        frame = source
    joined = ctx.engine.point_in_time_join(frame, lookups)
    inner = fam.model
    columns = [str(c) for c in getattr(inner, "feature_names_in_", spec.model_columns)]
    joined_schema = schema_of(joined) if not isinstance(joined, pa.Table) else joined.schema
    _check_model_columns(columns, joined_schema, resolved.uri)
    classes = classes_of(inner)
    prediction = pa.array(classes).type if classes is not None else pa.float64()
    schema = output_fields(keys, joined_schema, prediction, classes or [])
    loaded = LoadedModel(
        str(folder / "artifacts" / "model"), inputs.trusted_types, f"model {resolved.uri}"
    )
    loaded._model = inner
    scorer = BatchScorer(loaded, columns, keys, classes, schema, inputs.provenance)
    return _Plan(joined, joined_schema, keys, ctx.engine.map_batches(joined, scorer, schema))


def _spark_ml_plan(inputs: _PlanInputs) -> _Plan:
    ctx, input_schema, resolved = inputs.ctx, inputs.input_schema, inputs.resolved
    keys = inputs.keys
    if ctx.engine.name != "spark":
        raise InvalidArgument(
            f"{resolved.uri} is a Spark ML model: score it on the spark engine "
            '(--engine spark, or engine = "spark" in lakeloom.toml)'
        )
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    from lakeloom.training.spark_ml import load_spark_model

    columns = signature_columns(inputs.mlmodel)
    _check_model_columns(columns, input_schema, resolved.uri)
    if keys is None:
        used = set(columns or [])
        keys = [c for c in input_schema.names if c not in used]
    _check_keys(keys, input_schema)
    pipeline = load_spark_model(str(inputs.folder / "sparkml"), ctx.engine)
    frame = ctx.engine.read(inputs.source) if isinstance(inputs.source, TableRef) else inputs.source
    scored = pipeline.transform(frame)
    labels: list[str] = []
    last = pipeline.stages[-1] if getattr(pipeline, "stages", None) else None
    if last is not None and type(last).__name__ == "IndexToString":
        labels = [str(v) for v in last.getLabels()]
    prediction = F.col("predicted_label") if labels else F.col("prediction").cast("double")
    out = [F.col(f"`{k}`") for k in keys]
    out.append(prediction.alias("prediction"))
    if labels and "probability" in scored.columns:
        probs = vector_to_array(F.col("probability"))
        out.extend(probs[i].alias(f"probability_{label}") for i, label in enumerate(labels))
    out.extend(
        [
            F.lit(inputs.provenance.model_name).cast("string").alias("model_name"),
            F.lit(inputs.provenance.model_version).cast("long").alias("model_version"),
            F.lit(inputs.provenance.run_id).cast("string").alias("run_id"),
            F.lit(inputs.provenance.scored_at).cast("timestamp").alias("scored_at"),
        ]
    )
    output_fields(keys, input_schema, pa.string(), labels)  # names checked like the others
    return _Plan(frame, input_schema, keys, scored.select(*out))


def _write(ctx: BatchScoringContext, ref: TableRef, plan: _Plan, mode: str) -> int:
    engine = ctx.engine
    try:
        if mode == "merge":
            # A merge reads its source more than once (key checks, then the rows): a Spark
            # frame is kept rather than scored again. (Arrow streams are collected by merge.)
            persist = getattr(plan.mapped, "persist", None)
            mapped = persist() if callable(persist) else plan.mapped
            try:
                return engine.merge(ref, mapped, keys=plan.keys)
            finally:
                unpersist = getattr(mapped, "unpersist", None)
                if callable(unpersist):
                    unpersist()
        if mode == "overwrite":
            return engine.write(ref, plan.mapped, mode="overwrite", schema_mode="overwrite")
        return engine.write(ref, plan.mapped, mode="append")
    except LakeloomError:
        raise
    except Exception as exc:
        raise _executor_error(exc) from None


def _executor_error(exc: BaseException) -> BaseException:
    """A lakeloom error raised on a Spark executor, as its own class again."""
    import re

    from lakeloom import errors

    text = str(exc)
    found = re.findall(r"lakeloom\.errors\.(\w+): ([^\n]*)", text)
    if found:
        name, message = found[-1]
        cls = getattr(errors, name, None)
        if isinstance(cls, type) and issubclass(cls, LakeloomError):
            try:
                return cls(message)
            except TypeError:
                return InvalidArgument(message)
    return exc
