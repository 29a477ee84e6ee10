"""Durations as ``30s``, ``5m``, ``1h``, ``1d`` (or ``timedelta``), everywhere."""

from __future__ import annotations

import re
from datetime import timedelta

from lakeloom.errors import InvalidArgument

__all__ = ["parse_duration"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(value: str | timedelta | int | float) -> timedelta:
    """``"90s"``, ``"5m"``, ``"1h"``, ``"7d"``, ``"2w"``, a number of seconds or a timedelta.

    >>> parse_duration("1h")
    datetime.timedelta(seconds=3600)
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (m := _PATTERN.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise InvalidArgument(
            f"duration {value!r} is not valid; use a number with a unit: 30s, 5m, 1h, 1d, 2w"
        )
    if seconds < 0:
        raise InvalidArgument(f"duration {value!r} must not be negative")
    return timedelta(seconds=seconds)
