"""Online-store fixtures: every contract test runs once per backend.

Redis tests use a real ``redis-server`` (from PATH) started once per test session on a free
loopback port, without persistence; each test gets an empty database. Spark starts once per
session, as in ``tests/engines/conftest.py``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lakeloom.engines.base import Engine
from lakeloom.engines.local import LocalEngine
from lakeloom.features.online.base import OnlineStore
from lakeloom.features.online.sqlite import SQLiteOnlineStore
from lakeloom.lakehouse.storage import Storage
from lakeloom.lakehouse.tables import Tables
from lakeloom.settings import SparkSettings

#: Small and fixed, so runs are comparable on any machine (as in tests/engines).
SPARK_TEST_SETTINGS = SparkSettings(master="local[2]", conf={"spark.sql.shuffle.partitions": "2"})

STORES = ["sqlite", pytest.param("redis", marks=pytest.mark.redis)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A redis-server of this test session (no persistence), as a URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "redis-server is not installed: `make test` installs it (.ci/ensure-services.sh)",
            pytrace=False,
        )
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"redis-server did not start on port {port}", pytrace=False)
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def redis_db(redis_url: str) -> str:
    """The session's Redis, emptied for this test."""
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    return redis_url


@pytest.fixture
def make_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[str], OnlineStore]]:
    """Opens stores of a backend on the same data (two stores = two processes' views)."""
    opened: list[OnlineStore] = []

    def make(kind: str) -> OnlineStore:
        store: OnlineStore
        if kind == "sqlite":
            store = SQLiteOnlineStore(str(tmp_path / "online.db"))
        else:
            from lakeloom.features.online.redis import RedisOnlineStore

            store = RedisOnlineStore(request.getfixturevalue("redis_db"), prefix="test")
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture(params=STORES)
def store_kind(request: pytest.FixtureRequest) -> str:
    """Each online backend in turn."""
    kind: str = request.param
    if kind == "redis":
        request.getfixturevalue("redis_db")
    return kind


@pytest.fixture
def store(store_kind: str, make_store: Callable[[str], OnlineStore]) -> OnlineStore:
    """An empty online store of the backend under test."""
    return make_store(store_kind)


@pytest.fixture(scope="session")
def local_engine() -> Engine:
    """The local engine (stateless)."""
    return LocalEngine()


@pytest.fixture(scope="session")
def spark_engine() -> Iterator[Engine]:
    """One Spark engine (and session) for the whole test session."""
    from lakeloom.engines.spark import SparkEngine

    engine = SparkEngine(SPARK_TEST_SETTINGS)
    engine.spark.range(1).count()  # start now, not inside the first test
    try:
        yield engine
    finally:
        engine.close()


@pytest.fixture
def tables(local_engine: Engine, tmp_path: Path) -> Tables:
    """A fresh lakehouse on the local engine."""
    return Tables(Storage(str(tmp_path / "ws")), local_engine)
