"""Small SQL texts that DuckDB and Spark both read: quoted names, UTC timestamp literals."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["quote", "timestamp"]


def quote(name: str, engine_name: str) -> str:
    """``name`` quoted for the engine's SQL (backticks for Spark, double quotes else)."""
    if engine_name == "spark":
        return "`" + name.replace("`", "``") + "`"
    return '"' + name.replace('"', '""') + '"'


def timestamp(value: datetime) -> str:
    """A UTC timestamp literal (both engines' sessions run in UTC)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return "TIMESTAMP '" + value.strftime("%Y-%m-%d %H:%M:%S.%f") + "'"
