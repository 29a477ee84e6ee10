"""MLflow for one AutoML fit: a parent run, a child run per trial, the model and artifacts.

Trials are logged while the search runs (from FLAML's training log, on a background thread),
so logging hundreds of trials does not add to the end of the fit. lakeloom's calls use an
explicit client bound to the context's tracking config; only ``log_model``, which has no
client argument, runs with the process-wide URIs pointed there for the call.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from lakeloom.automl.scoring import Metric
from lakeloom.automl.search import Trial
from lakeloom.errors import LakeloomError, TrackingError
from lakeloom.models.trust import required_trusted_types
from lakeloom.tracking.runs import PARENT_TAG, TAG_KIND, TAG_METRIC, TAG_MODEL, using_tracking
from lakeloom.tracking.store import TrackingConfig, client, ensure_experiment

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["AUTOML_KIND", "TRIAL_KIND", "AutoMLRun", "automl_trusted_types"]

AUTOML_KIND = "automl"
TRIAL_KIND = "automl-trial"
MODEL_ARTIFACT = "model"
_PARAM_MAX = 6000

#: lakeloom's own classes inside AutoML models (skops must be told they are safe).
AUTOML_TYPES = (
    "lakeloom.automl.featurize.AutoFeaturizer",
    "lakeloom.automl.ensemble.WeightedEnsembleClassifier",
    "lakeloom.automl.ensemble.WeightedEnsembleRegressor",
    # FLAML's k-nearest-neighbours learner keeps scikit-learn's search trees and metrics.
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.metrics._dist_metrics.ManhattanDistance64",
    "sklearn.metrics._dist_metrics.MinkowskiDistance64",
)


def automl_trusted_types(model: Any) -> list[str]:
    """The skops types an AutoML model needs: lakeloom's trusted list plus its own classes."""
    return required_trusted_types(model, extra=AUTOML_TYPES)


