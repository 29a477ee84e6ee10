"""Training with tracking: one parent MLflow run, one child run per model family.

Each child run logs every hyperparameter, the held-out metrics, evaluation plots, the data
lineage (table, Delta version, rows), the training time, and the fitted scikit-learn
``Pipeline(preprocess, model)`` as an ordinary MLflow model (skops-serialised, with its
signature, an input example and requirements that include lakeloom). A run that raises is
marked FAILED (KILLED on Ctrl-C), never left RUNNING.

Training data crosses into pandas here: models train in memory on one machine, and a
training set is small next to the tables it is built from.
"""

from __future__ import annotations

import importlib.metadata
import json
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lakeloom.engines.base import Engine
from lakeloom.errors import InvalidArgument, LakeloomError, TrackingError
from lakeloom.lakehouse.tables import Tables
from lakeloom.models.data import FrameData, Lineage, TrainingData
from lakeloom.models.estimators import LabelEncodedClassifier
from lakeloom.models.evaluation import evaluate, evaluation_plots, permutation_importances
from lakeloom.models.families import family, make_estimator, parse_models, resolve_params
from lakeloom.models.labels import Task, check_label, infer_task, is_classification
from lakeloom.models.metric_names import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    check_metric,
    default_metric,
    higher_is_better,
)
from lakeloom.models.preprocessing import (
    FeaturePlan,
    build_model_pipeline,
    normalise_features,
    plan_features,
)
from lakeloom.models.trust import required_trusted_types
from lakeloom.tracking.runs import using_tracking
from lakeloom.tracking.store import TrackingConfig, client, ensure_experiment
from lakeloom.training.run_logging import (
    log_params,
    metric_entities,
    model_run,
    parent_run,
    record_best,
    run_params,
    run_tags,
)
from lakeloom.training.sources import TableData
from lakeloom.training.split_checks import check_classes_repeat, check_test_size

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "DEFAULT_MODELS",
    "MODEL_ARTIFACT",
    "ModelRun",
    "TrainingContext",
    "TrainingResult",
    "train",
]

#: Families trained when none are named (stock scikit-learn: no extra packages).
DEFAULT_MODELS = {
    "classification": ("logistic_regression", "random_forest"),
    "regression": ("linear_regression", "random_forest"),
}
#: Name of the logged model inside each child run.
MODEL_ARTIFACT = "model"
_INPUT_EXAMPLE_ROWS = 5
_PARAM_MAX = 6000


@dataclass(frozen=True)
class TrainingContext:
    """What training needs from the workspace (never the workspace itself)."""

    tracking: TrackingConfig
    tables: Tables | None = None
    engine: Engine | None = None


@dataclass(frozen=True)
class ModelRun:
    """One trained model: its child run, logged model and held-out metrics."""

    model: str
    run_id: str
    model_uri: str
    metrics: dict[str, float]
    params: dict[str, Any]
    training_seconds: float
    #: Position in training order (ties in a ranking go to the earlier run).
    order: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "model": self.model,
            "run_id": self.run_id,
            "model_uri": self.model_uri,
            "metrics": self.metrics,
            "training_seconds": round(self.training_seconds, 3),
        }


