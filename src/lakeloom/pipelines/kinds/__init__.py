"""The built-in step kinds. A new kind's module is imported here to register it."""

from lakeloom.pipelines.kinds import data, sql

__all__ = ["data", "sql"]
