"""Real servers for the scale-out tests, each started once per session on 127.0.0.1.

* ``connect_server``: a Spark Connect server started with the pyspark wheel's own
  ``sbin/start-connect-server.sh`` (``local[2]``, a free port), stopped with
  ``stop-connect-server.sh``;
* ``mlflow_server`` (shared with the tracking tests, see tests/tracking_server.py):
  ``mlflow server`` with a sqlite backend in a temporary folder and ``--serve-artifacts``;
* ``redis_server``: ``redis-server`` without persistence.

Spark Connect is process-wide in pyspark (a process is classic or Connect), so everything
that talks to the Connect server runs in a subprocess.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from scale_out_support import START_TIMEOUT, ConnectServer, answers, base_env, free_port, tail


# -- Spark Connect ---------------------------------------------------------------------
def _spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def _make_executable(home: Path) -> None:
    """pip installs the wheel's scripts without the x bit on some setups: add it."""
    for folder in ("sbin", "bin"):
        for script in (home / folder).iterdir():
            if script.is_file() and not script.name.endswith(".cmd"):
                mode = script.stat().st_mode
                if not mode & stat.S_IXUSR:
                    script.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def _connect_env(home: Path, folder: Path) -> dict[str, str]:
    from lakeloom.engines.spark_session import ensure_java

    env = base_env(
        SPARK_HOME=str(home),
        SPARK_LOG_DIR=str(folder / "logs"),
        SPARK_PID_DIR=str(folder / "pids"),
        SPARK_IDENT_STRING="lakeloom-tests",
        # Python workers of the server (UDFs, mapInArrow) run this interpreter.
        PYSPARK_PYTHON=sys.executable,
        SPARK_LOCAL_IP="127.0.0.1",
    )
    ensure_java(env)
    return env


def _daemon_alive(folder: Path) -> bool:
    """Whether the server the pid file names still runs (True until the file appears)."""
    for pid_file in (folder / "pids").glob("*.pid"):
        try:
            os.kill(int(pid_file.read_text().strip()), 0)
        except (OSError, ValueError):
            return False
    return True


def _stop_connect(home: Path, env: Mapping[str, str], folder: Path) -> None:
    subprocess.run(
        ["bash", str(home / "sbin" / "stop-connect-server.sh")],
        env=dict(env),
        capture_output=True,
        timeout=120,
        check=False,
    )
    # stop-connect-server.sh signals the daemon; make sure it is gone (by its pid file).
    for pid_file in (folder / "pids").glob("*.pid"):
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.3)
        else:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture(scope="session")
def connect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConnectServer]:
    """A real Spark Connect server (``sc://127.0.0.1:<port>``) for the whole session."""
    home = _spark_home()
    if not (home / "sbin" / "start-connect-server.sh").is_file():
        pytest.fail(f"the pyspark wheel at {home} has no sbin/start-connect-server.sh")
    _make_executable(home)
    folder = tmp_path_factory.mktemp("spark-connect")
    env = _connect_env(home, folder)
    port = free_port()
    command = [
        "bash", str(home / "sbin" / "start-connect-server.sh"),
        "--master", "local[2]",
        "--conf", f"spark.connect.grpc.binding.port={port}",
        "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
        "--conf", "spark.driver.bindAddress=127.0.0.1",
        "--conf", "spark.ui.enabled=false",
        "--conf", "spark.sql.shuffle.partitions=2",
        "--conf", "spark.sql.session.timeZone=UTC",
        "--conf", "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs=false",
    ]  # fmt: skip
    started = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    log_dir = folder / "logs"
    try:
        if started.returncode != 0:
            pytest.fail(f"start-connect-server.sh failed: {started.stdout}{started.stderr}")
        deadline = time.monotonic() + START_TIMEOUT
        while not answers(port):
            if time.monotonic() > deadline or not _daemon_alive(folder):
                logs = "".join(tail(p) for p in log_dir.glob("*.out"))
                pytest.fail(f"Spark Connect did not start on port {port}: {logs}")
            time.sleep(0.5)
        yield ConnectServer(f"sc://127.0.0.1:{port}", port, log_dir)
    finally:
        _stop_connect(home, env, folder)


# -- Redis -----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL (``redis://127.0.0.1:<port>/0``) of a real redis-server without persistence."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server)")
    folder = tmp_path_factory.mktemp("redis")
    port = free_port()
    command = [
        binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no", "--dir", str(folder),
    ]  # fmt: skip
    log_path = folder / "redis.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while not answers(port):
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"redis-server did not start: {tail(log_path)}")
                time.sleep(0.1)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
