"""Model family names, their estimators and hyperparameters."""

from __future__ import annotations

import pytest

from lakeloom.errors import InvalidArgument
from lakeloom.models.families import family, make_estimator, parse_models, resolve_params


def test_names_map_to_estimators_per_task() -> None:
    assert type(make_estimator("random_forest", "binary")).__name__ == "RandomForestClassifier"
    assert type(make_estimator("random_forest", "regression")).__name__ == ("RandomForestRegressor")
    assert type(make_estimator("xgboost", "regression")).__name__ == "XGBRegressor"
    assert type(make_estimator("lightgbm", "multiclass")).__name__ == "LGBMClassifier"
    assert make_estimator("logistic_regression", "binary", seed=3).random_state == 3
    assert family("linear_regression").needs_scaling


def test_unknown_and_misplaced_models() -> None:
    with pytest.raises(InvalidArgument, match="did you mean random_forest"):
        parse_models("logistic_regression,random_forrest")
    with pytest.raises(InvalidArgument, match="spark engine"):
        parse_models(["gbt"])
    with pytest.raises(InvalidArgument, match="use 'linear_regression'"):
        family("logistic_regression").estimator_path("regression")
    with pytest.raises(InvalidArgument, match="no model given"):
        parse_models(" , ")
    assert parse_models("xgboost, xgboost,lightgbm") == ["xgboost", "lightgbm"]


def test_params_shared_and_per_model() -> None:
    out = resolve_params(
        {"n_estimators": 20, "xgboost": {"max_depth": 3}},
        ["logistic_regression", "random_forest", "xgboost"],
        "binary",
    )
    assert out == {
        "logistic_regression": {},
        "random_forest": {"n_estimators": 20},
        "xgboost": {"n_estimators": 20, "max_depth": 3},
    }
    with pytest.raises(InvalidArgument, match="no model among"):
        resolve_params({"n_estimatorz": 5}, ["random_forest"], "binary")
    with pytest.raises(InvalidArgument, match="has no parameter"):
        resolve_params({"random_forest": {"depth": 5}}, ["random_forest"], "binary")
    with pytest.raises(InvalidArgument, match="not among the models"):
        resolve_params({"xgboost": {"max_depth": 5}}, ["random_forest"], "binary")
