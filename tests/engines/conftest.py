"""Engine fixtures: every contract test runs once per engine; Spark starts once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lakeloom.engines.base import Engine
from lakeloom.engines.local import LocalEngine
from lakeloom.lakehouse.storage import Storage
from lakeloom.lakehouse.tables import Tables
from lakeloom.settings import SparkSettings

#: Small and fixed, so runs are comparable on any machine.
SPARK_TEST_SETTINGS = SparkSettings(master="local[2]", conf={"spark.sql.shuffle.partitions": "2"})
#: A Spark Connect URL to run the Spark side of the suite against instead of local[2]
#: (tests/distributed sets it). pyspark's own variable: the root conftest removes every
#: LAKELOOM_* variable, so LAKELOOM_SPARK_REMOTE cannot carry it into a test session.
CONNECT_URL_VAR = "SPARK_REMOTE"


@pytest.fixture(scope="session")
def spark_engine() -> Iterator[Engine]:
    """One Spark engine (and session) for the whole test session ($SPARK_REMOTE: Connect)."""
    import os

    from lakeloom.engines.spark import SparkEngine

    remote = os.environ.get(CONNECT_URL_VAR, "")
    engine = SparkEngine(SparkSettings(remote=remote) if remote else SPARK_TEST_SETTINGS)
    engine.spark.range(1).count()  # start now (and warm up), not inside the first test
    try:
        yield engine
    finally:
        engine.close()


@pytest.fixture(scope="session")
def local_engine() -> Engine:
    """The local engine (stateless)."""
    return LocalEngine()


@pytest.fixture(params=["local", pytest.param("spark", marks=pytest.mark.spark)])
def engine(request: pytest.FixtureRequest) -> Engine:
    """Each engine of the contract in turn."""
    if request.param == "spark":
        spark: Engine = request.getfixturevalue("spark_engine")
        return spark
    local: Engine = request.getfixturevalue("local_engine")
    return local


@pytest.fixture
def tables(engine: Engine, tmp_path: Path) -> Tables:
    """A fresh, empty lakehouse on the engine under test."""
    return Tables(Storage(str(tmp_path)), engine)
