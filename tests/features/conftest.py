"""Feature-store fixtures: workspaces on each engine, one Spark session, a ready MLflow store.

Tests that take ``fs_ws`` run once per engine (the feature store's contract is the same on
both); ``ml_ws`` is a local workspace for the MLflow-heavy tests.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakeloom import Workspace
from lakeloom.engines.base import Engine
from lakeloom.settings import SparkSettings

#: Small and fixed, as in tests/engines (processes share one Spark session).
SPARK_TEST_SETTINGS = SparkSettings(master="local[2]", conf={"spark.sql.shuffle.partitions": "2"})


@pytest.fixture(scope="session")
def fs_spark_engine() -> Iterator[Engine]:
    """One Spark engine (and session) for the feature-store tests."""
    from lakeloom.engines.spark import SparkEngine

    engine = SparkEngine(SPARK_TEST_SETTINGS)
    engine.spark.range(1).count()
    try:
        yield engine
    finally:
        engine.close()


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow sqlite store with its schema created (copying it is much faster)."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("fs-mlflow") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


def _open(root: Path, template: Path) -> Workspace:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(template, root / "mlflow.db")
    return Workspace.init(root)


@pytest.fixture(params=["local", pytest.param("spark", marks=pytest.mark.spark)])
def fs_ws(
    request: pytest.FixtureRequest, tmp_path: Path, mlflow_template: Path
) -> Iterator[Workspace]:
    """A fresh workspace on each engine in turn."""
    ws = _open(tmp_path / "ws", mlflow_template)
    shared = request.param == "spark"
    if shared:
        ws.__dict__["engine"] = request.getfixturevalue("fs_spark_engine")
    try:
        yield ws
    finally:
        if shared:
            ws.__dict__.pop("engine", None)  # the session is shared: never stop it here
        ws.close()


@pytest.fixture
def ml_ws(tmp_path: Path, mlflow_template: Path) -> Iterator[Workspace]:
    """A fresh local workspace with an MLflow store."""
    ws = _open(tmp_path / "ws", mlflow_template)
    try:
        yield ws
    finally:
        ws.close()
