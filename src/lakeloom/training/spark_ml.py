"""Spark ML training: a tuned ``PipelineModel`` per model family, tracked like the sklearn path.

The pipeline takes a table's raw columns: numeric columns are cast to double and imputed with
the median, categorical columns (strings, booleans) are indexed (unseen and missing values get
a level of their own) and one-hot encoded, then everything is assembled, standardised and fed
to the estimator; classifiers end with ``predicted_label`` (the label's own values as text).
A seeded train/test split holds out ``test_size`` of the labelled rows; ``CrossValidator``
(``cv >= 2`` folds, else ``TrainValidationSplit``) picks the grid point on the training rows.

MLflow gets what the scikit-learn path logs, under the same names (one parent run, one child
run per model, ``roc_auc``/``f1``/``accuracy``/``rmse``/``r2``...), so ``runs compare`` ranks
runs of both engines together; each child run also gets the best grid point (``best.*``
params, ``cv_<metric>``) and the fitted ``PipelineModel`` as an ``mlflow.spark`` model with a
signature. The model is also saved with Spark itself under ``save_to`` (the workspace's
``Files/models``), where batch scoring on Spark (and a Spark Connect server) reads it.

Work stays in Spark: only counts, the label's distinct values and five example rows reach
the driver.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pandas as pd

from lakeloom.errors import InvalidArgument, SchemaMismatch
from lakeloom.models.data import Lineage
from lakeloom.models.labels import MAX_CLASSES, Task, infer_task, is_classification
from lakeloom.models.metric_names import check_metric, default_metric
from lakeloom.models.preprocessing import FeaturePlan, normalise_features
from lakeloom.tracking.store import client, ensure_experiment
from lakeloom.training.run_logging import (
    log_params,
    metric_entities,
    model_run,
    parent_run,
    record_best,
    run_params,
    run_tags,
)
from lakeloom.training.spark_ml_grid import (
    make_spark_estimator,
    parse_spark_models,
    resolve_grids,
)
from lakeloom.training.spark_ml_plan import (
    FEATURES,
    LABEL,
    OUTPUT_COLUMNS,
    available_metrics,
    feature_stages,
    plan_spark_features,
    spark_evaluator,
    spark_metrics,
)
from lakeloom.training.spark_ml_tracking import log_spark_model, save_spark_model
from lakeloom.training.split_checks import check_classes_repeat, check_test_size
from lakeloom.training.train import (
    DEFAULT_MODELS,
    ModelRun,
    TrainingContext,
    TrainingResult,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from pyspark.sql import DataFrame

    from lakeloom.engines.base import Engine

__all__ = ["load_spark_model", "score_spark", "train_spark"]

_EXAMPLE_ROWS = 5


@dataclass(frozen=True)
class _Input:
    df: DataFrame
    lineage: Lineage


@dataclass(frozen=True)
class _Prepared:
    train: DataFrame
    test: DataFrame
    task: Task
    plan: FeaturePlan
    models: list[str]
    grids: dict[str, dict[str, list[Any]]]
    metric: str
    labels: list[str]
    rows: tuple[int, int, int]  # labelled, train, test
    #: The preprocessing, fitted once on the training rows (every model shares it).
    features_model: Any
    features_seconds: float
    #: The raw test rows (for the input example).
    test_rows: DataFrame


def _read_input(ctx: TrainingContext, data: Any, version: int | None) -> _Input:
    engine = ctx.engine
    if engine is None or engine.name != "spark":
        raise InvalidArgument(
            "Spark ML training runs on the spark engine; pass --engine spark or set "
            'engine = "spark" in lakeloom.toml'
        )
    if isinstance(data, str):
        if ctx.tables is None:
            raise InvalidArgument(f"cannot read table {data!r}: no lakehouse in this context")
        ref = ctx.tables.resolve(data)
        pinned = ctx.tables.version(ref.name) if version is None else version
        df = ctx.tables.read(ref.name, version=pinned)
        return _Input(df, Lineage(ref.name, pinned, int(df.count()), ref.uri))
    if version is not None:
        raise InvalidArgument("version= is for a table name; pass the frame itself otherwise")
    df = engine.from_input(data)
    return _Input(df, Lineage("dataframe", None, int(df.count())))


def _label_values(df: DataFrame, label: str, source: str) -> tuple[pd.Series, dict[Any, int]]:
    from pyspark.sql import functions as F

    if label not in df.columns:
        raise SchemaMismatch(
            f"label column {label!r} is not in {source}; its columns: {', '.join(df.columns)}"
        )
    counts = (
        df.where(F.col(f"`{label}`").isNotNull())
        .groupBy(f"`{label}`")
        .count()
        .limit(MAX_CLASSES + 1)
        .collect()
    )
    if not counts:
        raise InvalidArgument(f"label column {label!r} of {source} has only missing values")
    values = pd.Series([r[0] for r in counts], name=label)
    if values.nunique() < 2:
        raise InvalidArgument(
            f"label column {label!r} of {source} is constant ({values.iloc[0]!r}): "
            "a model needs at least two distinct values to learn from"
        )
    return values, {r[0]: int(r[1]) for r in counts}


def _prepare(
    data: _Input,
    *,
    label: str,
    models: str | Sequence[str] | None,
    task: str | None,
    features: Sequence[str] | None,
    exclude: Sequence[str],
    params: Mapping[str, Any] | None,
    metric: str | None,
    test_size: float,
    seed: int,
) -> _Prepared:
    """Every check that can fail, before anything is written to MLflow."""
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import StringIndexer
    from pyspark.sql import functions as F

    check_test_size(test_size)
    source = f"table {data.lineage.name}" if data.lineage.version is not None else data.lineage.name
    if data.lineage.rows == 0:
        raise InvalidArgument(f"{source} has no rows: nothing to train on")
    clash = sorted(set(data.df.columns) & set(OUTPUT_COLUMNS))
    if clash:
        raise SchemaMismatch(
            f"{source} has column(s) {', '.join(clash)}, which Spark ML pipelines write; "
            "rename them first"
        )
    values, counts = _label_values(data.df, label, source)
    chosen = infer_task(values, task)
    plan = plan_spark_features(data.df, label, features=features, exclude=exclude)
    kind = "regression" if chosen == "regression" else "classification"
    names = parse_spark_models(models if models is not None else DEFAULT_MODELS[kind])
    grids = resolve_grids(params, names, chosen)
    ranking = check_metric(
        metric or default_metric(chosen), available_metrics(chosen), f"for a {chosen} task"
    )
    if is_classification(chosen):
        check_classes_repeat(counts, label)
    labelled = data.df.where(F.col(f"`{label}`").isNotNull())
    labels: list[str] = []
    if is_classification(chosen):
        text = labelled.withColumn("__ll_label_text", F.col(f"`{label}`").cast("string"))
        indexer = StringIndexer(
            inputCol="__ll_label_text", outputCol=LABEL, stringOrderType="alphabetAsc"
        ).fit(text)
        labels = [str(v) for v in indexer.labels]
        labelled = indexer.transform(text).drop("__ll_label_text")
    else:
        labelled = labelled.withColumn(LABEL, F.col(f"`{label}`").cast("double"))
    raw_train, raw_test = labelled.randomSplit(
        [1.0 - float(test_size), float(test_size)], seed=seed
    )
    # Preprocessing statistics (medians, category levels) come from the training rows only,
    # learned once: tuning then fits just the estimator, folds x grid points times.
    started = time.perf_counter()
    features_model = Pipeline(stages=feature_stages(plan)).fit(raw_train)
    features_seconds = time.perf_counter() - started
    keep = [LABEL, FEATURES]
    train = features_model.transform(raw_train).select(*keep).cache()
    test = features_model.transform(raw_test).select(*keep).cache()
    n_train, n_test = int(train.count()), int(test.count())
    n_classes = len(labels)
    if is_classification(chosen):
        seen = int(train.select(F.countDistinct(LABEL)).first()[0])  # type: ignore[index]
        if n_test == 0 or seen < n_classes:
            raise InvalidArgument(
                f"{n_train + n_test} labelled rows are too few to split with "
                f"test_size={test_size} into a train set that holds all {n_classes} classes "
                "and a non-empty test set"
            )
    elif n_train < 4 or n_test == 0:
        raise InvalidArgument(
            f"{n_train + n_test} labelled rows are too few to train and evaluate on"
        )
    return _Prepared(
        train=train,
        test=test,
        task=chosen,
        plan=plan,
        models=names,
        grids=grids,
        metric=ranking,
        labels=labels,
        rows=(n_train + n_test, n_train, n_test),
        features_model=features_model,
        features_seconds=features_seconds,
        test_rows=raw_test,
    )


def train_spark(
    ctx: TrainingContext,
    data: Any,
    *,
    label: str,
    experiment: str,
    version: int | None = None,
    models: str | Sequence[str] | None = None,
    cv: int = 3,
    test_size: float = 0.2,
    seed: int = 42,
    params: Mapping[str, Any] | None = None,
    task: str | None = None,
    features: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    metric: str | None = None,
    run_name: str | None = None,
    parallelism: int | None = None,
    save_to: str | None = None,
) -> TrainingResult:
    """Train Spark ML pipelines on ``data`` to predict ``label``; track them in MLflow.

    ``data`` is a table name (read at ``version``, default the latest) or any frame the
    engine accepts. ``params`` holds the parameter grids, per model
    (``{"gbt": {"maxDepth": [3, 5]}}``) or shared (``{"maxIter": 50}``: a single value fixes
    it). ``cv`` folds (``0`` or ``1``: one train/validation split) choose the grid point with
    ``parallelism`` models fitted at a time. ``save_to`` is the folder under which each
    fitted ``PipelineModel`` is also saved by Spark (``<save_to>/<experiment>/<model>/<run>``).

    >>> result = train_spark(ctx, "ml.churn_training", label="churned", experiment="churn",
    ...                      models=["logistic_regression", "gbt"], cv=3)  # doctest: +SKIP
    """
    if isinstance(cv, bool) or not isinstance(cv, int) or cv < 0 or cv > 20:
        raise InvalidArgument(f"cv must be a number of folds from 2 to 20 (or 0), got {cv!r}")
    if parallelism is not None and (not isinstance(parallelism, int) or parallelism < 1):
        raise InvalidArgument(f"parallelism must be a positive number, got {parallelism!r}")
    data_in = _read_input(ctx, data, version)
    prepared = _prepare(
        data_in,
        label=label,
        models=models,
        task=task,
        features=features,
        exclude=exclude,
        params=params,
        metric=metric,
        test_size=test_size,
        seed=seed,
    )
    lineage = data_in.lineage
    try:
        return _track(
            ctx,
            prepared,
            lineage,
            label=label,
            experiment=experiment,
            cv=cv,
            test_size=test_size,
            seed=seed,
            run_name=run_name,
            parallelism=parallelism,
            save_to=save_to,
        )
    finally:
        for frame in (prepared.train, prepared.test):
            try:
                frame.unpersist()
            except Exception:  # the session may be gone already (Ctrl-C)
                pass


def _track(
    ctx: TrainingContext,
    prepared: _Prepared,
    lineage: Lineage,
    *,
    label: str,
    experiment: str,
    cv: int,
    test_size: float,
    seed: int,
    run_name: str | None,
    parallelism: int | None,
    save_to: str | None,
) -> TrainingResult:
    experiment_id = ensure_experiment(ctx.tracking, experiment)
    c = client(ctx.tracking)
    tags = run_tags(
        lineage, label=label, task=prepared.task, metric=prepared.metric, engine="spark"
    )
    labelled, n_train, n_test = prepared.rows
    common: dict[str, Any] = {
        **run_params(
            lineage,
            label=label,
            task=prepared.task,
            labelled_rows=labelled,
            test_size=test_size,
            seed=seed,
            split_rows=(n_train, n_test),
            features=prepared.plan.features,
        ),
        "engine": "spark",
        "tuning": f"CrossValidator({cv} folds)" if cv >= 2 else "TrainValidationSplit(0.75)",
    }
    with parent_run(
        c,
        experiment_id,
        run_name or f"train {label} (spark)",
        tags=tags,
        params=common,
        models=prepared.models,
        plan=prepared.plan,
    ) as parent:
        runs = [
            _train_one(
                ctx,
                c,
                prepared,
                name,
                order,
                experiment=experiment,
                experiment_id=experiment_id,
                parent=parent,
                tags=tags,
                common=common,
                cv=cv,
                seed=seed,
                parallelism=parallelism,
                save_to=save_to,
            )
            for order, name in enumerate(prepared.models)
        ]
        result = TrainingResult(
            experiment=experiment,
            experiment_id=experiment_id,
            parent_run_id=parent,
            task=prepared.task,
            label=label,
            metric=prepared.metric,
            lineage=lineage,
            features=prepared.plan,
            runs=tuple(runs),
        )
        record_best(c, parent, prepared.metric, result.best())
    return result


def _tuner(
    prepared: _Prepared, name: str, *, cv: int, seed: int, parallelism: int | None
) -> tuple[Any, Any, list[dict[str, Any]]]:
    """The tuning estimator for model ``name``, its evaluator, and the grid points."""
    from pyspark.ml.tuning import CrossValidator, ParamGridBuilder, TrainValidationSplit

    estimator = make_spark_estimator(
        name, prepared.task, seed=seed, featuresCol=FEATURES, labelCol=LABEL
    )
    builder = ParamGridBuilder()
    for key, values in prepared.grids[name].items():
        if len(values) == 1:  # a fixed value, not a search
            estimator.set(estimator.getParam(key), values[0])
        else:
            builder = builder.addGrid(estimator.getParam(key), values)
    grid = builder.build()
    points = [{p.name: v for p, v in point.items()} for point in grid]
    evaluator = spark_evaluator(prepared.metric, prepared.task)
    workers = parallelism or max(1, min(len(grid), 4))
    common = {"estimator": estimator, "estimatorParamMaps": grid, "evaluator": evaluator}
    if cv >= 2:
        tuner: Any = CrossValidator(**common, numFolds=cv, parallelism=workers, seed=seed)
    else:
        tuner = TrainValidationSplit(**common, trainRatio=0.75, parallelism=workers, seed=seed)
    return tuner, evaluator, points


def _full_model(prepared: _Prepared, fitted: Any) -> Any:
    """One ``PipelineModel``: the fitted preprocessing, the model, the label's values."""
    from pyspark.ml import PipelineModel

    stages = [*prepared.features_model.stages, fitted]
    if prepared.labels:
        from pyspark.ml.feature import IndexToString

        stages.append(
            IndexToString(
                inputCol="prediction", outputCol="predicted_label", labels=prepared.labels
            )
        )
    return PipelineModel(stages=stages)


