"""Stores for the registry and history tests: the embedded sqlite store and a real server.

``mlflow_server`` starts ``mlflow server`` (sqlite backend in a temporary folder, artifacts
served by the server) on 127.0.0.1 once per session, waits until it answers and stops it at
the end. ``store`` is parametrised over both and yields a workspace that already holds two
trained models (a good and a weak one) and a holdout table.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a real ``mlflow server`` process (the scale-out tracking path)."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
        "--default-artifact-root", "mlflow-artifacts:/",
        "--artifacts-destination", str(folder / "artifacts"),
        "--serve-artifacts",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--workers", "1",
    ]  # fmt: skip
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        # The server's background job runner (a pool of consumer processes) is not needed
        # for tracking and registry calls.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    log = (folder / "server.log").open("w")
    # Its own process group: the server runs uvicorn as a child process, stopped with it.
    server = subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None:
                raise RuntimeError(
                    f"mlflow server exited: {(folder / 'server.log').read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("mlflow server did not answer within 180 s")
            time.sleep(0.5)
        yield url
    finally:
        _stop_group(server)
        log.close()


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """Stop ``process`` and the children in its process group (SIGTERM, then SIGKILL)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # uvicorn exits right after its parent
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


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
