"""One AutoML run on a table, compared with the experiment's best manual run.

What ``lakeloom automl run`` and the pipeline step ``automl`` do; both only render the
:class:`AutoMLReport` this returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from lakeloom.automl.data import AutoMLContext
from lakeloom.automl.estimators import AutoMLClassifier, AutoMLRegressor
from lakeloom.automl.tracking import best_manual_run
from lakeloom.durations import parse_duration
from lakeloom.errors import InvalidArgument, SchemaMismatch
from lakeloom.models.data import Lineage, TrainingData
from lakeloom.models.metric_names import higher_is_better
from lakeloom.training.sources import TableData

__all__ = ["AutoMLReport", "WithoutColumns", "run_automl"]

TASKS = ("auto", "classification", "regression")


@dataclass
class AutoMLReport:
    """The outcome of :func:`run_automl`."""

    experiment: str
    table: str
    label: str
    task: str
    metric: str
    best_model: str
    best_score: float
    run_id: str
    model_uri: str
    n_trials: int
    seconds: float
    overrun_seconds: float | None
    #: Seconds per phase of the fit (prepare, tracking, search, refit, logging).
    phases: dict[str, float]
    leaderboard: list[dict[str, Any]]
    features: list[dict[str, Any]]
    #: The best manual run of the experiment by the same metric (None when there is none).
    manual: dict[str, Any] | None = None
    #: True when AutoML's validation score beats the manual run's held-out score.
    beats_manual: bool | None = None
    registered: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return dict(self.__dict__)


def _records(frame: Any) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]


def _task_of(context: AutoMLContext, table: str, label: str, task: str) -> str:
    if task not in TASKS:
        raise InvalidArgument(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if task != "auto":
        return task
    from lakeloom.models.labels import infer_task

    tables = context.tables
    engine = context.engine
    if tables is None or engine is None:
        raise InvalidArgument("cannot read a table without a lakehouse")
    frame = engine.to_arrow(tables.read(table, columns=[label])).to_pandas()
    if label not in frame.columns:
        raise InvalidArgument(f"label column {label!r} is not in table {table}")
    return "regression" if infer_task(frame[label]) == "regression" else "classification"


@dataclass
class WithoutColumns:
    """A training source with some columns left out (identifiers, dates a model must not use)."""

    source: TrainingData
    exclude: list[str]

    def load_df(self) -> pd.DataFrame:
        """The source's rows without the excluded columns."""
        frame = self.source.load_df()
        missing = [c for c in self.exclude if c not in frame.columns]
        if missing:
            raise SchemaMismatch(
                f"column(s) to exclude {', '.join(map(repr, missing))} not in "
                f"{self.source.lineage.name}"
            )
        return frame.drop(columns=self.exclude)

    @property
    def lineage(self) -> Lineage:
        """The source's lineage."""
        return self.source.lineage


def run_automl(
    context: AutoMLContext,
    table: str,
    label: str,
    *,
    task: str = "auto",
    time_limit: str | float = "5m",
    n_trials: int | None = None,
    models: list[str] | None = None,
    metric: str = "auto",
    experiment: str | None = None,
    seed: int = 0,
    register_as: str | None = None,
    alias: str | None = None,
    holdout: str | None = None,
    min_improvement: float = 0.0,
    exclude: list[str] | None = None,
) -> AutoMLReport:
    """Fit AutoML on ``table``, compare with the best manual run, optionally register.

    With ``register_as`` the winner becomes a new version of that model; with ``alias`` too,
    the registry's gate moves the alias only if the version beats its holder on ``holdout``
    (by ``min_improvement``). ``exclude`` names columns of ``table`` not to learn from.
    """
    kind = _task_of(context, table, label, task)
    seconds = parse_duration(time_limit).total_seconds()
    cls = AutoMLClassifier if kind == "classification" else AutoMLRegressor
    name = experiment or table.split(".")[-1]
    automl = cls(
        experiment_name=name,
        target_column=label,
        time_limit_minutes=seconds / 60,
        n_trials=n_trials,
        models=models,
        metric=metric,
        seed=seed,
        context=context,
    )
    data: Any = table
    if exclude:
        tables, engine = context.tables, context.engine
        if tables is None or engine is None:
            raise InvalidArgument("cannot read a table without a lakehouse")
        if label in exclude:
            raise InvalidArgument(f"the label {label!r} cannot be excluded")
        data = WithoutColumns(TableData(tables, engine, table), list(exclude))
    automl.fit(data)
    report = AutoMLReport(
        experiment=name,
        table=table,
        label=label,
        task=automl.task_,
        metric=automl.metric_,
        best_model=automl.best_model_name,
        best_score=automl.best_score,
        run_id=automl.best_run_id,
        model_uri=automl.best_model_uri_,
        n_trials=automl.n_trials_,
        seconds=float(automl.budget_["total"] or 0.0),
        overrun_seconds=automl.budget_["overrun"],
        phases={
            k: float(v)
            for k, v in automl.budget_.items()
            if k not in ("limit", "total", "overrun") and v is not None
        },
        leaderboard=_records(automl.leaderboard_.head(10)),
        features=_records(automl.feature_report_),
    )
    manual = best_manual_run(context.tracking, name, automl.metric_)
    if manual is not None:
        report.manual = manual
        sign = 1.0 if higher_is_better(automl.metric_) else -1.0
        report.beats_manual = sign * (automl.best_score - manual["value"]) > 0
        report.notes.append(
            f"AutoML's {automl.metric_} is cross-validated on the training rows; the manual "
            "run's is on its held-out rows"
        )
    if register_as:
        report.registered = automl.register(
            register_as, alias, holdout=holdout, min_improvement=min_improvement
        )
    return report
