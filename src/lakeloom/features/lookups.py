"""``FeatureLookup``: which features of which table a training set (or a model) joins.

The names follow Databricks Feature Engineering, so code written for it reads the same::

    FeatureLookup(
        table_name="features.customer_rfm",
        lookup_key="customer_id",             # label column(s) matching the primary keys
        timestamp_lookup_key="label_date",    # point in time (omit: the latest row)
        feature_names=["recency_days", "total_spent"],
        rename_outputs={"total_spent": "spent"},
        lookback_window="90d",
        default_values={"recency_days": 999},
    )
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from lakeloom.durations import parse_duration
from lakeloom.errors import InvalidArgument

__all__ = ["FeatureLookup"]


def _names(value: str | Sequence[str] | None, what: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = (value,) if isinstance(value, str) else tuple(value)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise InvalidArgument(f"{what} must be a column name or a list of them, got {value!r}")
    if len(set(names)) != len(names):
        raise InvalidArgument(f"{what} names a column twice: {list(names)}")
    return names


def _seconds(value: timedelta) -> str:
    text = format(value.total_seconds(), "f").rstrip("0").rstrip(".")
    return f"{text or '0'}s"


@dataclass(frozen=True)
class FeatureLookup:
    """Features of one feature table, matched to label rows by key (and time).

    * ``lookup_key``: the label frame's column(s) that hold the table's primary key values,
      in the order of the table's primary keys.
    * ``feature_names``: the columns to fetch (default: every column but the keys and the
      timestamp key).
    * ``rename_outputs``: ``{feature: output name}`` in the training set.
    * ``timestamp_lookup_key``: the label frame's time column. With it (and a table with a
      timestamp key) each label row gets the latest feature row at or before its time;
      without it, the latest row of its key.
    * ``lookback_window``: only feature rows at most this old (``"30d"``, a ``timedelta``)
      count; older ones give the default (or null).
    * ``default_values``: ``{feature or output name: value}`` for label rows without a
      matching feature row (a matched row's null stays null).
    """

    table_name: str
    lookup_key: str | Sequence[str]
    feature_names: str | Sequence[str] | None = None
    rename_outputs: Mapping[str, str] | None = None
    timestamp_lookup_key: str | None = None
    lookback_window: str | timedelta | None = None
    default_values: Mapping[str, Any] | None = field(default=None)

    @property
    def lookup_keys(self) -> tuple[str, ...]:
        """``lookup_key`` as a tuple."""
        keys = _names(self.lookup_key, f"lookup_key of {self.table_name}")
        assert keys is not None
        return keys

    @property
    def features(self) -> tuple[str, ...] | None:
        """``feature_names`` as a tuple (None: all the table's features)."""
        return _names(self.feature_names, f"feature_names of {self.table_name}")

    @property
    def lookback(self) -> timedelta | None:
        """``lookback_window`` as a ``timedelta``."""
        if self.lookback_window is None:
            return None
        return parse_duration(self.lookback_window)

    def output_name(self, feature: str) -> str:
        """The training set's name for ``feature``."""
        return (self.rename_outputs or {}).get(feature, feature)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form (``from_dict`` reads it back)."""
        lookback = self.lookback
        return {
            "table_name": self.table_name,
            "lookup_key": list(self.lookup_keys),
            "feature_names": list(self.features) if self.features is not None else None,
            "rename_outputs": dict(self.rename_outputs or {}),
            "timestamp_lookup_key": self.timestamp_lookup_key,
            "lookback_window": _seconds(lookback) if lookback is not None else None,
            "default_values": dict(self.default_values or {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureLookup:
        """The lookup :meth:`to_dict` described."""
        return cls(
            table_name=str(data["table_name"]),
            lookup_key=list(data["lookup_key"]),
            feature_names=data.get("feature_names"),
            rename_outputs=data.get("rename_outputs") or None,
            timestamp_lookup_key=data.get("timestamp_lookup_key"),
            lookback_window=data.get("lookback_window"),
            default_values=data.get("default_values") or None,
        )
