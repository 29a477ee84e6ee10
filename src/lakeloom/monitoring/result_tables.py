"""The monitoring tables: ``lakeloom.monitor_<name>_profile`` and ``lakeloom.monitor_<name>_drift``.

Each run appends its rows (one Delta commit per table), so trends are plain SQL::

    lakeloom sql "select run_time, feature, statistic from lakeloom.monitor_churn_drift
                  where is_primary and reference = 'baseline' order by run_time"
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

import pyarrow as pa

from lakeloom.errors import InvalidArgument
from lakeloom.lakehouse.tables import Tables
from lakeloom.monitoring.drift import Finding

__all__ = [
    "DRIFT_SCHEMA",
    "PROFILE_TABLE_SCHEMA",
    "check_monitor_name",
    "drift_table",
    "profile_table",
    "run_row",
    "write_results",
]

_TS = pa.timestamp("us", tz="UTC")
_RUN = [
    ("run_id", pa.string()),
    ("run_time", _TS),
    ("monitor", pa.string()),
    ("source", pa.string()),
    ("window_start", _TS),
    ("window_end", _TS),
]
PROFILE_TABLE_SCHEMA = pa.schema(
    [
        *_RUN,
        ("dataset", pa.string()),
        ("slice", pa.string()),
        ("feature", pa.string()),
        ("stat", pa.string()),
        ("key", pa.string()),
        ("value", pa.float64()),
    ]
)
DRIFT_SCHEMA = pa.schema(
    [
        *_RUN,
        ("slice", pa.string()),
        ("reference", pa.string()),
        ("feature", pa.string()),
        ("kind", pa.string()),
        ("column_type", pa.string()),
        ("method", pa.string()),
        ("statistic", pa.float64()),
        ("p_value", pa.float64()),
        ("threshold", pa.float64()),
        ("drifted", pa.bool_()),
        ("is_primary", pa.bool_()),
        ("detail", pa.string()),
    ]
)
#: Table columns named apart from :class:`Finding`'s attributes (SQL keywords need no quotes).
_FINDING_ATTRS = {"feature": "column", "is_primary": "primary"}
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def check_monitor_name(name: str) -> str:
    """A monitor's name, checked (it becomes part of two table names)."""
    if not _NAME.match(name):
        raise InvalidArgument(
            f"monitor name {name!r} is not allowed: use lowercase letters, digits and "
            "underscores, starting with a letter (e.g. churn)"
        )
    return name


def profile_table(name: str) -> str:
    """The profile table of monitor ``name``."""
    return f"lakeloom.monitor_{name}_profile"


def drift_table(name: str) -> str:
    """The drift table of monitor ``name``."""
    return f"lakeloom.monitor_{name}_drift"


def write_results(
    tables: Tables,
    name: str,
    *,
    run: dict[str, object],
    profiles: Sequence[tuple[str, pa.Table]],
    findings: Sequence[Finding],
) -> dict[str, int]:
    """Append a run's profiles and findings; returns each table's new version.

    ``run`` holds the run's ``run_id``, ``run_time``, ``monitor``, ``source``,
    ``window_start`` and ``window_end``; ``profiles`` are ``(dataset, profile)`` pairs of
    engine profiles (their ``group`` becomes ``slice``).
    """
    parts = []
    for dataset, prof in profiles:
        n = prof.num_rows
        cols = {key: pa.array([run[key]] * n, typ) for key, typ in _RUN}
        cols["dataset"] = pa.array([dataset] * n, pa.string())
        cols["slice"] = prof.column("group")
        cols["feature"] = prof.column("column")
        for key in ("stat", "key", "value"):
            cols[key] = prof.column(key)
        parts.append(pa.table(cols, schema=PROFILE_TABLE_SCHEMA))
    profile_rows = pa.concat_tables(parts) if parts else PROFILE_TABLE_SCHEMA.empty_table()
    n = len(findings)
    drift_cols: dict[str, pa.Array] = {key: pa.array([run[key]] * n, typ) for key, typ in _RUN}
    for field in DRIFT_SCHEMA:
        if field.name in drift_cols:
            continue
        attr = _FINDING_ATTRS.get(field.name, field.name)
        drift_cols[field.name] = pa.array([getattr(f, attr) for f in findings], field.type)
    drift_rows = pa.table(drift_cols, schema=DRIFT_SCHEMA)
    return {
        profile_table(name): tables.write(
            profile_table(name), profile_rows, mode="append", system=True
        ),
        drift_table(name): tables.write(drift_table(name), drift_rows, mode="append", system=True),
    }


def run_row(
    run_id: str,
    run_time: datetime,
    name: str,
    source: str,
    start: datetime | None,
    end: datetime | None,
) -> dict[str, object]:
    """The run columns shared by every row a run writes."""
    return {
        "run_id": run_id,
        "run_time": run_time,
        "monitor": name,
        "source": source,
        "window_start": start,
        "window_end": end,
    }
