"""Workspace settings: ``lakeloom.toml``, overridden by ``LAKELOOM_*`` variables.

Precedence, highest first: environment (``LAKELOOM_*``; for the tracking URI also
``MLFLOW_TRACKING_URI``) > ``lakeloom.toml`` > defaults. Every value is validated when loaded;
an error names the key, where the value came from and what is allowed.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from lakeloom.errors import SettingsError

__all__ = [
    "FORMAT_VERSION",
    "SETTINGS_FILE",
    "OnlineStoreSettings",
    "ServingSettings",
    "Settings",
    "SparkSettings",
    "default_settings_toml",
    "load_settings",
]

#: The workspace layout version this lakeloom writes and reads.
FORMAT_VERSION = 1
SETTINGS_FILE = "lakeloom.toml"

ENGINES = ("local", "spark")
ONLINE_STORES = ("sqlite", "redis")


@dataclass(frozen=True)
class SparkSettings:
    """How the Spark engine gets its session."""

    master: str = "local[*]"
    remote: str = ""
    conf: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OnlineStoreSettings:
    """Where online features are served from."""

    kind: str = "sqlite"
    url: str = ""


@dataclass(frozen=True)
class ServingSettings:
    """Defaults for ``lakeloom serve``."""

    host: str = "127.0.0.1"
    port: int = 5001
    workers: int = 1


@dataclass(frozen=True)
class Settings:
    """Validated settings of one workspace. Build with :func:`load_settings`."""

    format_version: int = FORMAT_VERSION
    engine: str = "local"
    tracking_uri: str = ""
    registry_uri: str = ""
    artifact_location: str = ""
    storage: Mapping[str, str] = field(default_factory=dict)
    spark: SparkSettings = field(default_factory=SparkSettings)
    online_store: OnlineStoreSettings = field(default_factory=OnlineStoreSettings)
    serving: ServingSettings = field(default_factory=ServingSettings)
    #: Where each value came from, by dotted key ("default", a file path or "env VAR").
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)


_DOC = """\
# lakeloom workspace settings. Every key may be overridden by an environment variable
# named LAKELOOM_<KEY> (sections joined by "_", upper case), e.g. LAKELOOM_ENGINE=spark,
# LAKELOOM_SPARK_MASTER=local[2], LAKELOOM_TRACKING_URI=http://127.0.0.1:5000.

# Layout version of this workspace; a newer lakeloom may raise it, an older one refuses it.
format_version = {format_version}

# Compute engine for table-sized work: "local" (DuckDB + Arrow + delta-rs) or "spark".
engine = "local"

# MLflow tracking store. Empty: sqlite:///<workspace>/mlflow.db with artifacts in
# <workspace>/mlartifacts. Precedence: LAKELOOM_TRACKING_URI > MLFLOW_TRACKING_URI > this.
tracking_uri = ""

# MLflow model registry store. Empty: same as tracking_uri.
registry_uri = ""

# Where new experiments store artifacts. Empty: <workspace>/mlartifacts (embedded store only).
artifact_location = ""

[storage]
# Options passed to delta-rs for object-store workspaces (s3://, abfss://, gs://), e.g.
# AWS_ENDPOINT_URL = "http://127.0.0.1:9000"
# AWS_REGION = "us-east-1"
# AWS_ALLOW_HTTP = "true"

[spark]
# Spark master when engine = "spark": "local[*]", "local[2]", "spark://host:7077", ...
master = "local[*]"
# Spark Connect URL ("sc://host:15002"); when set it is used instead of master.
remote = ""

[spark.conf]
# Extra Spark configuration, e.g. "spark.sql.shuffle.partitions" = "8"

[online_store]
# Online feature store: "sqlite" (<workspace>/online.db) or "redis".
kind = "sqlite"
# Redis URL when kind = "redis", e.g. "redis://127.0.0.1:6379/0"; a SQLite path otherwise.
url = ""

