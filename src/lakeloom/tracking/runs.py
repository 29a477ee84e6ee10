"""Experiments and runs: listing, comparing and picking the best run by a metric.

``ws.runs.compare("churn", "roc_auc")`` is a pandas DataFrame, best first; ties are broken by
the earlier start time, then by run id, so the same runs always give the same order.
"""

from __future__ import annotations

import builtins
import contextlib
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from lakeloom.errors import ExperimentNotFound, InvalidArgument, RunNotFound, TrackingError
from lakeloom.models.metric_names import check_metric, higher_is_better
from lakeloom.tracking.store import TrackingConfig, client

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities import Run

__all__ = ["RunSummary", "Runs", "rank_key", "using_tracking"]

#: Tag keys lakeloom writes on its runs.
TAG_KIND = "lakeloom.kind"
TAG_MODEL = "lakeloom.model"
TAG_METRIC = "lakeloom.metric"
PARENT_TAG = "mlflow.parentRunId"
_URI_VARS = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@contextlib.contextmanager
def using_tracking(config: TrackingConfig) -> Iterator[None]:
    """Point MLflow's process-wide URIs at ``config`` for a block, then restore them exactly.

    Only for MLflow calls that have no client argument (``log_model``); lakeloom's own calls
    use an explicit client. MLflow mirrors its URIs into ``MLFLOW_TRACKING_URI`` and
    ``MLFLOW_REGISTRY_URI``; those are restored to what they were too.
    """
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    if (
        tracking_utils._tracking_uri == config.tracking_uri
        and registry_utils._registry_uri == config.registry_uri
    ):
        yield
        return
    saved_env = {var: os.environ.get(var) for var in _URI_VARS}
    saved = (tracking_utils._tracking_uri, registry_utils._registry_uri)
    mlflow.set_tracking_uri(config.tracking_uri)
    mlflow.set_registry_uri(config.registry_uri)
    try:
        yield
    finally:
        tracking_utils.set_tracking_uri(saved[0])  # type: ignore[arg-type]  # None unsets
        registry_utils._registry_uri = saved[1]
        for var, value in saved_env.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


@dataclass(frozen=True)
class RunSummary:
    """One MLflow run as lakeloom shows it."""

    run_id: str
    run_name: str
    experiment_id: str
    status: str
    start_time: datetime | None
    model: str | None
    parent_run_id: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_run(cls, run: Run) -> RunSummary:
        """Summarise an MLflow ``Run``."""
        tags = dict(run.data.tags)
        start = run.info.start_time
        return cls(
            run_id=run.info.run_id,
            run_name=run.info.run_name or "",
            experiment_id=str(run.info.experiment_id),
            status=run.info.status,
            start_time=datetime.fromtimestamp(start / 1000, UTC) if start else None,
            model=tags.get(TAG_MODEL),
            parent_run_id=tags.get(PARENT_TAG),
            metrics=dict(run.data.metrics),
            params=dict(run.data.params),
            tags=tags,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "run_id": self.run_id,
            "run_name": self.run_name,
            "experiment_id": self.experiment_id,
            "status": self.status,
            "start_time": self.start_time.isoformat() if self.start_time else None,
            "model": self.model,
            "parent_run_id": self.parent_run_id,
            "metrics": self.metrics,
        }


def rank_key(metric: str) -> Any:
    """Sort key for runs by ``metric``: best first, then earlier start, then run id."""

    def key(run: RunSummary) -> tuple[float, float, str]:
        value = run.metrics[metric]
        start = run.start_time.timestamp() if run.start_time else float("inf")
        return (-value if higher_is_better(metric) else value, start, run.run_id)

    return key


