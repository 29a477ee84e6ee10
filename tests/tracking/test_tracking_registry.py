"""Registry, aliases and alias history, against the sqlite store and a real server."""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from tracking_support import Store

from lakeloom.errors import (
    ExperimentNotFound,
    InvalidArgument,
    ModelNotFound,
    RunNotFound,
)
from lakeloom.tracking import parse_model_uri
from lakeloom.tracking.store import activate


def test_register_list_show(store: Store, model_name: str) -> None:
    registry = store.ws.registry
    first = registry.register(store.weak_run, name=model_name)
    best = registry.register(
        best=True, experiment=store.experiment, metric="roc_auc", name=model_name
    )
    assert (first.version, best.version) == (1, 2)
    assert best.run_id == store.good_run
    assert best.tags["lakeloom.model"] == "logistic_regression"
    assert best.tags["lakeloom.label"] == "churned"
    listed = {m.name: m for m in registry.list()}
    assert listed[model_name].latest_version == 2
    details = registry.show(model_name)
    assert [v.version for v in details.versions] == [2, 1]
    assert details.versions[0].metrics["roc_auc"] > details.versions[1].metrics["roc_auc"]
    assert registry.resolve(f"models:/{model_name}/latest").version == 2


def test_unknown_names_are_clear_and_write_nothing(store: Store, model_name: str) -> None:
    registry = store.ws.registry
    registry.register(store.good_run, name=model_name)
    with pytest.raises(ModelNotFound, match=f"did you mean {model_name}"):
        registry.show(model_name + "x")
    with pytest.raises(ModelNotFound, match=r"has no version 7 \(versions: 1\)"):
        registry.promote(model_name, 7, "production")
    with pytest.raises(ModelNotFound, match="has no alias 'production'"):
        registry.resolve(f"models:/{model_name}@production")
    with pytest.raises(RunNotFound, match="does not exist"):
        registry.register("0" * 32, name=model_name + "_never")
    with pytest.raises(ExperimentNotFound, match="'nope'"):
        registry.register(best=True, experiment="nope", metric="roc_auc", name=model_name)
    with pytest.raises(InvalidArgument, match="metric 'auc' is not available"):
        registry.register(best=True, experiment=store.experiment, metric="auc", name="x")
    with pytest.raises(InvalidArgument, match="'latest'"):
        registry.promote(model_name, 1, "latest")
    assert model_name + "_never" not in registry.names()
    assert "x" not in registry.names()
    assert registry.show(model_name).versions[0].version == 1
    assert registry.history(model_name) == []


def test_stages_map_to_aliases() -> None:
    with pytest.raises(InvalidArgument, match=r"use models:/churn_model@production"):
        parse_model_uri("models:/churn_model/Production")
    assert parse_model_uri("models:/churn_model@production") == ("churn_model", None, "production")
    assert parse_model_uri("models:/churn_model/3") == ("churn_model", 3, None)


def test_promote_rollback_history(
    store: Store, model_name: str, churn_frames: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    registry = store.ws.registry
    registry.register(store.weak_run, name=model_name)
    registry.register(store.good_run, name=model_name)
    first = registry.promote(model_name, 1, "production", reason="first", user="ana")
    second = registry.promote(model_name, 2, "production", reason="better", user="bo")
    assert first is not None and second is not None
    assert registry.promote(model_name, 2, "production") is None  # already there: no event
    assert registry.current(model_name, "production") == 2

    # The alias loads everywhere: plain MLflow (on the last workspace opened) and lakeloom.
    activate(store.ws.tracking)
    uri = f"models:/{model_name}@production"
    rows = churn_frames[1].drop(columns=["churned"]).head(5)
    plain = mlflow.pyfunc.load_model(uri).predict(rows)
    ours = registry.load_model(uri).predict(rows)
    np.testing.assert_array_equal(np.asarray(plain), ours)
    with pytest.raises(InvalidArgument, match="stages are deprecated"):
        registry.load_model(f"models:/{model_name}/Production")
    with pytest.raises(InvalidArgument, match=f"models:/{model_name}@staging"):
        registry.promote(model_name, 1, stage="Staging")

    back = registry.rollback(model_name, "production", reason="incident 42", user="cy")
    assert (back.from_version, back.to_version, back.kind) == (2, 1, "rollback")
    assert registry.current(model_name, "production") == 1
    with pytest.raises(InvalidArgument, match="no earlier version to roll back to"):
        registry.rollback(model_name, "production")

    history = registry.history(model_name)
    assert [(e.seq, e.kind, e.from_version, e.to_version, e.user) for e in history] == [
        (1, "promote", None, 1, "ana"),
        (2, "promote", 1, 2, "bo"),
        (3, "rollback", 2, 1, "cy"),
    ]
    assert [e.reason for e in history] == ["first", "better", "incident 42"]
    assert all(e.at.tzinfo is not None for e in history)
    stored = store.ws.tables.read("lakeloom.alias_history", filter=f"model = '{model_name}'")
    assert stored.num_rows == 3
    assert {"event_id", "model", "alias", "from_version", "to_version", "user", "reason"} <= set(
        stored.column_names
    )


def test_moves_behind_lakeloom_are_recorded_as_external(store: Store, model_name: str) -> None:
    registry = store.ws.registry
    for run in (store.weak_run, store.good_run, store.weak_run):
        registry.register(run, name=model_name)
    registry.promote(model_name, 1, "production")
    # A plain MLflow client moves the alias and sets another one lakeloom never saw.
    plain = MlflowClient(store.ws.tracking.tracking_uri, store.ws.tracking.registry_uri)
    plain.set_registered_model_alias(model_name, "production", "3")
    plain.set_registered_model_alias(model_name, "staging", "2")
    history = registry.history(model_name)
    external = [e for e in history if e.kind == "external"]
    assert {(e.alias, e.from_version, e.to_version) for e in external} == {
        ("production", 1, 3),
        ("staging", None, 2),
    }
    assert registry.history(model_name) == history  # recorded once
    # Rollback uses the history: back to where production was before the external move.
    back = registry.rollback(model_name, "production")
    assert (back.from_version, back.to_version) == (3, 1)
    plain.delete_registered_model_alias(model_name, "staging")
    last = registry.history(model_name, "staging")[-1]
    assert (last.kind, last.from_version, last.to_version) == ("external", 2, None)