@dataclass(frozen=True)
class TrainingResult:
    """The outcome of :func:`train`: the parent run and one :class:`ModelRun` per model."""

    experiment: str
    experiment_id: str
    parent_run_id: str
    task: Task
    label: str
    metric: str
    lineage: Lineage
    features: FeaturePlan
    runs: tuple[ModelRun, ...] = field(default_factory=tuple)

    def ranked(self, metric: str | None = None) -> list[ModelRun]:
        """The model runs best first by ``metric`` (default: the training's metric)."""
        metric = metric or self.metric
        check_metric(metric, sorted({m for r in self.runs for m in r.metrics}), "in this training")
        sign = -1.0 if higher_is_better(metric) else 1.0
        have = [r for r in self.runs if metric in r.metrics]
        return sorted(have, key=lambda r: (sign * r.metrics[metric], r.order, r.run_id))

    def best(self, metric: str | None = None) -> ModelRun:
        """The best model run by ``metric``; ties go to the model trained first."""
        return self.ranked(metric)[0]

    def comparison(self, metric: str | None = None) -> pd.DataFrame:
        """The model runs as a table, best first."""
        metric = metric or self.metric
        ranked = self.ranked(metric)
        others = sorted({m for r in ranked for m in r.metrics} - {metric})
        rows = [
            {
                "rank": i,
                "model": r.model,
                "run_id": r.run_id,
                metric: r.metrics[metric],
                **{m: r.metrics.get(m, float("nan")) for m in others},
            }
            for i, r in enumerate(ranked, start=1)
        ]
        return pd.DataFrame(rows, columns=["rank", "model", "run_id", metric, *others])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "experiment": self.experiment,
            "experiment_id": self.experiment_id,
            "parent_run_id": self.parent_run_id,
            "task": self.task,
            "label": self.label,
            "metric": self.metric,
            "table": self.lineage.name,
            "table_version": self.lineage.version,
            "rows": self.lineage.rows,
            "features": self.features.to_dict(),
            "runs": [r.to_dict() for r in self.ranked()],
            "best": self.best().to_dict(),
        }


@dataclass(frozen=True)
class _Prepared:
    X: pd.DataFrame
    y: pd.Series
    task: Task
    plan: FeaturePlan
    models: list[str]
    params: dict[str, dict[str, Any]]
    metric: str
    dropped_label_rows: int


def _as_training_data(ctx: TrainingContext, data: Any) -> TrainingData:
    if isinstance(data, str):
        if ctx.tables is None or ctx.engine is None:
            raise InvalidArgument(f"cannot read table {data!r}: no lakehouse in this context")
        return TableData(ctx.tables, ctx.engine, data)
    if isinstance(data, TrainingData):
        return data
    return FrameData(data)


def _prepare(
    df: pd.DataFrame,
    source: str,
    *,
    label: str,
    models: str | Sequence[str] | None,
    task: str | None,
    features: Sequence[str] | None,
    exclude: Sequence[str],
    params: Mapping[str, Any] | None,
    metric: str | None,
    test_size: float,
) -> _Prepared:
    """Every check that can fail, before anything is written."""
    check_test_size(test_size)
    y_all = check_label(df, label, source)
    known = y_all.notna()
    dropped = int((~known).sum())
    df = df.loc[known]
    y = y_all.loc[known]
    chosen = infer_task(y, task)
    if is_classification(chosen) and pd.api.types.is_float_dtype(y.dtype):
        if bool(np.all(np.mod(y.to_numpy(), 1) == 0)):
            y = y.astype("int64")
    plan = plan_features(df, label, features=features, exclude=exclude)
    kind = "regression" if chosen == "regression" else "classification"
    names = parse_models(models if models is not None else DEFAULT_MODELS[kind])
    for name in names:
        family(name).estimator_path(chosen)
    resolved = resolve_params(params, names, chosen)
    available: tuple[str, ...] = (
        CLASSIFICATION_METRICS if is_classification(chosen) else REGRESSION_METRICS
    )
    if chosen == "multiclass":
        available = tuple(m for m in available if m not in ("precision", "recall", "f1"))
    ranking = check_metric(metric or default_metric(chosen), available, f"for a {chosen} task")
    if is_classification(chosen):
        counts = y.value_counts()
        check_classes_repeat(counts.to_dict(), label)
        n_test = int(np.ceil(float(test_size) * len(y)))
        if n_test < len(counts) or len(y) - n_test < len(counts):
            raise InvalidArgument(
                f"{len(y)} labelled rows are too few to split with test_size={test_size} "
                f"into train and test sets that each hold all {len(counts)} classes"
            )
    elif len(y) < 4:
        raise InvalidArgument(f"{len(y)} labelled rows are too few to train and evaluate on")
    return _Prepared(
        X=normalise_features(df, plan),
        y=y,
        task=chosen,
        plan=plan,
        models=names,
        params=resolved,
        metric=ranking,
        dropped_label_rows=dropped,
    )


