"""Checks of a train/test split, shared by the scikit-learn and the Spark ML paths."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lakeloom.errors import InvalidArgument

__all__ = ["check_classes_repeat", "check_test_size"]


def check_test_size(test_size: object) -> float:
    """``test_size`` as a float, or :class:`InvalidArgument` unless it is a fraction in (0, 1)."""
    if isinstance(test_size, bool) or not isinstance(test_size, int | float):
        raise InvalidArgument(f"test_size must be a fraction like 0.2, got {test_size!r}")
    if not 0 < float(test_size) < 1:
        raise InvalidArgument(f"test_size must be between 0 and 1 (exclusive), got {test_size}")
    return float(test_size)


def check_classes_repeat(counts: Mapping[Any, int], label: str) -> None:
    """:class:`InvalidArgument` when a class of ``label`` has a single row (``counts``:
    rows per class): a split needs at least two rows of each.
    """
    rare = [value for value, n in counts.items() if n < 2]
    if rare:
        raise InvalidArgument(
            f"class {rare[0]!r} of label {label!r} has a single row; the split needs at "
            "least two rows per class"
        )