def _train_one(
    ctx: TrainingContext,
    c: MlflowClient,
    prepared: _Prepared,
    name: str,
    order: int,
    *,
    experiment: str,
    experiment_id: str,
    parent: str,
    tags: dict[str, str],
    common: dict[str, Any],
    cv: int,
    seed: int,
    parallelism: int | None,
    save_to: str | None,
) -> ModelRun:
    with model_run(
        c, experiment_id, parent=parent, name=name, tags=tags, where=" on Spark"
    ) as run_id:
        tuner, evaluator, points = _tuner(prepared, name, cv=cv, seed=seed, parallelism=parallelism)
        grid_params = {
            f"grid.{k}": json.dumps(v) for k, v in prepared.grids[name].items() if len(v) > 1
        }
        log_params(
            c,
            run_id,
            {**common, "model": name, "grid.points": len(points), **grid_params},
        )
        started = time.perf_counter()
        tuned = tuner.fit(prepared.train)
        seconds = time.perf_counter() - started + prepared.features_seconds
        scores = [float(s) for s in (tuned.avgMetrics if cv >= 2 else tuned.validationMetrics)]
        larger = bool(evaluator.isLargerBetter())
        best_i = max(range(len(scores)), key=lambda i: scores[i] if larger else -scores[i])
        best_point = points[best_i]
        fitted = tuned.bestModel
        metrics = spark_metrics(fitted.transform(prepared.test), prepared.task)
        metrics["training_time_seconds"] = seconds
        metrics[f"cv_{prepared.metric}"] = scores[best_i]
        hyper = _estimator_params(fitted)
        model = _full_model(prepared, fitted)
        log_params(
            c,
            run_id,
            {
                **{f"best.{k}": v for k, v in best_point.items()},
                **{k: v for k, v in hyper.items() if k not in best_point},
            },
        )
        c.log_batch(run_id, metrics=metric_entities(metrics))
        if prepared.labels:
            c.set_tag(run_id, "lakeloom.classes", json.dumps(prepared.labels))
        saved = None
        if save_to:
            saved = save_spark_model(model, save_to, experiment, name, run_id)
            c.set_tag(run_id, "lakeloom.spark_model_path", saved)
        model_uri = log_spark_model(
            ctx.tracking,
            run_id,
            model,
            _example(prepared),
            spark=prepared.test.sparkSession,
            name=name,
            saved=saved,
        )
        c.set_tag(run_id, "lakeloom.model_uri", model_uri)
    return ModelRun(
        model=name,
        run_id=run_id,
        model_uri=model_uri,
        metrics=metrics,
        params={**hyper, **best_point},
        training_seconds=seconds,
        order=order,
    )


