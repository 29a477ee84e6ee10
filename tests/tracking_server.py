"""One real ``mlflow server`` for the whole test session (the scale-out tracking path).

``mlflow_server`` starts ``mlflow server`` on 127.0.0.1 (sqlite backend in a temporary
folder, artifacts served by the server) the first time a test asks for it, waits until it
answers and stops it, with its uvicorn child, at the end of the session. tests/conftest.py
imports it so that every test folder shares the one server.
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

import pytest

__all__ = ["mlflow_server"]

#: How long the server may take to answer (the machine may be busy with other tests).
START_TIMEOUT = 180.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _environment() -> dict[str, str]:
    """This environment without LAKELOOM_*/MLFLOW_* (the server must not pick up a store)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKELOOM_", "MLFLOW_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # The server's background job runner (a pool of consumer processes) is not needed
    # for tracking and registry calls.
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    return env


def _log_tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-3000:]
    except OSError:
        return ""


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


def _wait_until_healthy(server: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if server.poll() is not None:
            pytest.fail(f"mlflow server exited: {_log_tail(log_path)}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"mlflow server did not answer within {START_TIMEOUT:.0f}s")
        time.sleep(0.5)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL (``http://127.0.0.1:<port>``) of a real ``mlflow server`` process."""
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
    log_path = folder / "server.log"
    with log_path.open("w") as log:
        # Its own process group: the server runs uvicorn as a child, stopped with it.
        server = subprocess.Popen(
            command,
            env=_environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_healthy(server, url, log_path)
            yield url
        finally:
            _stop_group(server)
