"""Drive the click group in-process (no subprocess, no ``os._exit``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from lakeloom.cli import cli

Invoke = Callable[..., Result]


@pytest.fixture(autouse=True)
def _fresh_mlflow_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each real CLI call is a fresh process: forget the MLflow URI a previous test set.

    (Opening a workspace calls ``mlflow.set_tracking_uri``, which also sets
    ``MLFLOW_TRACKING_URI`` in ``os.environ``.)
    """
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)


@pytest.fixture
def invoke() -> Invoke:
    """``invoke("tables", "list", "--workspace", path)`` -> click's Result."""

    def run(*args: str | Path, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, [str(a) for a in args], input=input)

    return run


@pytest.fixture
def ws_path(tmp_path: Path, invoke: Invoke) -> Path:
    """An initialised workspace folder."""
    path = tmp_path / "ws"
    result = invoke("init", path)
    assert result.exit_code == 0, result.output
    return path
