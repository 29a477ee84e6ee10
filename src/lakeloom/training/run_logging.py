"""The MLflow runs of a training, shared by the scikit-learn and the Spark ML paths.

Both log the same way, so that ``lakeloom runs compare`` reads either: one parent run (tags
with the data's lineage, the label, task and ranking metric; the common parameters; the
feature plan as ``features.json``; the best child at the end) and one child run per model
family. A run that raises is marked FAILED (KILLED on Ctrl-C), never left RUNNING.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from lakeloom.errors import LakeloomError, TrackingError, TrainingError
from lakeloom.models.data import Lineage
from lakeloom.tracking.runs import PARENT_TAG, TAG_KIND, TAG_METRIC, TAG_MODEL

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from lakeloom.models.preprocessing import FeaturePlan

__all__ = [
    "create_run",
    "first_line",
    "log_params",
    "metric_entities",
    "model_run",
    "parent_run",
    "record_best",
    "run_params",
    "run_tags",
    "terminal_status",
]

_PARAM_MAX = 6000


class _Best(Protocol):
    @property
    def run_id(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def metrics(self) -> dict[str, float]: ...


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def run_tags(
    lineage: Lineage, *, label: str, task: str, metric: str, engine: str | None = None
) -> dict[str, str]:
    """The tags every run of a training carries: lineage, label, task, ranking metric."""
    tags = {**lineage.tags(), "lakeloom.label": label, "lakeloom.task": task}
    if engine is not None:
        tags["lakeloom.engine"] = engine
    return {**tags, TAG_METRIC: metric}


def run_params(
    lineage: Lineage,
    *,
    label: str,
    task: str,
    labelled_rows: int,
    test_size: float,
    seed: int,
    split_rows: tuple[int, int],
    features: Sequence[str],
) -> dict[str, Any]:
    """The parameters every run of a training logs: data, split and features."""
    train_rows, test_rows = split_rows
    return {
        "label": label,
        "task": task,
        "data.table": lineage.name,
        "data.version": lineage.version,
        "data.rows": lineage.rows,
        "data.rows_without_label": lineage.rows - labelled_rows,
        "split.test_size": test_size,
        "split.seed": seed,
        "split.train_rows": train_rows,
        "split.test_rows": test_rows,
        "features": ",".join(features),
    }


def create_run(c: MlflowClient, experiment_id: str, name: str, tags: dict[str, str]) -> str:
    """Start a run; its id. An MLflow failure becomes a one-line :class:`TrackingError`."""
    try:
        return str(c.create_run(experiment_id, run_name=name, tags=tags).info.run_id)
    except Exception as exc:
        raise TrackingError(f"cannot create an MLflow run: {first_line(exc)}") from None


class terminal_status:
    """Mark a run FINISHED on success, FAILED on an error, KILLED on Ctrl-C."""

    def __init__(self, c: MlflowClient, run_id: str) -> None:
        self._client = c
        self._run_id = run_id

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            status = "FINISHED"
        elif issubclass(exc_type, KeyboardInterrupt):
            status = "KILLED"
        else:
            status = "FAILED"
            if exc is not None:
                try:
                    self._client.set_tag(self._run_id, "lakeloom.error", first_line(exc)[:5000])
                except Exception:
                    pass
        try:
            self._client.set_terminated(self._run_id, status=status)
        except Exception:
            if exc_type is None:
                raise


def _param_value(value: Any) -> str:
    if isinstance(value, float | np.floating) and float(value).is_integer():
        text = repr(float(value))
    elif isinstance(value, type):
        text = value.__name__
    else:
        text = str(value)
    return text if len(text) <= _PARAM_MAX else text[: _PARAM_MAX - 3] + "..."


def log_params(c: MlflowClient, run_id: str, params: Mapping[str, Any]) -> None:
    """Log ``params`` in batches (MLflow takes 100 at a time), long values cut short."""
    from mlflow.entities import Param

    items = [Param(str(k), _param_value(v)) for k, v in params.items()]
    for start in range(0, len(items), 100):
        c.log_batch(run_id, params=items[start : start + 100])


def metric_entities(metrics: Mapping[str, float]) -> list[Any]:
    """MLflow ``Metric`` entities for the finite values of ``metrics``, stamped now."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(k, float(v), now, 0) for k, v in metrics.items() if math.isfinite(float(v))]


@contextmanager
def parent_run(
    c: MlflowClient,
    experiment_id: str,
    name: str,
    *,
    tags: dict[str, str],
    params: Mapping[str, Any],
    models: Sequence[str],
    plan: FeaturePlan,
) -> Iterator[str]:
    """The parent run of a training, with its parameters and feature plan logged."""
    joined = ",".join(models)
    parent = create_run(
        c, experiment_id, name, {**tags, TAG_KIND: "train", "lakeloom.models": joined}
    )
    with terminal_status(c, parent):
        log_params(c, parent, {**params, "models": joined})
        c.log_text(parent, json.dumps(plan.to_dict(), indent=2), "features.json")
        yield parent


def record_best(c: MlflowClient, parent: str, metric: str, best: _Best) -> None:
    """Mark the parent run with its best child and that child's score."""
    c.log_metric(parent, f"best_{metric}", best.metrics[metric])
    c.set_tag(parent, "lakeloom.best_run_id", best.run_id)
    c.set_tag(parent, "lakeloom.best_model", best.model)


@contextmanager
def model_run(
    c: MlflowClient,
    experiment_id: str,
    *,
    parent: str,
    name: str,
    tags: dict[str, str],
    where: str = "",
) -> Iterator[str]:
    """The child run of model family ``name``; an unexpected error in it becomes a
    one-line :class:`TrainingError` (``training NAME{where} failed``) naming the run.
    """
    run_id = create_run(
        c,
        experiment_id,
        name,
        {**tags, PARENT_TAG: parent, TAG_KIND: "train-model", TAG_MODEL: name},
    )
    try:
        with terminal_status(c, run_id):
            yield run_id
    except LakeloomError:
        raise
    except Exception as exc:
        raise TrainingError(
            f"training {name}{where} failed: {first_line(exc)}; its run {run_id} is marked FAILED"
        ) from exc
