"""skops trust: lakeloom's pipelines save and load out of the box; unknown types are refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from lakeloom.errors import UntrustedModelTypes
from lakeloom.models.estimators import LabelEncodedClassifier
from lakeloom.models.families import family, make_estimator
from lakeloom.models.loading import load_model_dir
from lakeloom.models.preprocessing import (
    build_model_pipeline,
    normalise_features,
    plan_features,
)
from lakeloom.models.trust import TRUSTED_TYPES, required_trusted_types

REQUIREMENTS = ["scikit-learn", "skops"]  # explicit: skips MLflow's slow inference


class Doubler(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """A custom transformer: a type nobody declared trusted."""

    def fit(self, X: Any, y: Any = None) -> Doubler:
        return self

    def transform(self, X: Any) -> Any:
        return np.asarray(X, dtype=float) * 2


def _save(model: Any, path: Path, trusted: list[str] | None) -> Path:
    mlflow.sklearn.save_model(
        model,
        str(path),
        serialization_format="skops",
        skops_trusted_types=trusted,
        pip_requirements=REQUIREMENTS,
    )
    return path


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("logistic_regression", "churned"),
        ("random_forest", "churned"),
        ("xgboost", "segment"),  # string labels: wrapped in LabelEncodedClassifier
        ("lightgbm", "churned"),
        ("random_forest", "spend"),  # regression
    ],
)
def test_lakeloom_pipelines_round_trip(
    mixed_frame: pd.DataFrame, tmp_path: Path, name: str, label: str
) -> None:
    task = "regression" if label == "spend" else "binary"
    plan = plan_features(mixed_frame, label, exclude=["churned", "segment", "spend"])
    X = normalise_features(mixed_frame, plan)
    small = {} if name == "logistic_regression" else {"n_estimators": 5}
    estimator = make_estimator(name, task, small, seed=0)
    if name == "xgboost":
        estimator = LabelEncodedClassifier(estimator)
    pipeline = build_model_pipeline(plan, estimator, scale=family(name).needs_scaling)
    pipeline.fit(X, mixed_frame[label])
    needed = required_trusted_types(pipeline)
    assert set(needed) <= TRUSTED_TYPES
    path = _save(pipeline, tmp_path / "m", needed)
    loaded = load_model_dir(path)
    np.testing.assert_array_equal(loaded.predict(X.head(20)), pipeline.predict(X.head(20)))
    plain = mlflow.pyfunc.load_model(str(path))
    assert len(plain.predict(X.head(3))) == 3


def test_untrusted_type_is_refused_with_its_name(mixed_frame: pd.DataFrame, tmp_path: Path) -> None:
    X = mixed_frame[["income", "calls"]].fillna(0)
    model = Pipeline([("double", Doubler()), ("model", LogisticRegression())])
    model.fit(X, mixed_frame["churned"])
    custom = f"{Doubler.__module__}.Doubler"

    with pytest.raises(UntrustedModelTypes, match=custom):
        required_trusted_types(model)
    # MLflow itself refuses to save it without a declaration...
    with pytest.raises(MlflowException, match="untrusted types"):
        _save(model, tmp_path / "undeclared", None)
    # ...and when the model declares the type trusted about itself, lakeloom still refuses
    # to load it: the allow-list is lakeloom's, not the model's.
    path = _save(model, tmp_path / "declared", [custom])
    with pytest.raises(UntrustedModelTypes) as info:
        load_model_dir(path)
    message = str(info.value)
    assert custom in message
    assert "runs the code" in message
    assert info.value.types == [custom]
    # A caller who trusts the source says so explicitly.
    loaded = load_model_dir(path, trusted_types=[custom])
    assert len(loaded.predict(X.head(2))) == 2


def test_pickled_models_are_refused_unless_allowed(
    mixed_frame: pd.DataFrame, tmp_path: Path
) -> None:
    X = mixed_frame[["income", "calls"]].fillna(0)
    model = LogisticRegression().fit(X, mixed_frame["churned"])
    path = tmp_path / "pickled"
    mlflow.sklearn.save_model(
        model, str(path), serialization_format="cloudpickle", pip_requirements=REQUIREMENTS
    )
    with pytest.raises(UntrustedModelTypes, match="cloudpickle"):
        load_model_dir(path)
    assert len(load_model_dir(path, allow_pickle=True).predict(X.head(2))) == 2
