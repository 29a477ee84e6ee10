"""Explanations of an AutoML model, on the raw columns the user knows.

- Global: permutation importance of each raw column (the score lost when it is shuffled, or
  without labels how much predictions move), for any model.
- SHAP: ``shap.TreeExplainer`` (exact TreeSHAP) for tree members -- LightGBM, XGBoost,
  CatBoost, scikit-learn forests -- summed from features back to the raw columns they were
  made of. An ensemble's members are combined with its weights when they explain the same
  output: values (regression), log-odds (boosted classifiers) or probabilities (forest
  classifiers); otherwise (a linear member, or boosting mixed with forests in a classifier)
  there is no SHAP and the permutation importance and occlusion answer alone. For a binary
  label the contributions are towards the second class; with more classes, towards each
  row's predicted class. ``shap`` is imported only when a model is explained.
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

__all__ = ["Explanation", "explain_model", "native_importances", "shap_summary_plot"]


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
    #: What the SHAP values add up to: ``value``, ``log-odds`` or ``probability`` (None: no SHAP).
    shap_output: str | None = None

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


#: Rows whose SHAP values make the global SHAP importance and summary.
SHAP_ROWS = 1000
#: What a tree member's TreeSHAP values add up to (binary and multiclass classifiers).
_OUTPUT_SPACES = {"lightgbm": "log-odds", "xgboost": "log-odds", "catboost": "log-odds"}


def _shap_module() -> Any:
    import warnings

    with warnings.catch_warnings():
        # shap's colour maps call a matplotlib function that matplotlib plans to deprecate.
        warnings.filterwarnings("ignore", category=PendingDeprecationWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        import shap  # type: ignore[import-untyped]

    return shap


def _output_space(model: Any, classes: int) -> str | None:
    """The space a tree model's SHAP values live in; None when it has no tree explainer."""
    root = type(model).__module__.split(".")[0]
    name = type(model).__name__
    if root == "sklearn" and not ("Forest" in name or "Trees" in name or "Tree" in name):
        return None
    if root not in ("sklearn", "lightgbm", "xgboost", "catboost"):
        return None
    if classes == 0:
        return "value"
    return _OUTPUT_SPACES.get(root, "probability")


def _contributions(
    model: Any, Xf: pd.DataFrame, target: np.ndarray | None, classes: int
) -> np.ndarray:
    """(rows, features) TreeSHAP values of one member, towards the class in ``target``."""
    explainer = _shap_module().TreeExplainer(model)
    values = np.asarray(explainer(Xf, check_additivity=False).values)
    if values.ndim == 3:  # (rows, features, classes)
        if classes == 2:
            return np.asarray(values[:, :, -1])
        assert target is not None
        return np.asarray(values[np.arange(len(Xf)), :, target])
    return values  # regression, or a binary booster's single log-odds output


def _shap(pipeline: Any, X: pd.DataFrame, classes: int) -> tuple[pd.DataFrame, str] | None:
    """SHAP per raw column and row, and the output space; None without a tree explainer."""
    featurizer, ensemble = _steps(pipeline)
    members = [_inner(m) for m in ensemble.members_]
    spaces = {_output_space(m, classes) for m in members}
    if None in spaces or len(spaces) != 1:
        return None
    Xf = featurizer.transform(X)
    target = None
    if classes > 2:
        target = np.argmax(ensemble.predict_proba(Xf), axis=1)
    total = np.zeros(Xf.shape)
    for model, weight in zip(members, ensemble._weights(), strict=True):
        total += weight * _contributions(model, Xf, target, classes)
    source = featurizer.source_columns()
    frame = pd.DataFrame(total, columns=list(Xf.columns))
    return frame.T.groupby(lambda name: source[str(name)]).sum().T, str(spaces.pop())


def shap_summary_plot(shap: pd.DataFrame, X: pd.DataFrame, out_dir: Path, top: int = 15) -> Path:
    """SHAP values per row for the ``top`` columns, coloured by each column's value rank."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    order = shap.abs().mean().sort_values(ascending=False).index[:top][::-1]
    fig = Figure(figsize=(7, max(2.5, 0.35 * len(order) + 1)))
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)
    for i, col in enumerate(order):
        values = pd.to_numeric(X[col], errors="coerce") if col in X.columns else None
        rank = (
            values.rank(pct=True).fillna(0.5).to_numpy()
            if values is not None and values.notna().any()
            else np.full(len(shap), 0.5)
        )
        jitter = rng.uniform(-0.25, 0.25, len(shap))
        ax.scatter(shap[col], i + jitter, c=rank, cmap="coolwarm", s=8, vmin=0, vmax=1)
    ax.set_yticks(range(len(order)), [str(c) for c in order])
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set(xlabel="SHAP value (colour: the column's value, low blue to high red)")
    ax.set_title("SHAP summary")
    FigureCanvasAgg(fig)
    fig.tight_layout()
    path = out_dir / "shap_summary.png"
    fig.savefig(path, dpi=100)
    return path


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
    # TreeSHAP costs about one prediction per tree and row: a sample is plenty for the
    # global view, and the rows explained one by one are its head.
    explained = X.head(max(max_rows, SHAP_ROWS)).reset_index(drop=True)
    found = _shap(pipeline, explained, classes)
    shap_importance = None
    shap_output = None
    shap = None
    if found is not None:
        shap, shap_output = found
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
            assert shap is not None
            plots.append(shap_summary_plot(shap, explained, shap_dir))
    return Explanation(importance, rows, shap_importance, plots, shap_output)