def requirements(model: Any) -> list[str]:
    """Pinned pip requirements of an AutoML model (given, so MLflow need not infer them)."""
    import importlib.metadata

    packages = ["lakeloom", "mlflow", "scikit-learn", "skops", "pandas", "numpy", "scipy"]
    members = getattr(model.steps[-1][1], "members_", []) if hasattr(model, "steps") else []
    for member in members:
        inner = member.steps[-1][1] if hasattr(member, "steps") else member
        root = type(inner).__module__.split(".")[0]
        if root in ("lightgbm", "xgboost", "catboost") and root not in packages:
            packages.append(root)
    out = []
    for package in packages:
        try:
            out.append(f"{package}=={importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(package)
    return out


def _text(value: Any) -> str:
    text = json.dumps(value, default=str) if isinstance(value, dict | list) else str(value)
    return text if len(text) <= _PARAM_MAX else text[: _PARAM_MAX - 3] + "..."


class AutoMLRun:
    """The parent run of one fit; create with :meth:`start`."""

    def __init__(self, config: TrackingConfig, experiment_id: str, run_id: str) -> None:
        self.config = config
        self.experiment_id = experiment_id
        self.run_id = run_id
        self._client: MlflowClient = client(config)
        self._start_ms = int(time.time() * 1000)
        self.trials_logged = 0

    @classmethod
    def start(
        cls,
        config: TrackingConfig,
        experiment: str,
        *,
        run_name: str,
        params: Mapping[str, Any],
        tags: Mapping[str, str],
    ) -> AutoMLRun:
        """Create the experiment if needed and start the parent run."""
        experiment_id = ensure_experiment(config, experiment)
        c = client(config)
        try:
            run = c.create_run(
                experiment_id, run_name=run_name, tags={**tags, TAG_KIND: AUTOML_KIND}
            )
        except Exception as exc:
            raise TrackingError(f"cannot create an MLflow run: {exc}") from exc
        out = cls(config, experiment_id, str(run.info.run_id))
        out.log_params(params)
        return out

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log parameters of the parent run."""
        from mlflow.entities import Param

        items = [Param(str(k), _text(v)) for k, v in params.items() if v is not None]
        for i in range(0, len(items), 100):
            self._client.log_batch(self.run_id, params=items[i : i + 100])

    def log_metrics(self, metrics: Mapping[str, float | None]) -> None:
        """Log metrics of the parent run (None and non-finite values are skipped)."""
        from mlflow.entities import Metric as MlflowMetric

        now = int(time.time() * 1000)
        items = [
            MlflowMetric(k, float(v), now, 0)
            for k, v in metrics.items()
            if v is not None and abs(float(v)) != float("inf") and v == v
        ]
        if items:
            self._client.log_batch(self.run_id, metrics=items)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Tag the parent run."""
        from mlflow.entities import RunTag

        self._client.log_batch(self.run_id, tags=[RunTag(k, _text(v)) for k, v in tags.items()])

    def log_trial(self, trial: Trial, metric: Metric) -> None:
        """One child run: the trial's learner, hyperparameters, score and duration."""
        from mlflow.entities import Metric as MlflowMetric
        from mlflow.entities import Param

        end = self._start_ms + int(trial.wall_clock * 1000)
        begin = end - int(trial.train_time * 1000)
        run = self._client.create_run(
            self.experiment_id,
            start_time=begin,
            run_name=f"trial-{trial.number:03d}-{trial.learner}",
            tags={
                PARENT_TAG: self.run_id,
                TAG_KIND: TRIAL_KIND,
                TAG_MODEL: trial.learner,
                TAG_METRIC: metric.name,
            },
        )
        params = [Param("learner", trial.learner)] + [
            Param(str(k), _text(v))
            for k, v in trial.config.items()
            if str(k) != "learner"  # parallel (Spark) trials carry it in their config too
        ]
        metrics = [
            MlflowMetric(metric.name, metric.score_from_loss(trial.loss), end, 0),
            MlflowMetric("val_loss", trial.loss, end, 0),
            MlflowMetric("train_time_seconds", trial.train_time, end, 0),
            MlflowMetric("sample_size", float(trial.sample_size), end, 0),
        ]
        self._client.log_batch(run.info.run_id, metrics=metrics, params=params[:100])
        self._client.set_terminated(run.info.run_id, end_time=end)
        self.trials_logged += 1

    def log_artifacts(self, folder: Path, path: str | None = None) -> None:
        """Upload every file of ``folder`` under ``path``."""
        self._client.log_artifacts(self.run_id, str(folder), path)

    def log_model(self, model: Any, X: pd.DataFrame, name: str, used: list[str]) -> str:
        """Log the fitted pipeline with its signature and an input example; returns its URI.

        Columns the featurizer drops are optional in the signature: callers may send them
        (a raw row) or leave them out.
        """
        import mlflow.sklearn
        from mlflow.models import infer_signature
        from mlflow.types.schema import ColSpec, Schema

        example = X.head(5)
        with warnings.catch_warnings():
            # MLflow's hint that integer columns cannot hold nulls: the featurizer takes
            # floats and nulls in any numeric column, so the hint does not apply.
            warnings.filterwarnings("ignore", "Hint: Inferred schema contains integer")
            signature = infer_signature(X.head(200), model.predict(X.head(200)))
        if signature.inputs is not None:
            specs = []
            for col in signature.inputs.inputs:
                if isinstance(col, ColSpec):
                    col = ColSpec(col.type, col.name, required=col.name in used)
                specs.append(col)
            signature.inputs = Schema(specs)
        try:
            with using_tracking(self.config):
                info = mlflow.sklearn.log_model(
                    model,
                    name=MODEL_ARTIFACT,
                    run_id=self.run_id,
                    signature=signature,
                    input_example=example,
                    serialization_format="skops",
                    skops_trusted_types=automl_trusted_types(model),
                    pip_requirements=requirements(model),
                    metadata={"lakeloom_model": name, "lakeloom_kind": AUTOML_KIND},
                )
        except LakeloomError:
            raise
        except Exception as exc:
            raise TrackingError(f"cannot log the AutoML model to MLflow: {exc}") from exc
        return str(info.model_uri)

    def end(self, status: str = "FINISHED", reason: str | None = None) -> None:
        """Terminate the parent run (FAILED runs get the reason as a tag)."""
        if reason:
            try:
                self._client.set_tag(self.run_id, "lakeloom.error", reason[:5000])
            except Exception:
                pass
        self._client.set_terminated(self.run_id, status=status)


def best_manual_run(config: TrackingConfig, experiment: str, metric: str) -> dict[str, Any] | None:
    """The best non-AutoML model run of ``experiment`` by ``metric`` (None when there is none)."""
    from lakeloom.models.metric_names import higher_is_better

    c = client(config)
    found = c.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = c.search_runs(
        [found.experiment_id],
        filter_string="tags.`lakeloom.kind` = 'train-model'",
        max_results=1000,
    )
    scored = [r for r in runs if metric in r.data.metrics and r.info.status == "FINISHED"]
    if not scored:
        return None
    sign = -1.0 if higher_is_better(metric) else 1.0
    best = min(scored, key=lambda r: (sign * r.data.metrics[metric], r.info.start_time))
    return {
        "run_id": best.info.run_id,
        "model": best.data.tags.get(TAG_MODEL, best.info.run_name),
        "metric": metric,
        "value": float(best.data.metrics[metric]),
        "model_uri": best.data.tags.get("lakeloom.model_uri"),
    }
