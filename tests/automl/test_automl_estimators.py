"""AutoMLClassifier / AutoMLRegressor: fit, tracking, saved model, contract, bad input."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.base import clone

from lakeloom import Workspace
from lakeloom.automl import AutoMLClassifier, AutoMLRegressor, AutoMLWarning, UnseenCategoryWarning
from lakeloom.errors import AutoMLError, InvalidArgument, SchemaMismatch

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:flaml")


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory, breast_cancer: pd.DataFrame):  # type: ignore[no-untyped-def]
    ws = Workspace.init(tmp_path_factory.mktemp("ws"))
    automl = AutoMLClassifier(
        experiment_name="cancer",
        target_column="diagnosis",
        time_limit_minutes=None,
        n_trials=5,
        models=["lgbm", "extra_tree", "lrl1"],
        seed=1,
        context=ws,
    )
    automl.fit(breast_cancer)
    yield ws, automl
    ws.close()


def test_fit_returns_the_course_api(fitted, breast_cancer: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    _, automl = fitted
    assert 0.9 < automl.best_score <= 1.0
    assert automl.best_model_name.split("(")[0] in ("lgbm", "extra_tree", "lrl1", "ensemble")
    predictions = automl.best_model.predict(breast_cancer.drop(columns=["diagnosis"]))
    assert set(predictions) <= {"benign", "malignant"}
    assert (predictions == breast_cancer["diagnosis"]).mean() > 0.9
    proba = automl.predict_proba(breast_cancer.head(4))
    assert proba.shape == (4, 2) and np.allclose(proba.sum(axis=1), 1)
    first_lgbm = next(t for t in automl.trials_ if t.learner == "lgbm")
    assert first_lgbm.config["n_estimators"] == 100 and first_lgbm.config["num_leaves"] == 31
    board = automl.leaderboard_
    assert len(board) == automl.n_trials_ == 5
    assert {"model", "params", "score", "train_time_s"} <= set(board.columns)
    assert board["val_loss"].is_monotonic_increasing


def test_one_parent_run_one_child_per_trial_and_the_artifacts(fitted) -> None:  # type: ignore[no-untyped-def]
    ws, automl = fitted
    c = MlflowClient(ws.tracking.tracking_uri)
    parent = c.get_run(automl.best_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["lakeloom.kind"] == "automl"
    assert parent.data.metrics["roc_auc"] == pytest.approx(automl.best_score)
    children = c.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{automl.best_run_id}'"
    )
    assert len(children) == 5
    assert all("roc_auc" in r.data.metrics and "learner" in r.data.params for r in children)
    files = {a.path for a in c.list_artifacts(automl.best_run_id)}
    assert {"leaderboard.csv", "feature_engineering.csv", "charts"} <= files
    charts = {a.path.split("/")[-1] for a in c.list_artifacts(automl.best_run_id, "charts")}
    assert {
        "optimisation_history.png",
        "leaderboard.png",
        "parameter_importance.png",
        "feature_importance.png",
    } <= charts


def test_the_saved_model_loads_with_plain_mlflow_and_takes_raw_columns(
    fitted,
    breast_cancer: pd.DataFrame,  # type: ignore[no-untyped-def]
) -> None:
    _, automl = fitted
    model = mlflow.pyfunc.load_model(automl.best_model_uri_)
    raw = breast_cancer.drop(columns=["diagnosis"]).head(10)
    assert list(model.predict(raw)) == list(automl.predict(raw))
    assert model.metadata.get_input_schema() is not None


def test_explain_gives_global_and_row_level_answers(fitted, breast_cancer: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    ws, automl = fitted
    result = automl.explain(breast_cancer.head(80), max_rows=5)
    assert set(result.importance["column"]) == set(breast_cancer.columns) - {"diagnosis"}
    assert result.importance["method"].eq("permutation").all()
    assert result.rows["row"].nunique() == 5
    assert len(result.row(0)) == 30
    files = {
        a.path
        for a in MlflowClient(ws.tracking.tracking_uri).list_artifacts(
            automl.best_run_id, "explain"
        )
    }
    assert "explain/importance.csv" in files


def test_the_sklearn_contract_holds(fitted) -> None:  # type: ignore[no-untyped-def]
    ws, automl = fitted
    params = automl.get_params()
    assert params["target_column"] == "diagnosis" and params["context"] is ws
    copy = clone(automl)
    assert copy.get_params()["n_trials"] == 5 and copy.context is ws
    assert not hasattr(copy, "best_model_")
    copy.set_params(n_trials=3, label="diagnosis")
    assert copy.n_trials == 3
    with pytest.raises(Exception, match="not fitted"):
        copy.best_model  # noqa: B018


def test_churn_features_are_engineered_and_unseen_levels_warn(
    workspace: Workspace, churn: pd.DataFrame
) -> None:
    workspace.tables.write("raw.churn", churn)
    automl = AutoMLClassifier(
        experiment_name="churn",
        label="churned",
        time_limit_minutes=None,
        n_trials=3,
        models=["extra_tree"],
        context=workspace,
    )
    automl.fit("raw.churn")
    report = automl.feature_report_.set_index("column")
    assert report.loc["customer_id", "action"] == "dropped"
    assert report.loc["signup_date", "action"] == "expand"
    assert report.loc["plan", "action"] == "one-hot"
    assert automl.best_score > 0.6
    new = churn.drop(columns=["churned"]).head(3).assign(region="atlantis")
    with pytest.warns(UnseenCategoryWarning, match="region: 'atlantis'"):
        automl.predict(new)


def test_regression_on_diabetes(workspace: Workspace, diabetes: pd.DataFrame) -> None:
    automl = AutoMLRegressor(
        target_column="progression",
        time_limit_minutes=None,
        n_trials=3,
        models=["lgbm", "rf"],
        context=workspace,
    )
    automl.fit(diabetes)
    assert automl.metric_ == "r2" and 0.2 < automl.best_score < 1
    assert automl.predict(diabetes.head(5)).shape == (5,)


@pytest.mark.parametrize(
    ("frame", "kwargs", "error", "match"),
    [
        (
            pd.DataFrame({"x": range(20), "y": [0, 1] * 10}),
            {"target_column": "nope"},
            SchemaMismatch,
            "label column 'nope' is not in",
        ),
        (
            pd.DataFrame({"x": range(20), "y": [1] * 20}),
            {"target_column": "y"},
            InvalidArgument,
            "constant",
        ),
        (
            pd.DataFrame({"x": range(8), "y": [0, 1] * 4}),
            {"target_column": "y"},
            AutoMLError,
            "too few",
        ),
        (
            pd.DataFrame({"x": range(40), "y": [0] * 37 + [1] * 3}),
            {"target_column": "y"},
            AutoMLError,
            "class 1 .* has 3 row",
        ),
        (pd.DataFrame({"x": range(20), "y": [0, 1] * 10}), {}, InvalidArgument, "no label column"),
    ],
)
def test_bad_input_is_a_clear_error(
    workspace: Workspace, frame: pd.DataFrame, kwargs: dict[str, str], error: type, match: str
) -> None:
    automl = AutoMLClassifier(time_limit_minutes=None, n_trials=2, context=workspace, **kwargs)
    with pytest.raises(error, match=match):
        automl.fit(frame)


def test_constant_and_empty_columns_warn_and_a_table_name_needs_a_context(
    workspace: Workspace,
) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"x": rng.normal(size=60), "same": 1.0, "nothing": np.nan, "y": [0, 1] * 30}
    )
    automl = AutoMLClassifier(
        target_column="y",
        time_limit_minutes=None,
        n_trials=2,
        models=["lgbm"],
        ensemble=False,
        context=workspace,
    )
    with pytest.warns(AutoMLWarning, match=r"same \(constant\); nothing \(every value is null\)"):
        automl.fit(frame)
    with pytest.raises(InvalidArgument, match="pass context=ws"):
        AutoMLClassifier(target_column="y", n_trials=2).fit("raw.anything")
    with pytest.raises(InvalidArgument, match="n_trials must be an integer of at least 2"):
        AutoMLClassifier(target_column="y", n_trials=1).fit(frame)


def test_register_then_promote_through_the_gate(fitted, breast_cancer: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    ws, automl = fitted
    with pytest.raises(InvalidArgument, match="pass holdout="):
        automl.register("cancer", alias="production")
    out = automl.register("cancer", alias="production", holdout=breast_cancer.tail(150))
    assert out["version"] == 1 and out["promoted"] is True
    assert ws.registry.current("cancer", "production") == 1
    again = automl.register(
        "cancer", alias="production", holdout=breast_cancer.tail(150), min_improvement=0.01
    )
    assert again["version"] == 2 and again["promoted"] is False  # not better by 0.01
    assert ws.registry.current("cancer", "production") == 1
