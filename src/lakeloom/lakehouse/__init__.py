"""The lakehouse: Delta tables under ``Tables/``, raw files under ``Files/``."""

from lakeloom.durations import parse_duration
from lakeloom.lakehouse.names import RESERVED_SCHEMA, parse_table_name
from lakeloom.lakehouse.storage import Storage
from lakeloom.lakehouse.tables import TableInfo, Tables

__all__ = [
    "RESERVED_SCHEMA",
    "Storage",
    "TableInfo",
    "Tables",
    "parse_duration",
    "parse_table_name",
]
