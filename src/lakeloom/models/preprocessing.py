"""Preprocessing that is part of every saved model, so models take a table's raw columns.

Numeric columns are imputed with the median (and standardised for linear models);
categorical columns (strings, booleans) are one-hot encoded with missing values as a level
of their own and unseen levels ignored at prediction time. Only stock scikit-learn
transformers are used, so the saved pipeline loads anywhere scikit-learn and skops do.

Columns that are not features by default (reported in :attr:`FeaturePlan.dropped`): date
and time columns (derive numbers such as a tenure from them first), nested or binary
columns, identifier columns (named ``id`` or ``*_id`` with all values distinct) and columns
with no values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from lakeloom.errors import InvalidArgument, SchemaMismatch

__all__ = [
    "MAX_CATEGORIES",
    "FeaturePlan",
    "build_model_pipeline",
    "build_preprocessor",
    "normalise_features",
    "plan_features",
]

#: One-hot levels kept per column; rarer levels share one "infrequent" column.
MAX_CATEGORIES = 30
_DATE_REASON = "a date/time column: derive numeric features from it first"


@dataclass(frozen=True)
class FeaturePlan:
    """Which columns a model uses, as what, and which it leaves out (and why)."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    #: Every feature column in the input's order.
    features: tuple[str, ...]
    dropped: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "numeric": list(self.numeric),
            "categorical": list(self.categorical),
            "dropped": dict(self.dropped),
        }


def _kind(series: pd.Series) -> str:
    """numeric, categorical or the reason the column is not a feature."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "categorical"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        return _DATE_REASON
    sample = series.dropna()
    if sample.empty:
        return "categorical"
    first = sample.iloc[0]
    if isinstance(first, str | bool | np.bool_):
        return "categorical"
    if hasattr(first, "isoformat"):
        return _DATE_REASON
    if isinstance(first, bytes | bytearray):
        return "a binary column"
    if isinstance(first, list | tuple | dict | np.ndarray):
        return "a nested column"
    return f"values of type {type(first).__name__} are not supported as features"


def _is_identifier(name: str, series: pd.Series) -> bool:
    if not (name.lower() == "id" or name.lower().endswith("_id") or name.endswith("Id")):
        return False
    if pd.api.types.is_float_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        return False
    known = series.dropna()
    return len(known) > 1 and bool(known.is_unique)


def plan_features(
    df: pd.DataFrame,
    label: str,
    *,
    features: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
) -> FeaturePlan:
    """Decide the feature columns of ``df`` (all but ``label`` unless ``features`` is given)."""
    columns = [str(c) for c in df.columns]
    missing = [c for c in [*(features or ()), *exclude] if c not in columns]
    if missing:
        raise SchemaMismatch(
            f"column(s) {', '.join(map(repr, missing))} not in the data; "
            f"its columns: {', '.join(columns)}"
        )
    if features is not None and label in features:
        raise InvalidArgument(f"the label {label!r} cannot also be a feature")
    numeric: list[str] = []
    categorical: list[str] = []
    dropped: dict[str, str] = {}
    explicit = features is not None
    candidates = list(features) if features is not None else [c for c in columns if c != label]
    for name in candidates:
        if name in exclude:
            dropped[name] = "excluded"
            continue
        series = df[name]
        kind = _kind(series)
        if kind not in ("numeric", "categorical"):
            if explicit:
                raise SchemaMismatch(f"feature {name!r} cannot be used: {kind}")
            dropped[name] = kind
        elif series.isna().all():
            if explicit:
                raise SchemaMismatch(f"feature {name!r} has no values")
            dropped[name] = "no values"
        elif not explicit and _is_identifier(name, series):
            dropped[name] = "an identifier (every value distinct)"
        elif kind == "numeric":
            numeric.append(name)
        else:
            categorical.append(name)
    if not numeric and not categorical:
        reasons = "; ".join(f"{k}: {v}" for k, v in dropped.items()) or "no columns"
        raise SchemaMismatch(f"no usable feature columns besides the label {label!r} ({reasons})")
    used = set(numeric) | set(categorical)
    return FeaturePlan(
        numeric=tuple(numeric),
        categorical=tuple(categorical),
        features=tuple(c for c in candidates if c in used),
        dropped=dropped,
    )


def normalise_features(df: pd.DataFrame, plan: FeaturePlan) -> pd.DataFrame:
    """The feature columns with stable types: integers as int64, floats as float64.

    The model's signature is inferred from this frame, so integer columns become ``long``
    (which accepts every integer width) rather than the table's narrower type.
    """
    out = df.loc[:, list(plan.features)].copy()
    for name in plan.features:
        series = out[name]
        if pd.api.types.is_bool_dtype(series.dtype):
            continue
        if isinstance(series.dtype, pd.CategoricalDtype):
            out[name] = series.astype("str")
        elif pd.api.types.is_integer_dtype(series.dtype):
            out[name] = (
                series.astype("int64") if not series.isna().any() else series.astype("float64")
            )
        elif pd.api.types.is_float_dtype(series.dtype):
            out[name] = series.astype("float64")
    return out


def build_preprocessor(plan: FeaturePlan, *, scale: bool) -> ColumnTransformer:
    """Imputation, scaling (when ``scale``) and one-hot encoding for ``plan``'s columns."""
    steps: list[tuple[str, Any, list[str]]] = []
    if plan.numeric:
        numeric_steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
        if scale:
            numeric_steps.append(("scale", StandardScaler()))
        steps.append(("numeric", Pipeline(numeric_steps), list(plan.numeric)))
    if plan.categorical:
        encoder = OneHotEncoder(
            handle_unknown="infrequent_if_exist",
            max_categories=MAX_CATEGORIES,
            sparse_output=False,
        )
        steps.append(("categorical", encoder, list(plan.categorical)))
    return ColumnTransformer(steps, remainder="drop")


def build_model_pipeline(plan: FeaturePlan, estimator: Any, *, scale: bool) -> Pipeline:
    """``Pipeline([("preprocess", ...), ("model", estimator)])``: takes the raw columns."""
    return Pipeline([("preprocess", build_preprocessor(plan, scale=scale)), ("model", estimator)])
