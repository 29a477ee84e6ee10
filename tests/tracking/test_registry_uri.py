"""Registering while MLflow's process-wide URIs point at another store."""

from __future__ import annotations

from pathlib import Path

import mlflow
import mlflow.pyfunc
from mlflow import MlflowClient
from tracking_support import Store


def test_register_works_when_the_process_wide_uri_points_elsewhere(
    sqlite_store: Store, tmp_path: Path
) -> None:
    # Another workspace opened later moves MLflow's process-wide URIs: registering in the
    # first workspace must still resolve the run's model in its own store.
    elsewhere = f"sqlite:///{tmp_path / 'other.db'}"
    saved = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    mlflow.set_tracking_uri(elsewhere)
    mlflow.set_registry_uri(elsewhere)
    try:
        version = sqlite_store.ws.registry.register(sqlite_store.good_run, name="uri_elsewhere")
        assert (mlflow.get_tracking_uri(), mlflow.get_registry_uri()) == (elsewhere, elsewhere)
    finally:
        mlflow.set_tracking_uri(saved[0])
        mlflow.set_registry_uri(saved[1])
    assert version.version == 1 and version.run_id == sqlite_store.good_run
    own = MlflowClient(sqlite_store.ws.tracking.tracking_uri, sqlite_store.ws.tracking.registry_uri)
    assert own.get_model_version("uri_elsewhere", "1").run_id == sqlite_store.good_run
    other = MlflowClient(elsewhere, elsewhere)
    assert other.search_registered_models() == []
    model = sqlite_store.ws.registry.load_model("models:/uri_elsewhere/1")
    assert model is not None