def train(
    ctx: TrainingContext,
    data: Any,
    *,
    label: str,
    experiment: str,
    models: str | Sequence[str] | None = None,
    test_size: float = 0.2,
    seed: int = 42,
    params: Mapping[str, Any] | None = None,
    task: str | None = None,
    features: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    metric: str | None = None,
    run_name: str | None = None,
) -> TrainingResult:
    """Train ``models`` on ``data`` to predict ``label`` and track everything in MLflow.

    ``data`` is a table name, a pandas/polars/Arrow frame, or any :class:`TrainingData`
    (e.g. a feature-store training set). The split is deterministic for a ``seed``
    (stratified for classification). ``params`` holds hyperparameters, either per model
    (``{"xgboost": {"max_depth": 4}}``) or shared (``{"n_estimators": 50}``: every model
    that has the parameter gets it). ``task`` overrides the task inferred from the label.
    Invalid input raises before anything is written to MLflow.
    """
    source = _as_training_data(ctx, data)
    df = source.load_df()
    lineage = source.lineage
    prepared = _prepare(
        df,
        f"table {lineage.name}" if lineage.version is not None else lineage.name,
        label=label,
        models=models,
        task=task,
        features=features,
        exclude=exclude,
        params=params,
        metric=metric,
        test_size=test_size,
    )
    from sklearn.model_selection import train_test_split

    stratify = prepared.y if is_classification(prepared.task) else None
    X_train, X_test, y_train, y_test = train_test_split(
        prepared.X, prepared.y, test_size=float(test_size), random_state=seed, stratify=stratify
    )
    experiment_id = ensure_experiment(ctx.tracking, experiment)
    mlflow_client = client(ctx.tracking)
    common_tags = run_tags(lineage, label=label, task=prepared.task, metric=prepared.metric)
    common_params = run_params(
        lineage,
        label=label,
        task=prepared.task,
        labelled_rows=lineage.rows - prepared.dropped_label_rows,
        test_size=test_size,
        seed=seed,
        split_rows=(len(X_train), len(X_test)),
        features=prepared.plan.features,
    )
    with parent_run(
        mlflow_client,
        experiment_id,
        run_name or f"train {label}",
        tags=common_tags,
        params=common_params,
        models=prepared.models,
        plan=prepared.plan,
    ) as parent:
        runs: list[ModelRun] = []
        for order, name in enumerate(prepared.models):
            runs.append(
                _train_one(
                    ctx,
                    mlflow_client,
                    experiment_id=experiment_id,
                    parent=parent,
                    name=name,
                    order=order,
                    prepared=prepared,
                    split=(X_train, X_test, y_train, y_test),
                    seed=seed,
                    tags=common_tags,
                    params=common_params,
                    full=df,
                    lineage=lineage,
                )
            )
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
        record_best(mlflow_client, parent, prepared.metric, result.best())
    return result


def _needs_label_encoding(y: pd.Series) -> bool:
    """Whether labels are anything but the integers 0..k-1 (XGBoost takes nothing else)."""
    if not pd.api.types.is_integer_dtype(y.dtype) or pd.api.types.is_bool_dtype(y.dtype):
        return True
    values = sorted(int(v) for v in y.unique())
    return values != list(range(len(values)))


