"""Explanations of an AutoML model, on the raw columns the user knows.

- Global: permutation importance of each raw column (the score lost when it is shuffled, or
  without labels how much predictions move), for any model.
- SHAP: exact TreeSHAP contributions for LightGBM and XGBoost members (computed by the
  libraries themselves, so the ``shap`` package is not needed), summed from features back to
  the raw columns they were made of. For an ensemble of such members the contributions are
  combined with the ensemble's weights (in the members' margin space: log-odds or values).
- Rows: each row's contribution per raw column: SHAP where available, otherwise the change
  in prediction when the column is set to a typical value (occlusion).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lakeloom.automl.scoring import Metric

__all__ = ["Explanation", "explain_model", "native_importances"]


@dataclass
class Explanation:
    """What :func:`explain_model` found."""

    #: column, importance, std, method: one row per raw column, most important first.
    importance: pd.DataFrame
    #: row, column, value, contribution, method: per explained row and raw column.
    rows: pd.DataFrame
    #: column, mean_abs_shap (None when the model has no tree explainer).
    shap_importance: pd.DataFrame | None = None
    plots: list[Path] = field(default_factory=list)

    def row(self, i: int) -> pd.DataFrame:
        """Contributions for row ``i``, largest magnitude first."""
        part = self.rows[self.rows["row"] == i]
        return part.reindex(part["contribution"].abs().sort_values(ascending=False).index)


def _steps(pipeline: Any) -> tuple[Any, Any]:
    return pipeline.steps[0][1], pipeline.steps[-1][1]


def _inner(member: Any) -> Any:
    return member.steps[-1][1] if hasattr(member, "steps") else member


def _member_importance(member: Any, n: int) -> np.ndarray | None:
    model = _inner(member)
    booster = getattr(model, "booster_", None)
    if booster is not None and hasattr(booster, "feature_importance"):
        values = np.asarray(booster.feature_importance("gain"), dtype=float)
    elif hasattr(model, "feature_importances_"):
        values = np.asarray(model.feature_importances_, dtype=float)
    elif hasattr(model, "coef_"):  # features are standardised, so |coef| compares
        values = np.abs(np.atleast_2d(np.asarray(model.coef_, dtype=float))).mean(axis=0)
    else:
        return None
    if values.shape[0] != n or values.sum() <= 0:
        return None
    return values / values.sum()


def native_importances(pipeline: Any) -> dict[str, float]:
    """The model's own importances (gain, impurity, |coef|) summed per raw column."""
    featurizer, ensemble = _steps(pipeline)
    names = list(featurizer.feature_names_out_)
    source = featurizer.source_columns()
    total = np.zeros(len(names))
    for member, weight in zip(ensemble.members_, ensemble._weights(), strict=True):
        values = _member_importance(member, len(names))
        if values is not None:
            total += weight * values
    out: dict[str, float] = {}
    for name, value in zip(names, total, strict=True):
        out[source[name]] = out.get(source[name], 0.0) + float(value)
    return out


def _contributions(member: Any, Xf: pd.DataFrame, target: np.ndarray | None) -> np.ndarray | None:
    """(rows, features + 1) TreeSHAP values of one member, for the class in ``target``."""
    model = _inner(member)
    if hasattr(model, "booster_") and hasattr(model, "predict"):
        raw = np.asarray(model.predict(Xf, pred_contrib=True))
    elif hasattr(model, "get_booster"):
        import xgboost as xgb

        raw = np.asarray(model.get_booster().predict(xgb.DMatrix(Xf), pred_contribs=True))
    else:
        return None
    width = Xf.shape[1] + 1
    if raw.ndim == 3:  # xgboost multiclass: (rows, classes, features + 1)
        return raw[np.arange(len(Xf)), target] if target is not None else raw[:, 0]
    if raw.shape[1] > width:  # lightgbm multiclass: classes side by side
        stacked = raw.reshape(len(Xf), -1, width)
        return stacked[np.arange(len(Xf)), target] if target is not None else stacked[:, 0]
    return raw


def _shap(pipeline: Any, X: pd.DataFrame, classes: int) -> pd.DataFrame | None:
    featurizer, ensemble = _steps(pipeline)
    Xf = featurizer.transform(X)
    target = None
    if classes > 2:
        target = np.argmax(ensemble.predict_proba(Xf), axis=1)
    total = np.zeros((len(X), Xf.shape[1] + 1))
    for member, weight in zip(ensemble.members_, ensemble._weights(), strict=True):
        values = _contributions(member, Xf, target)
        if values is None:
            return None
        total += weight * values
    source = featurizer.source_columns()
    frame = pd.DataFrame(total[:, :-1], columns=list(Xf.columns))
    return frame.T.groupby(lambda name: source[str(name)]).sum().T


