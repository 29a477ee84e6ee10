"""The label column: checking it and telling classification from regression.

A label of booleans, strings or integers with few distinct values is a classification label
(binary with two classes); any other numeric label is a regression target. ``task=`` overrides.
"""

from __future__ import annotations

from typing import Literal

import pandas as pd

from lakeloom.errors import InvalidArgument, SchemaMismatch

__all__ = ["MAX_CLASSES", "TASKS", "Task", "check_label", "infer_task", "is_classification"]

Task = Literal["binary", "multiclass", "regression"]
#: Accepted by ``task=``/``--task``; "classification" picks binary or multiclass from the data.
TASKS = ("classification", "binary", "multiclass", "regression")
#: Integer labels with at most this many distinct values are classes.
MAX_CLASSES = 20


def is_classification(task: str) -> bool:
    """Whether ``task`` is binary or multiclass classification."""
    return task in ("binary", "multiclass", "classification")


def check_label(df: pd.DataFrame, label: str, source: str) -> pd.Series:
    """The label column of ``df``, or a one-line error saying what is wrong with it."""
    if not isinstance(label, str) or not label:
        raise InvalidArgument("label must be the name of a column (label='churned')")
    if df.shape[0] == 0:
        raise InvalidArgument(f"{source} has no rows: nothing to train on")
    if label not in df.columns:
        columns = ", ".join(map(str, df.columns))
        raise SchemaMismatch(f"label column {label!r} is not in {source}; its columns: {columns}")
    y = df[label]
    known = y.dropna()
    if known.empty:
        raise InvalidArgument(f"label column {label!r} of {source} has only missing values")
    if known.nunique() < 2:
        raise InvalidArgument(
            f"label column {label!r} of {source} is constant ({known.iloc[0]!r}): "
            "a model needs at least two distinct values to learn from"
        )
    return y


def infer_task(y: pd.Series, task: str | None = None) -> Task:
    """``binary``, ``multiclass`` or ``regression`` for label values ``y``.

    >>> infer_task(pd.Series([0, 1, 1, 0]))
    'binary'
    >>> infer_task(pd.Series([0.5, 1.25, 3.0]))
    'regression'
    """
    known = y.dropna()
    distinct = int(known.nunique())
    if task is not None and task not in TASKS:
        raise InvalidArgument(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if task == "regression":
        if not pd.api.types.is_numeric_dtype(known) or pd.api.types.is_bool_dtype(known):
            raise InvalidArgument(
                f"task 'regression' needs a numeric label; label {y.name!r} is {known.dtype}"
            )
        return "regression"
    if task is not None:
        chosen: Task = "binary" if distinct == 2 else "multiclass"
        if task != "classification" and task != chosen:
            raise InvalidArgument(
                f"task {task!r} does not fit label {y.name!r}, which has {distinct} classes"
            )
        return chosen
    if pd.api.types.is_bool_dtype(known) or not pd.api.types.is_numeric_dtype(known):
        return "binary" if distinct == 2 else "multiclass"
    if pd.api.types.is_integer_dtype(known) and distinct <= MAX_CLASSES:
        return "binary" if distinct == 2 else "multiclass"
    if pd.api.types.is_float_dtype(known) and distinct == 2 and set(known.unique()) <= {0.0, 1.0}:
        return "binary"
    return "regression"