def _train_one(
    ctx: TrainingContext,
    c: MlflowClient,
    *,
    experiment_id: str,
    parent: str,
    name: str,
    order: int,
    prepared: _Prepared,
    split: tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series],
    seed: int,
    tags: dict[str, str],
    params: dict[str, Any],
    full: pd.DataFrame,
    lineage: Lineage,
) -> ModelRun:
    X_train, X_test, y_train, y_test = split
    fam = family(name)
    with model_run(c, experiment_id, parent=parent, name=name, tags=tags) as run_id:
        estimator = make_estimator(name, prepared.task, prepared.params[name], seed=seed)
        hyper = estimator.get_params(deep=False)
        if (
            name == "xgboost"
            and is_classification(prepared.task)
            and _needs_label_encoding(prepared.y)
        ):
            estimator = LabelEncodedClassifier(estimator)
        pipeline = build_model_pipeline(prepared.plan, estimator, scale=fam.needs_scaling)
        log_params(c, run_id, {**params, "model": name, **hyper})
        _log_lineage(c, run_id, full, lineage, prepared)

        started = time.perf_counter()
        pipeline.fit(X_train, y_train)
        seconds = time.perf_counter() - started

        evaluation = evaluate(pipeline, X_test, y_test, prepared.task)
        importances = permutation_importances(pipeline, X_test, y_test, prepared.task, seed=seed)
        metrics = {**evaluation.metrics, "training_time_seconds": seconds}
        c.log_batch(run_id, metrics=metric_entities(metrics))
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            evaluation_plots(evaluation, out / "plots", importances)
            (out / "plots" / "feature_importance.json").write_text(
                json.dumps(dict(sorted(importances.items(), key=lambda kv: -kv[1])), indent=2)
            )
            c.log_artifacts(run_id, str(out / "plots"), "plots")
        if is_classification(prepared.task):
            classes = [c_.item() if hasattr(c_, "item") else c_ for c_ in evaluation.classes]
            c.set_tag(run_id, "lakeloom.classes", json.dumps(classes, default=str))
        model_uri = _log_model(ctx, run_id, pipeline, X_train, name)
        c.set_tag(run_id, "lakeloom.model_uri", model_uri)
    return ModelRun(
        model=name,
        run_id=run_id,
        model_uri=model_uri,
        metrics=metrics,
        params={k: v for k, v in hyper.items()},
        training_seconds=seconds,
        order=order,
    )


def _log_lineage(
    c: MlflowClient, run_id: str, df: pd.DataFrame, lineage: Lineage, prepared: _Prepared
) -> None:
    from mlflow.data import pandas_dataset
    from mlflow.data.delta_dataset_source import DeltaDatasetSource
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    class _DeltaSource(DeltaDatasetSource):  # type: ignore[misc]
        # MLflow leaves out version 0 (falsy) from the source; lineage needs it.
        def to_dict(self) -> dict[Any, Any]:
            return {**super().to_dict(), "delta_table_version": lineage.version}

    source = (
        _DeltaSource(path=lineage.uri, delta_table_version=lineage.version) if lineage.uri else None
    )
    columns = [*prepared.plan.features, str(prepared.y.name)]
    dataset = pandas_dataset.from_pandas(
        df.loc[:, columns],
        source=source,  # type: ignore[arg-type]
        name=lineage.name,
        targets=str(prepared.y.name),
    )
    c.log_inputs(
        run_id,
        datasets=[
            DatasetInput(
                dataset=dataset._to_mlflow_entity(),
                tags=[InputTag(key=MLFLOW_DATASET_CONTEXT, value="training")],
            )
        ],
    )


def _requirements(name: str) -> list[str]:
    packages = ["lakeloom", "mlflow", "scikit-learn", "skops", "pandas", "numpy", "scipy"]
    extra = family(name).package
    if extra not in packages:
        packages.append(extra)
    out = []
    for package in packages:
        try:
            out.append(f"{package}=={importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(package)
    return out


def _log_model(
    ctx: TrainingContext, run_id: str, pipeline: Any, X_train: pd.DataFrame, name: str
) -> str:
    import mlflow.sklearn
    from mlflow.models import infer_signature

    example = X_train.head(_INPUT_EXAMPLE_ROWS)
    with warnings.catch_warnings():
        # MLflow hints that integer columns reject missing values at serving time; integer
        # columns are declared ``long`` on purpose (any integer width is accepted), and
        # columns that had missing values in training are ``double`` already.
        warnings.filterwarnings("ignore", message=".*Integer columns in Python cannot")
        signature = infer_signature(X_train, pipeline.predict(example))
    try:
        with using_tracking(ctx.tracking):
            info = mlflow.sklearn.log_model(
                pipeline,
                name=MODEL_ARTIFACT,
                run_id=run_id,
                signature=signature,
                input_example=example,
                serialization_format="skops",
                skops_trusted_types=required_trusted_types(pipeline),
                pip_requirements=_requirements(name),
                metadata={"lakeloom_model": name},
            )
    except LakeloomError:
        raise
    except Exception as exc:
        raise TrackingError(f"cannot log the {name} model to MLflow: {exc}") from exc
    return str(info.model_uri)