def _estimator_params(fitted: Any) -> dict[str, Any]:
    """The fitted model's parameter values (empty when Spark cannot tell)."""
    try:
        return {
            p.name: v
            for p, v in fitted.extractParamMap().items()
            if isinstance(v, str | int | float | bool) and not p.name.endswith("Col")
        }
    except Exception:
        return {}


def _example(prepared: _Prepared) -> pd.DataFrame:
    import warnings

    features = [f"`{c}`" for c in prepared.plan.features]
    rows = prepared.test_rows.select(*features).limit(_EXAMPLE_ROWS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # pyspark about pandas 3
        frame = rows.toPandas()
    return normalise_features(frame, prepared.plan)


# -- using the model -----------------------------------------------------------------------
def load_spark_model(model: str, engine: Engine) -> Any:
    """The ``PipelineModel`` at ``model``, loaded into ``engine``'s Spark session.

    ``model`` is an MLflow model URI (``models:/churn_spark@production``, ``runs:/...``): its
    artifacts are downloaded here and Spark loads them, so a Spark Connect server must share
    this machine's file system; or the folder Spark saved the model in (a run's
    ``lakeloom.spark_model_path`` tag, in the workspace), which a remote server reads itself.

    >>> model = load_spark_model("models:/churn_spark@production", ws.engine)  # doctest: +SKIP
    """
    from pyspark.ml import PipelineModel

    from lakeloom.engines.spark_delta import spark_write_path

    if engine.name != "spark":
        raise InvalidArgument("a Spark ML model is loaded on the spark engine (--engine spark)")
    cast(Any, engine).spark  # noqa: B018 - PipelineModel.load needs the session to be active
    if model.startswith(("models:/", "runs:/")):
        import mlflow.artifacts

        folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=model)) / "sparkml"
        if not folder.is_dir():
            raise InvalidArgument(
                f"{model} is not a Spark ML model (no sparkml folder); score it with the "
                "local engine"
            )
        return PipelineModel.load(str(folder))
    return PipelineModel.load(spark_write_path(model))


def score_spark(model: Any, frame: DataFrame, *, keep: Sequence[str] | None = None) -> DataFrame:
    """``frame``'s ``keep`` columns (default: all) with ``prediction`` (and, for classifiers,
    ``predicted_label`` and ``probability`` as an array), computed by Spark.
    """
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    scored = model.transform(frame)
    columns = [F.col(f"`{c}`") for c in (keep if keep is not None else frame.columns)]
    columns.append(F.col("prediction"))
    if "predicted_label" in scored.columns:
        columns.append(F.col("predicted_label"))
    if "probability" in scored.columns:
        columns.append(vector_to_array(F.col("probability")).alias("probability"))
    return scored.select(*columns)