def _output(pipeline: Any, X: pd.DataFrame, classes: int) -> np.ndarray:
    if classes == 0:
        return np.asarray(pipeline.predict(X), dtype=float)
    proba = np.asarray(pipeline.predict_proba(X))
    return proba[:, 1] if classes == 2 else proba


def _permutation(
    pipeline: Any,
    X: pd.DataFrame,
    y: np.ndarray | None,
    metric: Metric,
    classes: int,
    columns: list[str],
    seed: int,
    repeats: int,
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    base_out = _output(pipeline, X, classes)
    if y is not None:
        codes = np.searchsorted(pipeline.classes_, y) if classes else y
        full = pipeline.predict_proba(X) if classes else base_out
        base = metric.loss(codes, full)
    rows = []
    for col in columns:
        drops = []
        for _ in range(repeats):
            shuffled = X.copy()
            shuffled[col] = X[col].to_numpy()[rng.permutation(len(X))]
            if y is not None:
                out = (
                    pipeline.predict_proba(shuffled) if classes else _output(pipeline, shuffled, 0)
                )
                drops.append(metric.loss(codes, out) - base)
            else:
                drops.append(
                    float(np.mean(np.abs(_output(pipeline, shuffled, classes) - base_out)))
                )
        rows.append(
            {
                "column": col,
                "importance": float(np.mean(drops)),
                "std": float(np.std(drops)),
                "method": "permutation" if y is not None else "prediction change",
            }
        )
    return pd.DataFrame(rows).sort_values("importance", ascending=False, ignore_index=True)


def _occlusion(pipeline: Any, X: pd.DataFrame, classes: int, columns: list[str]) -> pd.DataFrame:
    featurizer = pipeline.steps[0][1]
    reference = featurizer.reference_row()
    base = _output(pipeline, X, classes)
    if base.ndim == 2:
        picked = np.argmax(base, axis=1)
        base = base[np.arange(len(X)), picked]
    records = []
    for col in columns:
        changed = X.copy()
        changed[col] = reference.get(col)
        out = _output(pipeline, changed, classes)
        if out.ndim == 2:
            out = out[np.arange(len(X)), picked]
        for i, (value, delta) in enumerate(zip(X[col].tolist(), base - out, strict=True)):
            records.append(
                {
                    "row": i,
                    "column": col,
                    "value": value,
                    "contribution": float(delta),
                    "method": "occlusion",
                }
            )
    return pd.DataFrame(records)


def explain_model(
    pipeline: Any,
    X: pd.DataFrame,
    y: np.ndarray | None,
    *,
    metric: Metric,
    classes: int,
    out_dir: Path | None = None,
    max_rows: int = 100,
    repeats: int = 5,
    seed: int = 0,
) -> Explanation:
    """Global importance, SHAP where available and row contributions (see the module doc)."""
    featurizer = pipeline.steps[0][1]
    columns = featurizer.used_columns()
    importance = _permutation(pipeline, X, y, metric, classes, columns, seed, repeats)
    sample = X.head(max_rows).reset_index(drop=True)
    shap = _shap(pipeline, X, classes)
    shap_importance = None
    if shap is not None:
        mean_abs = shap.abs().mean().to_frame("mean_abs_shap").rename_axis("column")
        shap_importance = mean_abs.reset_index().sort_values(
            "mean_abs_shap", ascending=False, ignore_index=True
        )
        head = shap.head(max_rows).reset_index(drop=True)
        long = head.reset_index(names="row").melt(
            id_vars="row", var_name="column", value_name="contribution"
        )
        cells = [sample.at[r, c] for r, c in zip(long["row"], long["column"], strict=True)]
        rows = long.assign(value=pd.Series(cells, index=long.index, dtype=object))
        rows["method"] = "shap"
        rows = rows[["row", "column", "value", "contribution", "method"]]
    else:
        rows = _occlusion(pipeline, sample, classes, columns)
    plots: list[Path] = []
    if out_dir is not None:
        from lakeloom.models.plots import importance_plot

        out_dir.mkdir(parents=True, exist_ok=True)
        scores = dict(zip(importance["column"], importance["importance"], strict=True))
        plots.append(importance_plot(scores, out_dir, title="Permutation importance"))
        if shap_importance is not None:
            shap_dir = out_dir / "shap"
            shap_dir.mkdir(exist_ok=True)
            pairs = zip(shap_importance["column"], shap_importance["mean_abs_shap"], strict=True)
            plots.append(importance_plot(dict(pairs), shap_dir, title="Mean |SHAP| per column"))
    return Explanation(importance, rows, shap_importance, plots)
