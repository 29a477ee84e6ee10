"""Shared fixtures: a fresh workspace per test, one Spark session per test session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakeloom import Workspace
from tracking_server import mlflow_server  # noqa: F401 - one server for the whole session

# Tests must never pick up a developer's environment.
for _var in list(os.environ):
    if _var.startswith("LAKELOOM_") or _var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        del os.environ[_var]


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    """An empty workspace (local engine, embedded MLflow) in a temporary folder."""
    ws = Workspace.init(tmp_path / "ws")
    try:
        yield ws
    finally:
        ws.close()
