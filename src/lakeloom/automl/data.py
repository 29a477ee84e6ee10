"""AutoML's inputs: the context that resolves table names, and the checks on the rows.

``fit`` accepts pandas, polars, Arrow, a Spark DataFrame, a lakehouse table name or a
feature-store training set. Table names need a lakehouse, which the estimators get through a
small :class:`AutoMLContext` (tracking config, tables, engine): a ``Workspace`` satisfies it
as it is, and so does ``lakeloom.training.TrainingContext``. Without a context, MLflow's
process-wide tracking URI is used (opening a workspace points it there) and table names are
refused with a message saying what to pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from lakeloom.engines.base import Engine
from lakeloom.errors import AutoMLError, InvalidArgument
from lakeloom.lakehouse.tables import Tables
from lakeloom.models.data import FrameData, Lineage, TrainingData
from lakeloom.models.labels import check_label
from lakeloom.tracking.store import TrackingConfig
from lakeloom.training.sources import TableData

__all__ = ["AutoMLContext", "Loaded", "load_training_data", "tracking_of"]

#: Rows each class needs: FLAML's 5-fold cross-validation stratifies by class.
MIN_ROWS_PER_CLASS = 5
MIN_ROWS = 10


@runtime_checkable
class AutoMLContext(Protocol):
    """What AutoML needs from a workspace; ``Workspace`` and ``TrainingContext`` fit it."""

    @property
    def tracking(self) -> TrackingConfig:
        """Where runs and models are logged."""
        ...

    @property
    def tables(self) -> Tables | None:
        """The lakehouse, to read table names."""
        ...

    @property
    def engine(self) -> Engine | None:
        """The engine that reads them."""
        ...


def tracking_of(context: AutoMLContext | None) -> TrackingConfig:
    """The context's tracking config, or MLflow's process-wide URIs."""
    if context is not None:
        return context.tracking
    import mlflow

    return TrackingConfig(
        tracking_uri=mlflow.get_tracking_uri(),
        registry_uri=mlflow.get_registry_uri(),
        artifact_root=None,
    )


@dataclass
class Loaded:
    """Training rows split into features and label, with their lineage."""

    X: pd.DataFrame
    y: pd.Series
    label: str
    lineage: Lineage
    dropped_label_rows: int


def _training_data(data: Any, context: AutoMLContext | None) -> TrainingData:
    if isinstance(data, str):
        tables = getattr(context, "tables", None)
        engine = getattr(context, "engine", None)
        if tables is None or engine is None:
            raise InvalidArgument(
                f"cannot read table {data!r} without a lakehouse: pass context=ws "
                "(an open Workspace) to the AutoML estimator, or pass the rows themselves"
            )
        return TableData(tables, engine, data)
    if isinstance(data, TrainingData):
        return data
    return FrameData(data)


def label_of(target_column: str | None, label: str | None, data: Any) -> str:
    """The label column from ``target_column``/``label`` (or a training set's own label)."""
    if target_column and label and target_column != label:
        raise InvalidArgument(
            f"target_column={target_column!r} and label={label!r} disagree; pass one of them"
        )
    name = target_column or label or getattr(data, "label", None)
    if not isinstance(name, str) or not name:
        raise InvalidArgument("no label column: pass target_column='churned' (or label=...)")
    return name


def load_training_data(
    data: Any, context: AutoMLContext | None, label: str, *, classify: bool
) -> Loaded:
    """Read ``data`` and check its label: present, not constant, enough rows per class."""
    source = _training_data(data, context)
    df = source.load_df()
    lineage = source.lineage
    y_all = check_label(df, label, lineage.name)
    known = y_all.notna()
    df, y = df.loc[known], y_all.loc[known]
    if len(y) < MIN_ROWS:
        raise AutoMLError(
            f"{len(y)} labelled rows are too few for AutoML's validation split; "
            f"give at least {MIN_ROWS}"
        )
    if classify:
        counts = y.value_counts()
        rare = counts[counts < MIN_ROWS_PER_CLASS]
        if len(rare):
            value = rare.index[0]
            value = value.item() if hasattr(value, "item") else value
            raise AutoMLError(
                f"class {value!r} of label {label!r} has {int(rare.iloc[0])} row(s); "
                f"cross-validation needs at least {MIN_ROWS_PER_CLASS} per class "
                "(merge rare classes or add rows)"
            )
    elif not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
        raise InvalidArgument(
            f"regression needs a numeric label; {label!r} is {y.dtype} "
            "(use AutoMLClassifier for classes)"
        )
    X = df.drop(columns=[label]).reset_index(drop=True)
    if X.shape[1] == 0:
        raise AutoMLError(f"{lineage.name} has no columns besides the label {label!r}")
    return Loaded(X, y.reset_index(drop=True), label, lineage, int((~known).sum()))


def encode_classes(y: pd.Series) -> tuple[list[Any], np.ndarray]:
    """Sorted original classes and the label as codes ``0..k-1``."""
    classes, codes = np.unique(y.to_numpy(), return_inverse=True)
    return [c.item() if hasattr(c, "item") else c for c in classes], codes.astype(np.int64)
