"""Compute engines behind one small contract (:class:`Engine`)."""

from lakeloom.engines.base import Catalog, Engine, Frame, SchemaMode, TableRef, WriteMode

__all__ = ["Catalog", "Engine", "Frame", "SchemaMode", "TableRef", "WriteMode"]
