"""Everything one tabular AutoML fit leaves in its MLflow run, besides the trials.

Artifacts: ``leaderboard.csv``, ``feature_engineering.csv``/``.json`` (what was done to
which column), ``final_model.json`` (members, weights, notes) and ``charts/``; the model
with its signature and an input example; the best score; tags the registry copies to a
registered version (label, task, metric, model).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from lakeloom.automl.charts import fit_charts
from lakeloom.automl.explain import native_importances
from lakeloom.automl.featurize import AutoFeaturizer
from lakeloom.automl.finalize import FinalModel
from lakeloom.automl.scoring import Metric
from lakeloom.automl.tracking import AutoMLRun

__all__ = ["gate_metric", "log_fit", "warm_imports"]


def warm_imports() -> None:
    """Import what logging the model needs now, so that its cost is measured, not reserved.

    In a fresh process (the CLI, a pipeline) importing MLflow's model flavour, skops and
    matplotlib takes seconds; done before the search budget is computed, that time counts as
    spent instead of eating into the fixed reserve for logging.
    """
    import matplotlib.backends.backend_agg  # noqa: F401
    import mlflow.models
    import mlflow.sklearn  # noqa: F401
    import skops.io  # type: ignore[import-untyped]  # noqa: F401

    from lakeloom.automl.search import new_automl

    new_automl()


def gate_metric(name: str) -> str:
    """The registry gate's name for a FLAML metric (a few differ)."""
    names = {"ap": "pr_auc", "macro_f1": "f1_weighted", "micro_f1": "accuracy", "mse": "rmse"}
    return names.get(name, name)


def log_fit(
    run: AutoMLRun,
    art: Path,
    *,
    pipeline: Any,
    X: pd.DataFrame,
    final: FinalModel,
    trials: list[Any],
    metric: Metric,
    featurizer: AutoFeaturizer,
    leaderboard: pd.DataFrame,
    score: float,
    label: str,
    task: str,
    seed: int,
) -> str:
    """Log the fit's artifacts, charts, model, score and tags; returns the model URI."""
    art.mkdir(parents=True)
    leaderboard.to_csv(art / "leaderboard.csv", index=False)
    pd.DataFrame(featurizer.report_).to_csv(art / "feature_engineering.csv", index=False)
    (art / "feature_engineering.json").write_text(
        json.dumps(featurizer.report_, indent=2, default=str)
    )
    members = [
        {"model": t.learner, "weight": w, "trial": t.number, "params": t.config}
        for t, w in final.members
    ]
    summary = {
        "name": final.name,
        "members": members,
        "notes": final.notes,
        "candidate_losses": final.candidate_losses,
    }
    (art / "final_model.json").write_text(json.dumps(summary, indent=2, default=str))
    fit_charts(trials, leaderboard, metric, native_importances(pipeline), art / "charts", seed)
    run.log_artifacts(art)
    uri = run.log_model(pipeline, X, final.name, featurizer.used_columns())
    run.log_metrics(
        {metric.name: score, "n_trials": float(len(trials)), "best_val_loss": final.loss}
    )
    run.set_tags(
        {
            "lakeloom.best_model": final.name,
            "lakeloom.model": f"automl:{final.name}",
            "lakeloom.model_uri": uri,
            "lakeloom.label": label,
            "lakeloom.task": task,
            "lakeloom.metric": gate_metric(metric.name),
        }
    )
    return uri
