"""Stores for the registry and history tests: the embedded sqlite store and a real server.

The server is the session's one ``mlflow server`` (``mlflow_server``, tests/tracking_server.py).
``store`` is parametrised over both and yields a workspace that already holds two trained
models (a good and a weak one) and a holdout table.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from tracking_support import Store, open_store_workspace

from lakeloom.datasets import generate_churn


@pytest.fixture(scope="session")
def mlflow_db_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow sqlite database with its schema created."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture(scope="session")
def churn_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training rows and a disjoint holdout of the churn generator's customers."""
    data = generate_churn(customers=1200, seed=3)
    frame = data.customers.to_pandas().merge(
        data.churn_labels.to_pandas()[["customer_id", "churned"]], on="customer_id"
    )
    return frame.iloc[:800].reset_index(drop=True), frame.iloc[800:].reset_index(drop=True)


def _make_store(
    kind: str,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    template: Path,
    frames: tuple[pd.DataFrame, pd.DataFrame],
) -> Store:
    url = request.getfixturevalue("mlflow_server") if kind == "server" else None
    root = tmp_path_factory.mktemp(f"store-{kind}") / "ws"
    ws = open_store_workspace(kind, root, template, url)
    train, holdout = frames
    ws.tables.write("raw.churn", train)
    ws.tables.write("raw.holdout", holdout)
    result = ws.train(
        "raw.churn",
        label="churned",
        experiment="registry-tests",
        models="logistic_regression,random_forest",
        params={"random_forest": {"n_estimators": 3, "max_depth": 1}},
        seed=0,
    )
    runs = {r.model: r for r in result.runs}
    assert runs["logistic_regression"].metrics["roc_auc"] > runs["random_forest"].metrics["roc_auc"]
    return Store(
        kind=kind,
        ws=ws,
        experiment="registry-tests",
        good_run=runs["logistic_regression"].run_id,
        weak_run=runs["random_forest"].run_id,
    )


@pytest.fixture(scope="session")
def sqlite_store(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    mlflow_db_template: Path,
    churn_frames: tuple[pd.DataFrame, pd.DataFrame],
) -> Iterator[Store]:
    """The embedded store with a good and a weak trained model and raw.holdout."""
    store = _make_store("sqlite", request, tmp_path_factory, mlflow_db_template, churn_frames)
    try:
        yield store
    finally:
        store.ws.close()


@pytest.fixture(scope="session")
def server_store(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    mlflow_db_template: Path,
    churn_frames: tuple[pd.DataFrame, pd.DataFrame],
) -> Iterator[Store]:
    """The same on a real ``mlflow server``."""
    store = _make_store("server", request, tmp_path_factory, mlflow_db_template, churn_frames)
    try:
        yield store
    finally:
        store.ws.close()


@pytest.fixture(params=["sqlite", "server"])
def store(request: pytest.FixtureRequest) -> Store:
    """Each store in turn (tests using it run once per store)."""
    found: Store = request.getfixturevalue(f"{request.param}_store")
    return found


@pytest.fixture
def model_name(request: pytest.FixtureRequest) -> str:
    """A registered-model name no other test uses (the stores are shared by the session)."""
    callspec = getattr(request.node, "callspec", None)
    kind = callspec.params.get("store", "sqlite") if callspec is not None else "sqlite"
    base = request.node.name.split("[")[0].removeprefix("test_")
    return f"{base}_{kind}"[:60]
