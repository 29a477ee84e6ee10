"""Logging a forecasting fit: backtests, forecasts, charts and the pyfunc model."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lakeloom.automl.charts import optimisation_history
from lakeloom.automl.scoring import Metric
from lakeloom.automl.tracking import AUTOML_KIND, MODEL_ARTIFACT, AutoMLRun
from lakeloom.errors import TrackingError
from lakeloom.tracking.runs import using_tracking

__all__ = ["log_forecast_fit"]


def _forecast_chart(
    history: dict[Any, pd.Series],
    forecast: pd.DataFrame,
    tcol: str,
    label: str,
    ids: list[str],
    out: Path,
) -> Path:
    fig = Figure(figsize=(8, 4))
    ax = fig.add_subplot()
    for key, series in list(history.items())[:5]:
        name = "/".join(map(str, key)) or label
        tail = series.iloc[-max(60, 1) :]
        ax.plot(tail.index, tail.to_numpy(), linewidth=1, label=f"{name} (history)")
        mask = pd.Series(True, index=forecast.index)
        for col, value in zip(ids, key, strict=True):
            mask &= forecast[col] == value
        part = forecast[mask]
        ax.plot(part[tcol], part[label], linestyle="--", linewidth=1.5, label=f"{name} (forecast)")
    ax.set(title="Forecast", xlabel=tcol, ylabel=label)
    ax.legend(fontsize=7)
    FigureCanvasAgg(fig)
    fig.tight_layout()
    path = out / "forecast.png"
    fig.savefig(path, dpi=100)
    return path


def _backtest_chart(board: pd.DataFrame, metric: str, out: Path) -> Path:
    mean = board.groupby("model")["score"].mean().sort_values(ascending=False)
    fig = Figure(figsize=(6, max(2.5, 0.4 * len(mean) + 1)))
    ax = fig.add_subplot()
    ax.barh(mean.index.astype(str), mean.to_numpy())
    ax.set(xlabel=f"mean backtest {metric} (lower is better)", title="Leaderboard (backtests)")
    FigureCanvasAgg(fig)
    fig.tight_layout()
    path = out / "leaderboard.png"
    fig.savefig(path, dpi=100)
    return path


def log_forecast_fit(est: Any, run: AutoMLRun, tmp: Path, history: dict[Any, pd.Series]) -> str:
    """Log artifacts, charts and the model of a fitted ``AutoMLForecaster``; its model URI."""
    import mlflow.pyfunc
    from mlflow.models import Model

    art = tmp / "artifacts"
    charts = art / "charts"
    charts.mkdir(parents=True)
    est.backtest_.to_csv(art / "leaderboard.csv", index=False)
    est.forecast_.to_csv(art / "forecast.csv", index=False)
    ids = list(est.series_id_columns or [])
    _forecast_chart(history, est.forecast_, est.time_column, est.label_, ids, charts)
    _backtest_chart(est.backtest_, est.metric, charts)
    if est.trials_:
        optimisation_history(est.trials_, Metric(est.metric, False, lambda _y, _p: 0.0), charts)
    run.log_artifacts(art)
    example = est.forecast_[[*ids, est.time_column]].head(5)
    requirements = []
    for package in (
        "lakeloom",
        "mlflow",
        "flaml",
        "pandas",
        "numpy",
        "scikit-learn",
        "lightgbm",
        "xgboost",
    ):
        try:
            requirements.append(f"{package}=={importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            requirements.append(package)
    try:
        with using_tracking(run.config):
            # pyfunc.log_model has no run_id; Model.log does, and passes the rest to pyfunc.
            info = Model.log(
                artifact_path=None,
                name=MODEL_ARTIFACT,
                flavor=mlflow.pyfunc,
                python_model=est.model_,
                run_id=run.run_id,
                input_example=example,
                pip_requirements=requirements,
                metadata={"lakeloom_kind": AUTOML_KIND, "lakeloom_model": est.best_model_name_},
            )
    except Exception as exc:
        raise TrackingError(f"cannot log the forecasting model to MLflow: {exc}") from exc
    run.log_metrics(
        {f"backtest_{est.metric}": est.best_score_, "n_trials": float(len(est.trials_))}
    )
    run.set_tags(
        {
            "lakeloom.best_model": est.best_model_name_,
            "lakeloom.model_uri": str(info.model_uri),
            "lakeloom.metric": est.metric,
        }
    )
    return str(info.model_uri)
