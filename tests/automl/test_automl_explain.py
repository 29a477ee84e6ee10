"""``explain``: SHAP's TreeExplainer for tree models, permutation and occlusion for the rest."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from lakeloom import Workspace
from lakeloom.automl import AutoMLClassifier, AutoMLRegressor

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:flaml")


def test_tree_models_get_shap_values_that_add_up_to_the_model_output(
    workspace: Workspace, breast_cancer: pd.DataFrame
) -> None:
    automl = AutoMLClassifier(
        experiment_name="explain",
        target_column="diagnosis",
        time_limit_minutes=None,
        n_trials=2,
        models=["lgbm"],
        ensemble=False,
        context=workspace,
    )
    automl.fit(breast_cancer)
    X = breast_cancer.drop(columns=["diagnosis"]).head(60)
    result = automl.explain(breast_cancer.head(60), max_rows=4)

    assert result.shap_output == "log-odds"
    assert result.shap_importance is not None
    assert set(result.shap_importance["column"]) == set(X.columns)
    assert result.importance["method"].eq("permutation").all()  # kept next to SHAP
    rows = result.rows
    assert rows["method"].eq("shap").all() and rows["row"].nunique() == 4
    # TreeSHAP is exact: a row's contributions add up to its log-odds minus the base value.
    featurizer, model = automl.best_model.steps[0][1], automl.best_model.steps[-1][1]
    booster = model.members_[0]
    contrib = booster.predict(featurizer.transform(X.head(4)), pred_contrib=True)
    totals = rows.groupby("row")["contribution"].sum().to_numpy()
    assert np.allclose(totals, contrib[:, :-1].sum(axis=1), atol=1e-6)
    assert result.row(0)["value"].iloc[0] == X.iloc[0][result.row(0)["column"].iloc[0]]

    files = {
        a.path
        for a in MlflowClient(workspace.tracking.tracking_uri).list_artifacts(
            automl.best_run_id, "explain/shap"
        )
    }
    assert {"explain/shap/shap_summary.png", "explain/shap/feature_importance.png"} <= files
    root = {
        a.path
        for a in MlflowClient(workspace.tracking.tracking_uri).list_artifacts(
            automl.best_run_id, "explain"
        )
    }
    assert {"explain/shap_importance.csv", "explain/rows.csv"} <= root


def test_a_forest_regressor_is_explained_in_its_own_units(
    workspace: Workspace, diabetes: pd.DataFrame
) -> None:
    automl = AutoMLRegressor(
        target_column="progression",
        time_limit_minutes=None,
        n_trials=2,
        models=["rf"],
        ensemble=False,
        context=workspace,
    )
    automl.fit(diabetes)
    result = automl.explain(diabetes.head(30), max_rows=30, log=False)
    assert result.shap_output == "value" and result.plots == []
    # Contributions plus the forest's mean prediction give each row's prediction.
    totals = result.rows.groupby("row")["contribution"].sum().to_numpy()
    predictions = automl.predict(diabetes.head(30))
    spread = predictions - totals
    assert np.allclose(spread, spread[0], atol=1e-6)


def test_models_without_a_tree_explainer_keep_permutation_and_occlusion(
    workspace: Workspace, diabetes: pd.DataFrame
) -> None:
    automl = AutoMLRegressor(
        target_column="progression",
        time_limit_minutes=None,
        n_trials=2,
        models=["kneighbor"],
        ensemble=False,
        context=workspace,
    )
    automl.fit(diabetes)
    result = automl.explain(diabetes.head(80), max_rows=3, log=False)
    assert result.shap_output is None and result.shap_importance is None
    assert result.rows["method"].eq("occlusion").all() and result.rows["row"].nunique() == 3
    assert set(result.importance["column"]) == set(diabetes.columns) - {"progression"}
    assert result.importance["importance"].iloc[0] > 0  # shuffling the top column hurts


def test_importing_lakeloom_automl_does_not_import_shap() -> None:
    import subprocess

    code = "import sys, lakeloom.automl; print('shap' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