class Runs:
    """Runs of the workspace's experiments (``ws.runs``)."""

    def __init__(self, config: TrackingConfig) -> None:
        self._config = config

    @property
    def client(self) -> MlflowClient:
        """The ``MlflowClient`` bound to the workspace's store."""
        return client(self._config)

    def experiments(self) -> list[str]:
        """Names of the active experiments, sorted."""
        return sorted(e.name for e in _paged(self.client.search_experiments))

    def experiment_id(self, experiment: str) -> str:
        """The id of ``experiment`` (a name), or :class:`ExperimentNotFound`."""
        if not isinstance(experiment, str) or not experiment.strip():
            raise InvalidArgument("experiment name must not be empty")
        try:
            found = self.client.get_experiment_by_name(experiment)
        except Exception as exc:
            raise TrackingError(
                f"cannot read experiments at {self._config.tracking_uri}: {exc}"
            ) from None
        if found is None or found.lifecycle_stage == "deleted":
            raise ExperimentNotFound(experiment, self.experiments())
        return str(found.experiment_id)

    def get(self, run_id: str) -> RunSummary:
        """The run ``run_id``, or :class:`RunNotFound`."""
        from mlflow.exceptions import MlflowException

        try:
            return RunSummary.from_run(self.client.get_run(run_id))
        except MlflowException:
            raise RunNotFound(
                f"run {run_id!r} does not exist at {self._config.tracking_uri}"
            ) from None

    def list(
        self,
        experiment: str,
        *,
        parent_run: str | None = None,
        status: str | None = "FINISHED",
    ) -> builtins.list[RunSummary]:
        """Runs of ``experiment`` (newest first), optionally the children of ``parent_run``."""
        eid = self.experiment_id(experiment)
        clauses = []
        if status:
            clauses.append(f"attributes.status = '{status}'")
        if parent_run:
            clauses.append(f"tags.`{PARENT_TAG}` = '{parent_run}'")
        runs = _paged(
            lambda **kw: self.client.search_runs([eid], filter_string=" and ".join(clauses), **kw)
        )
        return [RunSummary.from_run(r) for r in runs]

    def _ranked(
        self, experiment: str, metric: str | None, parent_run: str | None
    ) -> tuple[str, builtins.list[RunSummary]]:
        runs = [
            r
            for r in self.list(experiment, parent_run=parent_run)
            if r.tags.get(TAG_KIND) != "gate"
        ]
        if metric is None:
            tagged = Counter(r.tags[TAG_METRIC] for r in runs if TAG_METRIC in r.tags)
            if not tagged:
                available = sorted({m for r in runs for m in r.metrics})
                raise InvalidArgument(
                    f"pass a metric to compare experiment {experiment!r} by; available: "
                    f"{', '.join(available) or 'none (no finished runs with metrics)'}"
                )
            metric = tagged.most_common(1)[0][0]
        available = sorted({m for r in runs for m in r.metrics})
        check_metric(metric, available, f"in experiment {experiment!r}")
        with_metric = [r for r in runs if metric in r.metrics]
        return metric, sorted(with_metric, key=rank_key(metric))

    def compare(
        self, experiment: str, metric: str | None = None, *, parent_run: str | None = None
    ) -> pd.DataFrame:
        """The finished runs of ``experiment`` that have ``metric``, best first.

        Columns: ``rank``, ``run_id``, ``run_name``, ``model``, ``metric`` first and then the
        other metrics, ``status``, ``start_time``, ``parent_run_id``.
        """
        import pandas as pd

        metric, ranked = self._ranked(experiment, metric, parent_run)
        others = sorted({m for r in ranked for m in r.metrics} - {metric})
        rows = []
        for i, run in enumerate(ranked, start=1):
            row: dict[str, Any] = {
                "rank": i,
                "run_id": run.run_id,
                "run_name": run.run_name,
                "model": run.model or "",
                metric: run.metrics[metric],
            }
            row.update({m: run.metrics.get(m, float("nan")) for m in others})
            row.update(
                {
                    "status": run.status,
                    "start_time": run.start_time,
                    "parent_run_id": run.parent_run_id or "",
                }
            )
            rows.append(row)
        columns = ["rank", "run_id", "run_name", "model", metric, *others]
        columns += ["status", "start_time", "parent_run_id"]
        frame = pd.DataFrame(rows, columns=columns)
        frame.attrs["metric"] = metric
        frame.attrs["higher_is_better"] = higher_is_better(metric)
        return frame

    def best(
        self, experiment: str, metric: str | None = None, *, parent_run: str | None = None
    ) -> RunSummary:
        """The best run of ``experiment`` by ``metric`` (ties: earlier start, then run id)."""
        metric, ranked = self._ranked(experiment, metric, parent_run)
        if not ranked:
            raise RunNotFound(f"experiment {experiment!r} has no finished run with {metric!r}")
        return ranked[0]


def _paged(search: Any) -> list[Any]:
    out: list[Any] = []
    token = None
    while True:
        page = search(page_token=token, max_results=1000) if token else search(max_results=1000)
        out.extend(page)
        token = getattr(page, "token", None)
        if not token:
            return out
