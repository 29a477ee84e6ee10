"""The ``spark_train`` step kind: Spark ML pipelines tuned by cross-validation, on Spark.

::

    [[steps]]
    name = "spark_train"
    kind = "spark_train"
    engines = ["spark"]            # run it only when the workspace's engine is spark
    table = "ml.churn_training"
    label = "churned"
    experiment = "churn"
    models = ["logistic_regression", "gbt"]
    cv = 3
    grid = { gbt = { maxDepth = [3, 5] }, maxIter = 50 }

Each fitted ``PipelineModel`` is logged to MLflow (``mlflow.spark``) and saved by Spark under
the workspace's ``Files/models/<experiment>/<model>/<run id>``; a ``register`` step after it
registers the best run as with the ``train`` kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from lakeloom.pipelines.steps import StepContext, step_kind

__all__ = ["SparkTrainParams", "spark_train_step"]


@dataclass(frozen=True)
class SparkTrainParams:
    """Keys of a ``spark_train`` step."""

    table: str
    label: str
    experiment: str
    models: list[str] | None = None
    #: Cross-validation folds (0: one train/validation split instead).
    cv: int = 3
    #: Parameter grids: shared (``maxIter = 50``) or per model (``gbt = { maxDepth = [3, 5] }``).
    grid: dict[str, Any] | None = None
    task: Literal["classification", "binary", "multiclass", "regression"] | None = None
    metric: str | None = None
    test_size: float = 0.2
    seed: int = 42
    features: list[str] | None = None
    exclude: list[str] | None = None
    #: Models fitted at the same time while tuning [default: up to 4].
    parallelism: int | None = None

    def __post_init__(self) -> None:
        if not 0 < self.test_size < 1:
            raise ValueError(f"key 'test_size' must be between 0 and 1, got {self.test_size}")
        if self.cv < 0 or self.cv == 1 or self.cv > 20:
            raise ValueError(f"key 'cv' must be 0 or a number of folds from 2 to 20, got {self.cv}")
        if self.parallelism is not None and self.parallelism < 1:
            raise ValueError(f"key 'parallelism' must be at least 1, got {self.parallelism}")


@step_kind("spark_train")
def spark_train_step(ctx: StepContext, params: SparkTrainParams) -> str | None:
    """Train Spark ML pipelines on a table (cross-validated; one MLflow run per model)."""
    from lakeloom.training.spark_ml import train_spark
    from lakeloom.training.train import TrainingContext

    seen = ctx.used(params.table)
    ws = ctx.workspace
    result = train_spark(
        TrainingContext(ws.tracking, ws.tables, ws.engine),
        params.table,
        version=seen.version,
        label=params.label,
        experiment=params.experiment,
        models=params.models,
        cv=params.cv,
        params=params.grid,
        test_size=params.test_size,
        seed=params.seed,
        task=params.task,
        features=params.features,
        exclude=params.exclude or (),
        metric=params.metric,
        run_name=f"{ctx.pipeline}/{ctx.step}",
        parallelism=params.parallelism,
        save_to=ws.storage.uri("Files", "models"),
    )
    ranking = ", ".join(f"{r.model} {r.metrics[result.metric]:.4f}" for r in result.ranked())
    return f"{result.metric}: {ranking} (parent run {result.parent_run_id})"
