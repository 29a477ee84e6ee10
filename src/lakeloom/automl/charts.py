"""The charts of an AutoML fit, as PNG files (matplotlib's Agg canvas: no display).

The ones Fabric's ``flaml.visualization`` draws and open-source FLAML lacks: optimisation
history, leaderboard, feature importance and parameter importance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lakeloom.automl.scoring import Metric
from lakeloom.automl.search import Trial
from lakeloom.models.plots import importance_plot

__all__ = [
    "fit_charts",
    "leaderboard_chart",
    "optimisation_history",
    "parameter_importance",
    "parameter_importance_chart",
]


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def optimisation_history(trials: Sequence[Trial], metric: Metric, out_dir: Path) -> Path:
    """Each trial's score by wall-clock time, coloured by learner, with the best so far."""
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    ordered = sorted(trials, key=lambda t: t.wall_clock)
    for learner in sorted({t.learner for t in ordered}):
        pts = [t for t in ordered if t.learner == learner]
        ax.scatter(
            [t.wall_clock for t in pts],
            [metric.score_from_loss(t.loss) for t in pts],
            s=14,
            label=learner,
        )
    best = np.minimum.accumulate([t.loss for t in ordered])
    ax.step(
        [t.wall_clock for t in ordered],
        [metric.score_from_loss(v) for v in best],
        where="post",
        color="black",
        linewidth=1.2,
        label="best so far",
    )
    ax.set(
        xlabel="Seconds since the search started", ylabel=metric.name, title="Optimisation history"
    )
    ax.legend(fontsize=8, loc="best")
    return _save(fig, out_dir / "optimisation_history.png")


def leaderboard_chart(board: pd.DataFrame, metric: Metric, out_dir: Path) -> Path:
    """The best score of each learner (and the final model), as horizontal bars."""
    best = board.sort_values("val_loss").groupby("model", sort=False).head(1)
    best = best.sort_values("val_loss", ascending=False)
    fig = Figure(figsize=(6, max(2.5, 0.4 * len(best) + 1)))
    ax = fig.add_subplot()
    ax.barh(best["model"].astype(str), best["score"].astype(float))
    ax.set(xlabel=metric.name, title="Leaderboard (best trial per model)")
    low = float(best["score"].min())
    high = float(best["score"].max())
    pad = max((high - low) * 0.2, 1e-3)
    ax.set_xlim(low - pad, high + pad / 2)
    return _save(fig, out_dir / "leaderboard.png")


def _numeric_configs(trials: Sequence[Trial]) -> pd.DataFrame:
    rows = []
    for t in trials:
        row: dict[str, Any] = {}
        for k, v in t.config.items():
            if isinstance(v, bool):
                row[k] = float(v)
            elif isinstance(v, int | float):
                row[k] = float(v)
            elif isinstance(v, str):
                row[k] = v
        rows.append(row)
    frame = pd.DataFrame(rows)
    for col in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[col]):
            frame[col] = frame[col].astype("category").cat.codes.astype(float)
    return frame.fillna(-1.0)


def parameter_importance(trials: Sequence[Trial], seed: int = 0) -> dict[str, float]:
    """How much each hyperparameter of the best learner explains the trials' losses.

    A random forest is fitted on (hyperparameters -> loss) of that learner's trials; its
    impurity importances are the answer (empty with fewer than 6 trials).
    """
    if not trials:
        return {}
    best = min(trials, key=lambda t: t.loss).learner
    mine = [t for t in trials if t.learner == best]
    if len(mine) < 6:
        return {}
    from sklearn.ensemble import RandomForestRegressor

    X = _numeric_configs(mine)
    X = X.loc[:, X.nunique() > 1]
    if X.empty:
        return {}
    y = np.asarray([t.loss for t in mine])
    forest = RandomForestRegressor(n_estimators=100, random_state=seed, min_samples_leaf=2)
    forest.fit(X, y)
    return {str(k): float(v) for k, v in zip(X.columns, forest.feature_importances_, strict=True)}


def parameter_importance_chart(
    importances: Mapping[str, float], learner: str, out_dir: Path
) -> Path:
    """Bars of :func:`parameter_importance` (a note when there were too few trials)."""
    fig = Figure(figsize=(6, 3.5))
    ax = fig.add_subplot()
    if importances:
        ranked = sorted(importances.items(), key=lambda kv: kv[1])
        ax.barh([k for k, _ in ranked], [v for _, v in ranked])
        ax.set(xlabel="Importance for the validation loss")
    else:
        ax.text(0.5, 0.5, "too few trials of one model to tell", ha="center", va="center")
        ax.set_axis_off()
    ax.set_title(f"Parameter importance ({learner})")
    return _save(fig, out_dir / "parameter_importance.png")


def fit_charts(
    trials: Sequence[Trial],
    board: pd.DataFrame,
    metric: Metric,
    feature_importance: Mapping[str, float],
    out_dir: Path,
    seed: int = 0,
) -> list[Path]:
    """All four charts of a fit, in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    best = min(trials, key=lambda t: t.loss).learner
    paths = [
        optimisation_history(trials, metric, out_dir),
        leaderboard_chart(board, metric, out_dir),
        parameter_importance_chart(parameter_importance(trials, seed), best, out_dir),
    ]
    if feature_importance:
        paths.append(
            importance_plot(feature_importance, out_dir, title="Feature importance (model)")
        )
    return paths
