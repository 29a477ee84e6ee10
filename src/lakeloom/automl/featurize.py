"""Automatic feature engineering, as one scikit-learn transformer saved inside the model.

:class:`AutoFeaturizer` learns a plan per raw column in ``fit`` and applies it in
``transform``, so the saved model takes the raw columns:

- numbers: median imputation, a ``__missing`` indicator when training had nulls, scaling;
- booleans: 0/1 (nulls as for numbers);
- dates and timestamps (also ISO strings): year, month, day, day of week, day of year, hour
  when times vary, and days since 1970 (the trend);
- categoricals with at most ``max_onehot_levels`` levels: one-hot, plus a ``__missing`` level;
- categoricals with more levels: frequency and target encoding (cross-fitted on the training
  rows so that the encoding does not leak the label);
- dropped: all-null, constant and ID-like columns, and types no model can use.

Levels never seen in training are encoded like a level of zero frequency (all one-hot columns
0, the target prior) with an :class:`UnseenCategoryWarning` naming the columns. What was done to
which column is in :attr:`AutoFeaturizer.report_`.
"""

from __future__ import annotations

import datetime as dt
import re
import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.model_selection import KFold, StratifiedKFold

from lakeloom.errors import SchemaMismatch

__all__ = ["AutoFeaturizer", "UnseenCategoryWarning"]

_ID_NAME = re.compile(r"(^id$|_id$|^id_|uuid|guid|(^|_)key$)", re.IGNORECASE)
_DATE_TEXT = re.compile(
    r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$"
)
_DATE_PARTS = ("year", "month", "day", "dayofweek", "dayofyear")


class UnseenCategoryWarning(UserWarning):
    """Input at predict time holds categorical levels the model never saw in training."""


def _safe(name: str) -> str:
    # LightGBM refuses JSON special characters in feature names.
    return re.sub(r"[^0-9A-Za-z_]+", "_", str(name)).strip("_") or "x"


