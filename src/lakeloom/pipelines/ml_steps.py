"""The ``train``, ``register`` and ``gate`` step kinds: training to production in a pipeline.

::

    [[steps]]
    name = "train"
    kind = "train"
    table = "ml.churn_train"
    label = "churned"
    experiment = "churn"
    models = ["logistic_regression", "random_forest", "xgboost"]
    hyperparameters = { n_estimators = 100, xgboost = { max_depth = 4 } }

    [[steps]]
    name = "register"
    kind = "register"
    model = "churn_model"
    experiment = "churn"          # the best run of the latest training in it
    metric = "roc_auc"

    [[steps]]
    name = "gate"
    kind = "gate"
    model = "churn_model"         # its latest version is the candidate
    holdout = "ml.churn_holdout"
    alias = "production"
    min_improvement = 0.005
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from lakeloom.errors import GateRefused, RunNotFound
from lakeloom.pipelines.steps import StepContext, step_kind

__all__ = [
    "GateParams",
    "RegisterParams",
    "TrainParams",
    "gate_step",
    "register_step",
    "train_step",
]


@dataclass(frozen=True)
class TrainParams:
    """Keys of a ``train`` step."""

    table: str
    label: str
    experiment: str
    models: list[str] | None = None
    #: Shared (``n_estimators = 50``) or per model (``xgboost = { max_depth = 4 }``).
    hyperparameters: dict[str, Any] | None = None
    task: Literal["classification", "binary", "multiclass", "regression"] | None = None
    metric: str | None = None
    test_size: float = 0.2
    seed: int = 42
    features: list[str] | None = None
    exclude: list[str] | None = None

    def __post_init__(self) -> None:
        if not 0 < self.test_size < 1:
            raise ValueError(f"key 'test_size' must be between 0 and 1, got {self.test_size}")
        if self.hyperparameters is not None and not isinstance(self.hyperparameters, dict):
            raise ValueError("key 'hyperparameters' must be a table of NAME = VALUE")


@step_kind("train")
def train_step(ctx: StepContext, params: TrainParams) -> str | None:
    """Train models on a table (one MLflow run per model) and rank them."""
    from lakeloom.training.sources import TableData

    seen = ctx.used(params.table)
    ws = ctx.workspace
    result = ws.train(
        TableData(ws.tables, ws.engine, params.table, version=seen.version),
        label=params.label,
        experiment=params.experiment,
        models=params.models,
        test_size=params.test_size,
        seed=params.seed,
        params=params.hyperparameters,
        task=params.task,
        features=params.features,
        exclude=params.exclude or (),
        metric=params.metric,
        run_name=f"{ctx.pipeline}/{ctx.step}",
    )
    ranking = ", ".join(f"{r.model} {r.metrics[result.metric]:.4f}" for r in result.ranked())
    return f"{result.metric}: {ranking} (parent run {result.parent_run_id})"


@dataclass(frozen=True)
class RegisterParams:
    """Keys of a ``register`` step."""

    model: str
    #: The run to register; else the best run of ``experiment``.
    run: str | None = None
    experiment: str | None = None
    metric: str | None = None
    #: ``latest``: the best run of the experiment's latest training; ``all``: of every run.
    scope: Literal["latest", "all"] = "latest"

    def __post_init__(self) -> None:
        if (self.run is None) == (self.experiment is None):
            raise ValueError("give key 'run' or key 'experiment' (one of them)")


@step_kind("register")
def register_step(ctx: StepContext, params: RegisterParams) -> str | None:
    """Register a run's model (by default the best of the latest training) as a new version."""
    ws = ctx.workspace
    run_id = params.run
    if run_id is None:
        assert params.experiment is not None
        parent = None
        if params.scope == "latest":
            trainings = [
                r
                for r in ws.runs.list(params.experiment)
                if r.tags.get("lakeloom.kind") == "train" and r.parent_run_id is None
            ]
            if not trainings:
                raise RunNotFound(
                    f"experiment {params.experiment!r} has no finished lakeloom training"
                )
            parent = trainings[0].run_id  # newest first
        run_id = ws.runs.best(params.experiment, params.metric, parent_run=parent).run_id
    info = ws.registry.register(run_id, name=params.model)
    return f"{info.name} v{info.version} ({info.tags.get('lakeloom.model', 'model')}, run {run_id})"


@dataclass(frozen=True)
class GateParams:
    """Keys of a ``gate`` step."""

    model: str
    holdout: str
    alias: str = "production"
    #: The version to promote [default: the model's latest version].
    candidate: int | None = None
    metric: str | None = None
    min_improvement: float = 0.0
    threshold: float | None = None
    label: str | None = None
    reason: str = ""
    #: Fail the step (and the pipeline) when the gate refuses, instead of going on.
    fail_on_refuse: bool = False

    def __post_init__(self) -> None:
        if self.min_improvement < 0:
            raise ValueError("key 'min_improvement' must be >= 0")


@step_kind("gate")
def gate_step(ctx: StepContext, params: GateParams) -> str | None:
    """Promote a model version to an alias only if it beats the current holder on a holdout."""
    ws = ctx.workspace
    ctx.used(params.holdout)
    candidate = params.candidate
    if candidate is None:
        candidate = ws.registry.resolve(f"models:/{params.model}/latest").version
    result = ws.registry.gate(
        params.model,
        candidate=candidate,
        holdout=params.holdout,
        alias=params.alias,
        metric=params.metric,
        min_improvement=params.min_improvement,
        threshold=params.threshold,
        label=params.label,
        reason=params.reason or f"pipeline {ctx.pipeline} run {ctx.run_id}",
    )
    line = f"{params.model}@{params.alias} {result.decision}: {result.reason}"
    if not result.promoted and params.fail_on_refuse:
        raise GateRefused(line)
    return line
