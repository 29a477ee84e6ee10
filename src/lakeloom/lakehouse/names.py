"""Table names: ``schema.table``, safe identifiers only, the ``lakeloom`` schema reserved."""

from __future__ import annotations

import re

from lakeloom.errors import InvalidTableName

__all__ = ["RESERVED_SCHEMA", "parse_table_name"]

#: Schema holding the tables lakeloom keeps itself (alias history, run logs, inference logs).
RESERVED_SCHEMA = "lakeloom"

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def parse_table_name(name: object, *, allow_reserved: bool = False) -> tuple[str, str]:
    """Split and validate ``schema.table``; names are case-insensitive and stored lower case.

    >>> parse_table_name("Raw.Customers")
    ('raw', 'customers')
    """
    if not isinstance(name, str) or not name.strip():
        raise InvalidTableName(
            f"table name must be a non-empty string like 'raw.customers', got {name!r}"
        )
    parts = name.strip().split(".")
    if len(parts) != 2 or not all(_IDENT.match(p) for p in parts):
        raise InvalidTableName(
            f"invalid table name {name!r}: use schema.table with letters, digits and "
            "underscores, not starting with a digit (e.g. raw.customers)"
        )
    schema, table = parts[0].lower(), parts[1].lower()
    if schema == RESERVED_SCHEMA and not allow_reserved:
        raise InvalidTableName(
            f"schema {RESERVED_SCHEMA!r} is reserved for lakeloom's own tables; "
            f"choose another schema for {name!r}"
        )
    return schema, table