def _kind_of(values: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(values):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(values):
        return "datetime"
    if pd.api.types.is_numeric_dtype(values):
        return "numeric"
    if isinstance(values.dtype, pd.CategoricalDtype):
        return "categorical"
    sample = values.dropna()
    if sample.empty:
        return "categorical"
    sample = sample.iloc[:200]
    if all(isinstance(v, bool | np.bool_) for v in sample):
        return "boolean"
    if all(isinstance(v, dt.date) for v in sample):
        return "datetime"
    if all(isinstance(v, int | float | np.number) for v in sample):
        return "numeric"
    if all(isinstance(v, str) for v in sample):
        return "datetime" if all(_DATE_TEXT.match(v) for v in sample) else "categorical"
    return "unsupported"


def _as_numbers(values: pd.Series, column: str) -> np.ndarray:
    try:
        return pd.to_numeric(values, errors="raise").astype("float64").to_numpy()
    except (TypeError, ValueError):
        raise SchemaMismatch(
            f"column {column!r} must hold numbers (it did in training); got values like "
            f"{values.dropna().astype(str).head(3).tolist()}"
        ) from None


def _as_datetimes(values: pd.Series, column: str) -> pd.Series:
    try:
        out = pd.to_datetime(values, utc=True, errors="raise", format="mixed")
    except (TypeError, ValueError):
        raise SchemaMismatch(
            f"column {column!r} must hold dates or timestamps (it did in training); got values "
            f"like {values.dropna().astype(str).head(3).tolist()}"
        ) from None
    return pd.Series(out, index=values.index)


def _days(stamps: pd.Series) -> np.ndarray:
    """Days since 1970 (NaN where missing)."""
    delta = (stamps - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(days=1)
    return np.asarray(delta.to_numpy(dtype="float64", na_value=np.nan))


def _as_text(values: pd.Series) -> pd.Series:
    return (
        values.astype("object")
        .where(values.notna(), None)
        .map(lambda v: None if v is None else str(v))
    )


class AutoFeaturizer(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Turn raw columns into numeric features; see the module docstring for the rules.

    >>> f = AutoFeaturizer(task="binary").fit(X, y)            # doctest: +SKIP
    >>> f.transform(X_new)                                     # doctest: +SKIP
    >>> f.report_[0]                                           # doctest: +SKIP
    {'column': 'plan', 'kind': 'categorical', 'action': 'one-hot', ...}
    """

    def __init__(
        self,
        task: str = "regression",
        max_onehot_levels: int = 12,
        id_unique_ratio: float = 0.95,
        scale: bool = True,
        random_state: int = 0,
    ) -> None:
        self.task = task
        self.max_onehot_levels = max_onehot_levels
        self.id_unique_ratio = id_unique_ratio
        self.scale = scale
        self.random_state = random_state

    # -- fit -------------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y: Any = None) -> AutoFeaturizer:
        """Learn the plan (see :meth:`fit_transform`)."""
        self.fit_transform(X, y)
        return self

    def fit_transform(self, X: pd.DataFrame, y: Any = None, **_: Any) -> pd.DataFrame:
        """Learn the plan and return the training rows' features.

        Target encodings of the training rows are cross-fitted (each row encoded by the other
        folds), which is why this differs from ``fit(X).transform(X)``.
        """
        if not isinstance(X, pd.DataFrame):
            raise TypeError("AutoFeaturizer needs a pandas DataFrame with named columns")
        target = None if y is None else np.asarray(y)
        self.columns_: list[str] = [str(c) for c in X.columns]
        self.plan_: list[dict[str, Any]] = []
        self.report_: list[dict[str, Any]] = []
        n = len(X)
        for column in self.columns_:
            step = self._plan_column(X[column], column, n, target)
            self.plan_.append(step)
            self.report_.append(
                {
                    "column": column,
                    "dtype": str(X[column].dtype),
                    "kind": step["kind"],
                    "action": step["action"],
                    "detail": step.get("detail", ""),
                    "outputs": list(step.get("outputs", [])),
                }
            )
        frame = self._apply(X, fitting=True, target=target)
        names = list(frame.columns)
        if len(set(names)) != len(names):  # sanitised names can collide
            seen: dict[str, int] = {}
            for i, name in enumerate(names):
                seen[name] = seen.get(name, 0) + 1
                if seen[name] > 1:
                    names[i] = f"{name}_{seen[name]}"
            frame.columns = names
        self.feature_names_out_: list[str] = names
        self.n_features_in_ = len(self.columns_)
        self.feature_names_in_ = np.asarray(self.columns_, dtype=object)
        return frame

    def _plan_column(
        self, values: pd.Series, column: str, n: int, target: np.ndarray | None
    ) -> dict[str, Any]:
        base = _safe(column)
        kind = _kind_of(values)
        nulls = int(values.isna().sum())
        step: dict[str, Any] = {"column": column, "kind": kind, "base": base}
        if nulls == n:
            return {**step, "action": "dropped", "detail": "every value is null"}
        if kind == "unsupported":
            return {**step, "action": "dropped", "detail": "type no model can use"}
        if kind in ("numeric", "boolean"):
            numbers = _as_numbers(values.astype("object") if kind == "boolean" else values, column)
            distinct = np.unique(numbers[~np.isnan(numbers)])
            if len(distinct) <= 1 and nulls == 0:
                return {**step, "action": "dropped", "detail": "constant"}
            if kind == "numeric" and self._id_like_numbers(column, distinct, n, nulls):
                return {**step, "action": "dropped", "detail": "ID-like (a unique integer per row)"}
            fill = float(np.nanmedian(numbers))
            filled = np.where(np.isnan(numbers), fill, numbers)
            std = float(filled.std()) or 1.0
            step.update(action="impute+scale" if self.scale else "impute", fill=fill)
            step.update(mean=float(filled.mean()) if self.scale else 0.0)
            step.update(std=std if self.scale else 1.0, indicator=nulls > 0)
            step["outputs"] = [base] + ([f"{base}__missing"] if nulls else [])
            step["detail"] = f"median {fill:.6g}" + (f", {nulls} nulls flagged" if nulls else "")
            return step
        if kind == "datetime":
            stamps = _as_datetimes(values, column)
            days = _days(stamps)
            parts = [p for p in _DATE_PARTS if getattr(stamps.dt, p).nunique() > 1]
            if stamps.dt.hour.nunique() > 1:
                parts.append("hour")
            fill = float(np.nanmedian(days))
            step.update(action="expand", parts=parts, fill=fill, indicator=nulls > 0)
            step["outputs"] = [f"{base}__{p}" for p in parts] + [f"{base}__days"]
            step["outputs"] += [f"{base}__missing"] if nulls else []
            step["detail"] = ", ".join([*parts, "days since 1970"])
            return step
        text = _as_text(values)
        counts = text.value_counts(dropna=True)
        levels = len(counts)
        if levels <= 1 and nulls == 0:
            return {**step, "action": "dropped", "detail": "constant"}
        if levels > 20 and levels >= self.id_unique_ratio * (n - nulls):
            return {**step, "action": "dropped", "detail": f"ID-like ({levels} distinct of {n})"}
        if levels <= self.max_onehot_levels:
            names = [str(v) for v in counts.index]
            step.update(action="one-hot", levels=names, indicator=nulls > 0)
            step["outputs"] = [f"{base}__{_safe(v)}" for v in names]
            step["outputs"] += [f"{base}__missing"] if nulls else []
            step["detail"] = f"{levels} levels"
            return step
        freq = {str(k): float(v) / n for k, v in counts.items()}
        step.update(action="frequency+target", freq=freq, levels_seen=levels)
        step.update(self._target_stats(text, target))
        n_target = len(step.get("prior", []))
        step["outputs"] = [f"{base}__freq"] + [f"{base}__target{i}" for i in range(n_target)]
        step["detail"] = f"{levels} levels (high cardinality)"
        return step

    def _id_like_numbers(self, column: str, distinct: np.ndarray, n: int, nulls: int) -> bool:
        if len(distinct) < max(20, n - nulls) or not np.all(np.mod(distinct, 1) == 0):
            return False
        # A unique integer per row is an ID when it is named like one or counts up.
        span = float(distinct.max() - distinct.min())
        return bool(_ID_NAME.search(column)) or span <= 2 * len(distinct)

    def _target_matrix(self, target: np.ndarray) -> np.ndarray:
        if self.task in ("binary", "multiclass", "classification"):
            classes = np.unique(target)
            if len(classes) <= 2:
                return (target == classes[-1]).astype("float64")[:, None]
            return (target[:, None] == classes[None, :]).astype("float64")
        return target.astype("float64")[:, None]

    def _target_stats(self, text: pd.Series, target: np.ndarray | None) -> dict[str, Any]:
        if target is None:
            return {}
        t = self._target_matrix(target)
        prior = t.mean(axis=0)
        return {"prior": prior.tolist(), "means": self._level_means(text, t, prior)}

    @staticmethod
    def _level_means(text: pd.Series, t: np.ndarray, prior: np.ndarray) -> dict[str, list[float]]:
        smoothing = 10.0  # rows of the prior each level's mean is shrunk towards
        frame = pd.DataFrame(t, index=text.index).assign(_level=text.to_numpy())
        grouped = frame.dropna(subset=["_level"]).groupby("_level")
        sums, counts = grouped.sum(), grouped.size()
        means = (sums.to_numpy() + smoothing * prior) / (counts.to_numpy()[:, None] + smoothing)
        return {str(k): m.tolist() for k, m in zip(sums.index, means, strict=True)}

    # -- transform -------------------------------------------------------------------------
    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Features of new rows (columns the model does not use may be absent)."""
        if not hasattr(self, "plan_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("AutoFeaturizer is not fitted yet; call fit first")
        if not isinstance(X, pd.DataFrame):
            X = pd.DataFrame(X, columns=self.columns_)
        frame = self._apply(X, fitting=False, target=None)
        frame.columns = self.feature_names_out_
        return frame

    def _apply(self, X: pd.DataFrame, *, fitting: bool, target: np.ndarray | None) -> pd.DataFrame:
        used = [s["column"] for s in self.plan_ if s["action"] != "dropped"]
        missing = [c for c in used if c not in X.columns]
        if missing:
            raise SchemaMismatch(
                f"input lacks column(s) {', '.join(map(repr, missing))} that the model uses"
            )
        out: dict[str, np.ndarray] = {}
        unseen: dict[str, list[str]] = {}
        for step in self.plan_:
            action = step["action"]
            if action == "dropped":
                continue
            values = X[step["column"]]
            if action in ("impute", "impute+scale"):
                src = values.astype("object") if step["kind"] == "boolean" else values
                numbers = _as_numbers(src, step["column"])
                isnull = np.isnan(numbers)
                filled = np.where(isnull, step["fill"], numbers)
                out[step["outputs"][0]] = (filled - step["mean"]) / step["std"]
                if step["indicator"]:
                    out[step["outputs"][1]] = isnull.astype("float64")
            elif action == "expand":
                days = _days(_as_datetimes(values, step["column"]))
                isnull = np.isnan(days)
                filled = np.where(isnull, step["fill"], days)
                ref = pd.Series(pd.to_datetime(filled * 86400.0, unit="s", utc=True))
                for part, name in zip(step["parts"], step["outputs"], strict=False):
                    out[name] = getattr(ref.dt, part).to_numpy(dtype="float64")
                out[f"{step['base']}__days"] = filled
                if step["indicator"]:
                    out[f"{step['base']}__missing"] = isnull.astype("float64")
            elif action == "one-hot":
                text = _as_text(values)
                known = set(step["levels"])
                for level, name in zip(step["levels"], step["outputs"], strict=False):
                    out[name] = (text == level).to_numpy(dtype="float64")
                if step["indicator"]:
                    out[f"{step['base']}__missing"] = text.isna().to_numpy(dtype="float64")
                self._note_unseen(text, known, step["column"], unseen)
            else:
                text = _as_text(values)
                freq = step["freq"]
                out[step["outputs"][0]] = text.map(freq).fillna(0.0).to_numpy(float)
                self._note_unseen(text, set(freq), step["column"], unseen)
                if "prior" in step:
                    enc = self._encode_target(text, step, fitting=fitting, target=target)
                    for i, name in enumerate(step["outputs"][1:]):
                        out[name] = enc[:, i]
        if unseen and not fitting:
            # Each unseen level is reported once per fitted model: a served model meets the
            # same new level in request after request (monitoring counts them per column).
            warned: set[tuple[str, str]] = self.__dict__.setdefault("_unseen_warned", set())
            unseen = {
                c: fresh
                for c, v in unseen.items()
                if (fresh := [x for x in v if (c, x) not in warned])
            }
            warned.update((c, x) for c, v in unseen.items() for x in v)
        if unseen and not fitting:
            shown = "; ".join(f"{c}: {', '.join(map(repr, v[:3]))}" for c, v in unseen.items())
            warnings.warn(
                f"levels not seen in training (encoded as unknown): {shown}",
                UnseenCategoryWarning,
                stacklevel=3,
            )
        return pd.DataFrame(out, index=X.index)

    @staticmethod
    def _note_unseen(
        text: pd.Series, known: set[str], column: str, into: dict[str, list[str]]
    ) -> None:
        present = text.dropna()
        new = present[~present.isin(known)]
        if len(new):
            into[column] = sorted(set(new.tolist()))

    def _encode_target(
        self, text: pd.Series, step: dict[str, Any], *, fitting: bool, target: np.ndarray | None
    ) -> np.ndarray:
        prior = np.asarray(step["prior"], dtype="float64")

        def lookup(levels: pd.Series, means: dict[str, list[float]]) -> np.ndarray:
            rows = [means.get(v, prior) if v is not None else prior for v in levels]
            return np.asarray(rows, dtype="float64").reshape(len(levels), len(prior))

        if not fitting or target is None:
            return lookup(text, step["means"])
        # Cross-fitting: every training row is encoded by the levels' means in other folds.
        t = self._target_matrix(target)
        enc = np.empty((len(text), len(prior)))
        classify = self.task in ("binary", "multiclass", "classification")
        splitter: KFold | StratifiedKFold = (
            StratifiedKFold(5, shuffle=True, random_state=self.random_state)
            if classify and np.min(np.unique(target, return_counts=True)[1]) >= 5
            else KFold(5, shuffle=True, random_state=self.random_state)
        )
        for fit_idx, enc_idx in splitter.split(np.zeros(len(text)), target):
            means = self._level_means(text.iloc[fit_idx], t[fit_idx], t[fit_idx].mean(axis=0))
            enc[enc_idx] = lookup(text.iloc[enc_idx], means)
        return enc

    # -- introspection ---------------------------------------------------------------------
    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the output features."""
        return np.asarray(self.feature_names_out_, dtype=object)

    def source_columns(self) -> dict[str, str]:
        """Output feature -> the raw column it came from (for importances on raw columns)."""
        mapping: dict[str, str] = {}
        outputs = iter(self.feature_names_out_)
        for step in self.plan_:
            if step["action"] == "dropped":
                continue
            for _ in step["outputs"]:
                mapping[next(outputs)] = step["column"]
        return mapping

    def used_columns(self) -> list[str]:
        """Raw columns the features are made of (dropped ones are not needed at predict time)."""
        return [s["column"] for s in self.plan_ if s["action"] != "dropped"]

    def reference_row(self) -> dict[str, Any]:
        """A typical value per used raw column (medians, most frequent level)."""
        ref: dict[str, Any] = {}
        for s in self.plan_:
            if s["action"] in ("impute", "impute+scale"):
                ref[s["column"]] = s["fill"]
            elif s["action"] == "expand":
                ref[s["column"]] = pd.Timestamp(s["fill"] * 86400.0, unit="s", tz="UTC")
            elif s["action"] == "one-hot":
                ref[s["column"]] = s["levels"][0]
            elif s["action"] == "frequency+target":
                ref[s["column"]] = max(s["freq"], key=s["freq"].__getitem__)
        return ref