[serving]
# Defaults for `lakeloom serve`.
host = "127.0.0.1"
port = 5001
workers = 1
"""


def default_settings_toml() -> str:
    """The text ``lakeloom init`` writes: every setting with its default and a comment."""
    return _DOC.format(format_version=FORMAT_VERSION)


def _check_str(key: str, value: Any, source: str) -> str:
    if not isinstance(value, str):
        raise SettingsError(
            f"{key} in {source} must be a string, got {type(value).__name__} {value!r}"
        )
    return value


def _check_choice(key: str, value: Any, source: str, allowed: tuple[str, ...]) -> str:
    text = _check_str(key, value, source).strip().lower()
    if text not in allowed:
        raise SettingsError(f"{key} in {source} is {value!r}; allowed values: {', '.join(allowed)}")
    return text


def _check_int(key: str, value: Any, source: str, minimum: int, maximum: int) -> int:
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise SettingsError(
                f"{key} in {source} must be a whole number, got {value!r}"
            ) from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingsError(f"{key} in {source} must be a whole number, got {value!r}")
    if not minimum <= value <= maximum:
        raise SettingsError(f"{key} in {source} is {value}; allowed: {minimum} to {maximum}")
    return value


def _check_table(key: str, value: Any, source: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise SettingsError(f"[{key}] in {source} must be a table of names to strings")
    out: dict[str, str] = {}
    for k, v in value.items():
        if isinstance(v, bool):
            v = "true" if v else "false"
        if not isinstance(v, str | int | float):
            raise SettingsError(f"{key}.{k} in {source} must be a string, got {type(v).__name__}")
        out[str(k)] = str(v)
    return out


_KNOWN: dict[str, tuple[str, ...]] = {
    "": (
        "format_version",
        "engine",
        "tracking_uri",
        "registry_uri",
        "artifact_location",
        "storage",
        "spark",
        "online_store",
        "serving",
    ),
    "spark": ("master", "remote", "conf"),
    "online_store": ("kind", "url"),
    "serving": ("host", "port", "workers"),
}


def _read_file(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path} is not valid TOML: {exc}") from None


def parse_settings(
    data: Mapping[str, Any],
    source: str,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Validate a settings mapping (as read from TOML) and apply environment overrides."""
    env = os.environ if env is None else env
    for section, keys in _KNOWN.items():
        table = data if not section else data.get(section, {})
        if not isinstance(table, Mapping):
            raise SettingsError(f"[{section}] in {source} must be a table")
        for key in table:
            if key not in keys:
                where = f"[{section}] " if section else ""
                raise SettingsError(
                    f"unknown setting {where}{key!r} in {source}; known: {', '.join(keys)}"
                )

    sources: dict[str, str] = {}

    def pick(dotted: str, default: Any) -> tuple[Any, str]:
        env_name = "LAKELOOM_" + dotted.replace(".", "_").upper()
        if env_name in env:
            return env[env_name], f"env {env_name}"
        if dotted == "tracking_uri" and env.get("MLFLOW_TRACKING_URI"):
            return env["MLFLOW_TRACKING_URI"], "env MLFLOW_TRACKING_URI"
        node: Any = data
        for part in dotted.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return default, "default"
            node = node[part]
        return node, source

    def get(dotted: str, default: Any) -> tuple[Any, str]:
        value, src = pick(dotted, default)
        sources[dotted] = src
        return value, src

    d = Settings()
    v, s = get("format_version", FORMAT_VERSION)
    fmt = _check_int("format_version", v, s, 1, 10_000)
    if fmt > FORMAT_VERSION:
        raise SettingsError(
            f"format_version in {s} is {fmt}: this workspace was written by a newer lakeloom "
            f"(this one reads up to {FORMAT_VERSION}); upgrade lakeloom to open it"
        )
    v, s = get("engine", d.engine)
    engine = _check_choice("engine", v, s, ENGINES)
    strs = {}
    for key in ("tracking_uri", "registry_uri", "artifact_location"):
        v, s = get(key, "")
        strs[key] = _check_str(key, v, s).strip()
    storage = _check_table("storage", data.get("storage", {}), source)

    v, s = get("spark.master", d.spark.master)
    master = _check_str("spark.master", v, s).strip() or d.spark.master
    v, s = get("spark.remote", "")
    remote = _check_str("spark.remote", v, s).strip()
    if remote and not remote.startswith("sc://"):
        raise SettingsError(
            f"spark.remote in {s} is {remote!r}; a Spark Connect URL starts with sc:// "
            "(e.g. sc://127.0.0.1:15002)"
        )
    spark_tbl = data.get("spark", {})
    conf = _check_table("spark.conf", spark_tbl.get("conf", {}), source)

    v, s = get("online_store.kind", d.online_store.kind)
    kind = _check_choice("online_store.kind", v, s, ONLINE_STORES)
    v, s = get("online_store.url", "")
    url = _check_str("online_store.url", v, s).strip()
    if kind == "redis" and url and not url.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError(
            f"online_store.url in {s} is {url!r}; a Redis URL starts with redis:// or rediss://"
        )

    v, s = get("serving.host", d.serving.host)
    host = _check_str("serving.host", v, s).strip()
    v, s = get("serving.port", d.serving.port)
    port = _check_int("serving.port", v, s, 1, 65535)
    v, s = get("serving.workers", d.serving.workers)
    workers = _check_int("serving.workers", v, s, 1, 256)

    return Settings(
        format_version=fmt,
        engine=engine,
        tracking_uri=strs["tracking_uri"],
        registry_uri=strs["registry_uri"],
        artifact_location=strs["artifact_location"],
        storage=storage,
        spark=SparkSettings(master=master, remote=remote, conf=conf),
        online_store=OnlineStoreSettings(kind=kind, url=url),
        serving=ServingSettings(host=host, port=port, workers=workers),
        sources=sources,
    )


def load_settings(path: str | None, env: Mapping[str, str] | None = None) -> Settings:
    """Load ``path`` (a ``lakeloom.toml``; missing means defaults) and apply the environment."""
    data = _read_file(path) if path else {}
    return parse_settings(data, path or "defaults", env)


def with_overrides(settings: Settings, **changes: Any) -> Settings:
    """A copy of ``settings`` with top-level fields replaced (e.g. ``engine="spark"``)."""
    names = {f.name for f in fields(Settings)}
    unknown = set(changes) - names
    if unknown:
        raise SettingsError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    if "engine" in changes:
        changes["engine"] = _check_choice("engine", changes["engine"], "arguments", ENGINES)
    return replace(settings, **changes)
