"""Lakehouse tables as training data (read at one pinned Delta version)."""

from __future__ import annotations

from functools import cached_property

import pandas as pd

from lakeloom.engines.base import Engine
from lakeloom.lakehouse.tables import Tables
from lakeloom.models.data import Lineage

__all__ = ["TableData"]


class TableData:
    """Table ``name`` at ``version`` (default: the latest, pinned when first read)."""

    def __init__(
        self, tables: Tables, engine: Engine, name: str, version: int | None = None
    ) -> None:
        self._tables = tables
        self._engine = engine
        self._name = name
        self._version = version

    @cached_property
    def _pinned(self) -> tuple[str, int, str]:
        ref = self._tables.resolve(self._name)
        version = self._tables.version(ref.name) if self._version is None else self._version
        return ref.name, version, ref.uri

    @cached_property
    def _frame(self) -> pd.DataFrame:
        name, version, _ = self._pinned
        arrow = self._engine.to_arrow(self._tables.read(name, version=version))
        return arrow.to_pandas()

    def load_df(self) -> pd.DataFrame:
        """The table's rows at the pinned version."""
        return self._frame

    @property
    def lineage(self) -> Lineage:
        """Table name, the Delta version read, its rows and location."""
        name, version, uri = self._pinned
        return Lineage(name=name, version=version, rows=len(self._frame), uri=uri)
