"""Workspaces with an MLflow store and churn data for the training tests.

A migrated, empty ``mlflow.db`` is made once per session and copied into each workspace:
creating MLflow's schema takes seconds, copying a file does not.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from training_support import open_ml_workspace

from lakeloom import Workspace
from lakeloom.datasets import generate_churn


@pytest.fixture(scope="session")
def mlflow_db_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow sqlite database with its schema created."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def ml_workspace(tmp_path: Path, mlflow_db_template: Path) -> Iterator[Workspace]:
    """An empty workspace with an embedded (sqlite) MLflow store."""
    ws = open_ml_workspace(tmp_path / "ws", mlflow_db_template)
    try:
        yield ws
    finally:
        ws.close()


@pytest.fixture(scope="session")
def churn_frame() -> pd.DataFrame:
    """Customers of the churn generator with their ``churned`` label (one row each)."""
    data = generate_churn(customers=1000, seed=1)
    customers = data.customers.to_pandas()
    labels = data.churn_labels.to_pandas()[["customer_id", "churned"]]
    return customers.merge(labels, on="customer_id")
