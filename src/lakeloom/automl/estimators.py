"""``AutoMLClassifier`` and ``AutoMLRegressor``: FLAML, tracked, explained, deployable.

>>> automl = AutoMLClassifier(experiment_name="customer_churn", target_column="churned",
...                           time_limit_minutes=5, context=ws)            # doctest: +SKIP
>>> automl.fit("features.churn_training")                                    # doctest: +SKIP
>>> automl.best_model_name, automl.best_score                                # doctest: +SKIP
>>> automl.best_model.predict(test_df)                                       # doctest: +SKIP

One ``fit`` is: load and check the rows, featurize (:mod:`~lakeloom.automl.featurize`),
search with FLAML inside the time budget (:mod:`~lakeloom.automl.search`), refit the winner or
an ensemble of the best trials (:mod:`~lakeloom.automl.finalize`), and log it all to one
MLflow parent run with a child run per trial (:mod:`~lakeloom.automl.tracking`).
The refit's candidates always include LightGBM's default configuration, scored out of fold
next to the tuned winners. ``n_jobs=-1`` uses the cores that are idle when the fit starts
(:mod:`~lakeloom.automl.threads`); the number used is ``n_jobs_`` and a parameter of the run.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from lakeloom.automl.base import AutoMLBase
from lakeloom.automl.data import (
    AutoMLContext,
    encode_classes,
    label_of,
    load_training_data,
    tracking_of,
)
from lakeloom.automl.explain import Explanation, explain_model
from lakeloom.automl.featurize import AutoFeaturizer
from lakeloom.automl.finalize import FinalModel, finalize
from lakeloom.automl.fit_logging import log_fit, warm_imports
from lakeloom.automl.scoring import Metric, resolve_metric
from lakeloom.automl.search import (
    FINISH_RESERVE_S,
    Budget,
    available_learners,
    run_search,
)
from lakeloom.automl.threads import effective_n_jobs
from lakeloom.automl.tracking import AutoMLRun
from lakeloom.errors import AutoMLError
from lakeloom.models.data import to_pandas
from lakeloom.settings import SparkSettings

__all__ = ["AutoMLClassifier", "AutoMLRegressor", "AutoMLWarning"]


class AutoMLWarning(UserWarning):
    """Something in the data AutoML worked around (a dropped column, a fallback)."""


class _AutoML(AutoMLBase):
    _task = "classification"

    def __init__(
        self,
        experiment_name: str = "automl",
        target_column: str | None = None,
        label: str | None = None,
        time_limit_minutes: float | None = 1.0,
        n_trials: int | None = None,
        metric: str = "auto",
        models: list[str] | None = None,
        seed: int = 0,
        n_jobs: int = -1,
        use_spark: bool = False,
        ensemble: bool = True,
        context: AutoMLContext | None = None,
    ) -> None:
        self.experiment_name = experiment_name
        self.target_column = target_column
        self.label = label
        self.time_limit_minutes = time_limit_minutes
        self.n_trials = n_trials
        self.metric = metric
        self.models = models
        self.seed = seed
        self.n_jobs = n_jobs
        self.use_spark = use_spark
        self.ensemble = ensemble
        self.context = context

    # -- fit -------------------------------------------------------------------------------
    def fit(self, data: Any, y: Any = None) -> _AutoML:
        """Search, refit and log; ``data`` holds the label column. Returns ``self``.

        ``data`` may be pandas, polars, Arrow, a Spark DataFrame, a lakehouse table name
        (with ``context=ws``) or a feature-store training set. ``y`` is accepted for
        scikit-learn compatibility: given, it is the label and ``data`` the features.
        """
        budget = Budget(self._limit_seconds())
        self._check_trials()
        self.n_jobs_ = effective_n_jobs(self.n_jobs)
        if y is not None:
            frame = to_pandas(data).reset_index(drop=True)
            name = self.target_column or self.label or "label"
            data = frame.assign(**{name: np.asarray(y)})
            label = name
        else:
            label = label_of(self.target_column, self.label, data)
        classify = self._task == "classification"
        with budget.phase("prepare"):
            warm_imports()
            loaded = load_training_data(data, self.context, label, classify=classify)
            if classify:
                classes, target = encode_classes(loaded.y)
                sub_task = "binary" if len(classes) == 2 else "multiclass"
            else:
                classes, target = [], loaded.y.to_numpy(dtype=float)
                sub_task = "regression"
            metric = resolve_metric(self.metric, self._task, len(classes))
            learners = available_learners(self.models, self._task)
            featurizer = AutoFeaturizer(task=sub_task, random_state=self.seed)
            Xf = featurizer.fit_transform(loaded.X, target)
            self._warn_dropped(featurizer)
            if Xf.shape[1] == 0:
                raise AutoMLError(
                    "no usable feature column: every column was dropped (see the feature report)"
                )
        with budget.phase("tracking"):
            run = AutoMLRun.start(
                tracking_of(self.context),
                self.experiment_name,
                run_name=f"automl-{self._task}",
                params={
                    "task": sub_task,
                    "label": label,
                    "metric": metric.name,
                    "time_limit_seconds": budget.limit,
                    "n_trials": self.n_trials,
                    "models": ",".join(learners),
                    "seed": self.seed,
                    "n_jobs": self.n_jobs_,
                    "ensemble": self.ensemble,
                    "rows": len(loaded.X),
                    "columns": loaded.X.shape[1],
                    "features": Xf.shape[1],
                },
                tags=loaded.lineage.tags(),
            )
        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():
            # A trial whose solver stops at its iteration limit is just a weaker trial, scored
            # like any other: scikit-learn's ConvergenceWarning says nothing to act on here.
            warnings.simplefilter("ignore", ConvergenceWarning)
            self._tracked(
                run,
                budget,
                lambda: self._search_and_log(
                    run, budget, loaded, featurizer, Xf, target, classes, metric, learners, sub_task
                ),
            )
        return self

    def _warn_dropped(self, featurizer: AutoFeaturizer) -> None:
        odd = [
            r
            for r in featurizer.report_
            if r["action"] == "dropped" and not r["detail"].startswith("ID-like")
        ]
        if odd:
            shown = "; ".join(f"{r['column']} ({r['detail']})" for r in odd)
            warnings.warn(f"columns dropped: {shown}", AutoMLWarning, stacklevel=3)

    def _search_and_log(
        self,
        run: AutoMLRun,
        budget: Budget,
        loaded: Any,
        featurizer: AutoFeaturizer,
        Xf: pd.DataFrame,
        target: np.ndarray,
        classes: list[Any],
        metric: Metric,
        learners: list[str],
        sub_task: str,
    ) -> None:
        search_seconds = budget.search_seconds(FINISH_RESERVE_S)
        with tempfile.TemporaryDirectory(prefix="lakeloom-automl-") as tmp:
            out = Path(tmp)
            with budget.phase("search"):
                result = run_search(
                    Xf,
                    target,
                    task=self._task,
                    metric=metric.name,
                    learners=learners,
                    time_budget=search_seconds,
                    max_iter=self.n_trials,
                    seed=self.seed,
                    n_jobs=self.n_jobs_,
                    log_dir=out,
                    spark=self._spark_settings(),
                    on_trial=lambda t: run.log_trial(t, metric),
                )
            with budget.phase("refit"):
                final = finalize(
                    Xf,
                    target,
                    result,
                    metric=metric,
                    classes=classes,
                    budget=budget,
                    finish_reserve=FINISH_RESERVE_S,
                    ensemble=self.ensemble,
                    seed=self.seed,
                    n_jobs=self.n_jobs_,
                )
            for note in final.notes:
                if "instead of" in note:
                    warnings.warn(note, AutoMLWarning, stacklevel=4)
            with budget.phase("logging"):
                pipeline = Pipeline([("features", featurizer), ("model", final.estimator)])
                self._set_fitted(
                    pipeline,
                    final,
                    result.trials,
                    metric,
                    classes,
                    sub_task,
                    featurizer,
                    run,
                    loaded.label,
                )
                self._log_fit(
                    run, out, pipeline, loaded.X, final, result.trials, metric, featurizer
                )

    def _set_fitted(
        self,
        pipeline: Pipeline,
        final: FinalModel,
        trials: list[Any],
        metric: Metric,
        classes: list[Any],
        sub_task: str,
        featurizer: AutoFeaturizer,
        run: AutoMLRun,
        label: str,
    ) -> None:
        self.best_model_ = pipeline
        self.best_model_name_ = final.name
        self.best_score_ = metric.score_from_loss(final.loss)
        self.best_run_id_ = run.run_id
        self.experiment_id_ = run.experiment_id
        self.metric_ = metric.name
        self.task_ = sub_task
        self.label_ = label
        self.n_trials_ = len(trials)
        self.trials_ = trials
        self.final_ = final
        self.feature_report_ = pd.DataFrame(featurizer.report_)
        rows = [
            {
                "trial": t.number,
                "model": t.learner,
                "params": json.dumps(t.config, default=str),
                "score": metric.score_from_loss(t.loss),
                "val_loss": t.loss,
                "train_time_s": t.train_time,
                "wall_clock_s": t.wall_clock,
                "sample_size": t.sample_size,
            }
            for t in trials
        ]
        self.leaderboard_ = pd.DataFrame(rows).sort_values(["val_loss", "trial"], ignore_index=True)
        if classes:
            self.classes_ = np.asarray(classes)
        self.n_features_in_ = len(featurizer.columns_)

    def _log_fit(
        self,
        run: AutoMLRun,
        out: Path,
        pipeline: Pipeline,
        X: pd.DataFrame,
        final: FinalModel,
        trials: list[Any],
        metric: Metric,
        featurizer: AutoFeaturizer,
    ) -> None:
        self.best_model_uri_ = log_fit(
            run,
            out / "artifacts",
            pipeline=pipeline,
            X=X,
            final=final,
            trials=trials,
            metric=metric,
            featurizer=featurizer,
            leaderboard=self.leaderboard_,
            score=self.best_score_,
            label=self.label_,
            task=self.task_,
            seed=self.seed,
        )

    def _spark_settings(self) -> SparkSettings | None:
        if not self.use_spark:
            return None
        settings = getattr(self.context, "settings", None)
        found = getattr(settings, "spark", None)
        return found if isinstance(found, SparkSettings) else SparkSettings()

    # -- fitted attributes -----------------------------------------------------------------
    @property
    def best_model(self) -> Pipeline:
        """The winner with its featurizer: a scikit-learn Pipeline taking the raw columns."""
        model: Pipeline = self._fitted()
        return model

    def predict(self, X: Any) -> np.ndarray:
        """Predictions for raw rows (pandas, polars, Arrow or Spark)."""
        return np.asarray(self._fitted().predict(to_pandas(X)))

    def explain(
        self, X: Any, y: Any = None, *, max_rows: int = 100, log: bool = True
    ) -> Explanation:
        """Global importance (permutation; SHAP for tree models) and row contributions.

        ``y`` defaults to the label column of ``X`` when present. With ``log`` the plots and
        tables go to the fit's MLflow run under ``explain/``.
        """
        pipeline = self._fitted()
        frame = to_pandas(X).reset_index(drop=True)
        if y is None and self.label_ in frame.columns:
            y = frame[self.label_]
        labels = None if y is None else np.asarray(y)
        metric = resolve_metric(self.metric_, self._task, len(getattr(self, "classes_", [])))
        with tempfile.TemporaryDirectory(prefix="lakeloom-explain-") as tmp:
            out = Path(tmp) / "explain"
            result = explain_model(
                pipeline,
                frame,
                labels,
                metric=metric,
                classes=len(getattr(self, "classes_", [])),
                out_dir=out if log else None,
                max_rows=max_rows,
                seed=self.seed,
            )
            if log:
                result.importance.to_csv(out / "importance.csv", index=False)
                result.rows.to_csv(out / "rows.csv", index=False)
                if result.shap_importance is not None:
                    result.shap_importance.to_csv(out / "shap_importance.csv", index=False)
                AutoMLRun(
                    tracking_of(self.context), self.experiment_id_, self.best_run_id_
                ).log_artifacts(out, "explain")
                result.plots = []  # the files were temporary; they live in the run now
        return result

    def register(
        self,
        name: str,
        alias: str | None = None,
        *,
        holdout: Any = None,
        min_improvement: float = 0.0,
    ) -> dict[str, Any]:
        """Register the best model as a new version of ``name``.

        With ``alias`` (e.g. ``production``) the version is promoted only if the registry's
        gate finds it better than the alias' current model on ``holdout``.
        """
        from lakeloom.automl.registering import register_best

        self._fitted()
        return register_best(self, name, alias, holdout=holdout, min_improvement=min_improvement)


class AutoMLClassifier(_AutoML):
    """AutoML for a class label (binary or multiclass); see the module docstring."""

    _task = "classification"

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_``."""
        return np.asarray(self._fitted().predict_proba(to_pandas(X)))


class AutoMLRegressor(_AutoML):
    """AutoML for a numeric label; see the module docstring."""

    _task = "regression"
