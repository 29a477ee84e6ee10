"""The ``automl`` step kind: AutoML on a table, compared with manual runs, maybe registered."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lakeloom.durations import parse_duration
from lakeloom.pipelines.steps import StepContext, step_kind

__all__ = ["AutoMLParams", "automl_step"]


@dataclass(frozen=True)
class AutoMLParams:
    """Keys of an ``automl`` step."""

    table: str
    label: str
    time_limit: str = "5m"
    task: Literal["auto", "classification", "regression"] = "auto"
    trials: int | None = None
    models: list[str] | None = None
    metric: str = "auto"
    experiment: str | None = None
    seed: int = 0
    #: Register the winner as a new version of this model.
    register: str | None = None
    #: With ``register``: the alias to move (through the registry's gate).
    alias: str | None = None
    #: With ``alias``: the table the gate scores the candidate and the alias' holder on.
    holdout: str | None = None
    #: With ``alias``: how much better than the alias' holder the winner must score.
    min_improvement: float = 0.0
    #: Columns of ``table`` not to learn from (identifiers, label dates).
    exclude: list[str] | None = None

    def __post_init__(self) -> None:
        parse_duration(self.time_limit)
        if self.alias and not self.register:
            raise ValueError("key 'alias' needs key 'register' (the model name)")
        if self.alias and not self.holdout:
            raise ValueError("key 'alias' needs key 'holdout' (the gate scores models on it)")
        if self.min_improvement < 0:
            raise ValueError("key 'min_improvement' must not be negative")
        if self.trials is not None and self.trials < 2:
            raise ValueError("key 'trials' must be at least 2")


@step_kind("automl")
def automl_step(ctx: StepContext, params: AutoMLParams) -> str | None:
    """Search models with FLAML on a table and compare the winner with the manual runs."""
    from lakeloom.automl.runner import run_automl

    ctx.used(params.table)
    report = run_automl(
        ctx.workspace,
        params.table,
        params.label,
        task=params.task,
        time_limit=params.time_limit,
        n_trials=params.trials,
        models=params.models,
        metric=params.metric,
        experiment=params.experiment,
        seed=params.seed,
        register_as=params.register,
        alias=params.alias,
        holdout=params.holdout,
        min_improvement=params.min_improvement,
        exclude=params.exclude,
    )
    if params.holdout:
        ctx.used(params.holdout)
    line = f"{report.best_model} {report.metric} {report.best_score:.4f} ({report.n_trials} trials)"
    if report.manual is not None:
        line += f"; best manual {report.manual['model']} {report.manual['value']:.4f}"
    reg = report.registered
    if reg is not None:
        line += f"; registered {reg['name']} v{reg['version']}"
        if reg.get("alias"):
            line += f", {reg['alias']} {'promoted' if reg['promoted'] else 'kept (gate refused)'}"
    return line
