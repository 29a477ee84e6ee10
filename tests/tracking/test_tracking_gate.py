"""The promotion gate: score candidate and current holder on a holdout, promote if better."""

from __future__ import annotations

from typing import Any

import mlflow
import mlflow.sklearn
import numpy as np
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from tracking_support import Store

from lakeloom.errors import (
    InvalidArgument,
    ModelNotFound,
    SchemaMismatch,
    TableNotFound,
    UntrustedModelTypes,
)
from lakeloom.tracking.store import activate


class Scaler2(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """A custom step no one trusts."""

    def fit(self, X: Any, y: Any = None) -> Scaler2:
        return self

    def transform(self, X: Any) -> Any:
        return np.asarray(X, dtype=float) / 2


def test_gate_promotes_only_a_better_candidate(store: Store, model_name: str) -> None:
    registry = store.ws.registry
    registry.register(store.weak_run, name=model_name)
    registry.register(store.good_run, name=model_name)

    refused = registry.gate(model_name, candidate=1, holdout="raw.holdout", threshold=0.99)
    assert (refused.promoted, refused.exit_code, refused.current) == (False, 1, None)
    assert "first version" in refused.reason and "fails the threshold" in refused.reason
    assert registry.current(model_name, "production") is None

    first = registry.gate(model_name, candidate=1, holdout="raw.holdout", metric="roc_auc")
    assert (first.promoted, first.exit_code) == (True, 0)
    assert registry.current(model_name, "production") == 1

    better = registry.gate(
        model_name, candidate=2, holdout="raw.holdout", metric="roc_auc", min_improvement=0.005
    )
    assert better.promoted and better.current == 1
    assert better.candidate_value >= better.current_value + 0.005  # type: ignore[operator]
    assert registry.current(model_name, "production") == 2

    worse = registry.gate(model_name, candidate=1, holdout="raw.holdout", min_improvement=0.005)
    assert not worse.promoted and worse.exit_code == 1
    assert "not better by the margin" in worse.reason
    assert registry.current(model_name, "production") == 2

    history = registry.history(model_name, "production")
    assert [(e.kind, e.from_version, e.to_version) for e in history] == [
        ("gate", None, None),
        ("gate", None, 1),
        ("gate", 1, 2),
        ("gate", 2, 2),
    ]
    assert [e.details["decision"] for e in history] == ["refused", "promoted"] * 1 + [
        "promoted",
        "refused",
    ]
    assert history[2].details["candidate_value"] == better.candidate_value
    assert history[2].details["current_value"] == better.current_value
    assert history[2].details["holdout"] == "raw.holdout"

    c = store.ws.mlflow_client
    gate_run = c.get_run(better.run_id)  # type: ignore[arg-type]
    assert gate_run.info.status == "FINISHED"
    assert gate_run.data.tags["lakeloom.gate.decision"] == "promoted"
    assert gate_run.data.metrics["candidate_roc_auc"] == better.candidate_value
    assert gate_run.data.metrics["current_roc_auc"] == better.current_value
    assert gate_run.data.params["holdout"] == "raw.holdout"
    tags = c.get_model_version(model_name, "1").tags
    assert tags["lakeloom.gate.production.decision"] == "refused"
    # Gate runs are not training runs: comparisons leave them out.
    assert better.run_id not in set(store.ws.runs.compare(store.experiment, "roc_auc")["run_id"])

    # A gate promotion is an ordinary move: rollback undoes it (the refusal moved nothing).
    back = registry.rollback(model_name, "production")
    assert (back.from_version, back.to_version) == (2, 1)


def test_gate_bad_input_records_nothing(store: Store, model_name: str) -> None:
    registry = store.ws.registry
    registry.register(store.good_run, name=model_name)
    with pytest.raises(TableNotFound, match=r"raw\.holdot"):
        registry.gate(model_name, candidate=1, holdout="raw.holdot")
    with pytest.raises(InvalidArgument, match="metric 'rmse' is not available"):
        registry.gate(model_name, candidate=1, holdout="raw.holdout", metric="rmse")
    with pytest.raises(ModelNotFound, match="has no version 5"):
        registry.gate(model_name, candidate=5, holdout="raw.holdout")
    with pytest.raises(ModelNotFound, match="does not exist"):
        registry.gate(model_name + "_nope", candidate=1, holdout="raw.holdout")
    with pytest.raises(InvalidArgument, match="min_improvement must be >= 0"):
        registry.gate(model_name, candidate=1, holdout="raw.holdout", min_improvement=-1)
    with pytest.raises(SchemaMismatch, match="label column 'nope' is not in holdout table"):
        registry.gate(model_name, candidate=1, holdout="raw.churn", label="nope")
    assert registry.history(model_name) == []
    assert registry.current(model_name, "production") is None


def test_gate_refuses_to_load_an_untrusted_model(sqlite_store: Store, model_name: str) -> None:
    store = sqlite_store  # trust is decided on the client: one store shows it
    holdout = store.ws.tables.read("raw.holdout").to_pandas()
    X = holdout[["income", "tenure_months"]].fillna(0)
    model = Pipeline([("half", Scaler2()), ("model", LogisticRegression())])
    model.fit(X, holdout["churned"])
    custom = f"{Scaler2.__module__}.Scaler2"
    activate(store.ws.tracking)  # plain MLflow calls go to the last workspace opened
    with mlflow.start_run(experiment_id=store.ws.runs.experiment_id(store.experiment)) as run:
        mlflow.sklearn.log_model(
            model,
            name="model",
            skops_trusted_types=[custom],  # the model vouches for itself
            pip_requirements=["scikit-learn"],
        )
    registry = store.ws.registry
    registry.register(run.info.run_id, name=model_name)
    with pytest.raises(UntrustedModelTypes, match=custom) as info:
        registry.gate(model_name, candidate=1, holdout="raw.holdout", label="churned")
    assert "\n" not in str(info.value)
    assert registry.current(model_name, "production") is None
    # Plain MLflow trusts what the model declares; lakeloom needs the caller to say so.
    assert len(mlflow.pyfunc.load_model(f"models:/{model_name}/1").predict(X.head(2))) == 2
    frame = X.assign(churned=holdout["churned"])  # a frame works as the holdout too
    result = registry.gate(
        model_name, candidate=1, holdout=frame, label="churned", trusted_types=[custom]
    )
    assert result.promoted and result.holdout == "dataframe"
