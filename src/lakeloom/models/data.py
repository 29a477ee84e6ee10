"""Training inputs: a small protocol so tables, frames and feature-store training sets plug in.

Training data crosses into pandas at the training boundary: models train in memory on one
machine, and training data is small compared with the tables it comes from (sample or
aggregate first when it is not). Anything with ``load_df()`` and ``lineage`` is training data;
the feature store's training sets implement the same two members.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import pandas as pd
import pyarrow as pa

from lakeloom.engines.arrow_input import to_arrow_input

__all__ = ["FrameData", "Lineage", "TrainingData", "to_pandas"]


@dataclass(frozen=True)
class Lineage:
    """Where training data came from, as logged with every run."""

    #: A lakehouse table name (``raw.customers``) or a label for in-memory data.
    name: str
    #: The Delta version read (None for in-memory data).
    version: int | None
    rows: int
    #: Location of the data (the table's URI), if any.
    uri: str | None = None

    def tags(self) -> dict[str, str]:
        """The lineage as ``lakeloom.*`` run tags."""
        out = {"lakeloom.table": self.name, "lakeloom.rows": str(self.rows)}
        if self.version is not None:
            out["lakeloom.table_version"] = str(self.version)
        if self.uri:
            out["lakeloom.table_uri"] = self.uri
        return out


@runtime_checkable
class TrainingData(Protocol):
    """What training needs from its input: the rows, and where they came from."""

    def load_df(self) -> pd.DataFrame:
        """The rows as a pandas DataFrame."""
        ...

    @property
    def lineage(self) -> Lineage:
        """Name, version, row count and location of the data."""
        ...


def to_pandas(data: Any) -> pd.DataFrame:
    """pandas from pandas, polars, Arrow (Table or RecordBatchReader) or Spark data."""
    if isinstance(data, pd.DataFrame):
        return data
    arrow = to_arrow_input(data)
    if isinstance(arrow, pa.RecordBatchReader):
        arrow = arrow.read_all()
    return arrow.to_pandas()


class FrameData:
    """In-memory data (pandas, polars or Arrow) as :class:`TrainingData`."""

    def __init__(self, data: Any, name: str = "dataframe") -> None:
        self._df = to_pandas(data)
        self._name = name

    def load_df(self) -> pd.DataFrame:
        """The rows."""
        return self._df

    @property
    def lineage(self) -> Lineage:
        """In-memory data has a name and a row count, no version."""
        return Lineage(name=self._name, version=None, rows=len(self._df))
