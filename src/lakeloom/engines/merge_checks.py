"""What every engine checks before a merge, with the same messages on every engine.

Engines count (nulls per key, repeated keys) their own way; the rules and the words are here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from lakeloom.errors import InvalidArgument, SchemaMismatch

__all__ = ["check_key_values", "check_keys_in", "merge_keys"]


def merge_keys(keys: Iterable[str]) -> list[str]:
    """``keys`` as a list; a merge needs at least one."""
    out = list(keys)
    if not out:
        raise InvalidArgument("merge needs at least one key column")
    return out


def check_keys_in(keys: Sequence[str], columns: Sequence[str], *, table: str | None = None) -> None:
    """Every key is one of ``columns`` (of the data, or of ``table`` when named)."""
    missing = [k for k in keys if k not in columns]
    if missing:
        where = f"table {table}" if table is not None else "the data"
        raise SchemaMismatch(
            f"merge key(s) {', '.join(map(repr, missing))} not in {where}; its columns: "
            f"{', '.join(columns)}"
        )


def check_key_values(
    table: str, keys: Sequence[str], nulls: Mapping[str, int], repeated: int
) -> None:
    """No key is null and no key repeats in the data (``repeated``: rows beyond the first)."""
    for k in keys:
        count = int(nulls.get(k) or 0)
        if count:
            raise InvalidArgument(
                f"merge key {k!r} has {count} null value(s); keys must not be null"
            )
    if repeated:
        raise InvalidArgument(
            f"the data has {repeated} row(s) with a repeated key "
            f"({', '.join(keys)}); deduplicate before merging into {table}"
        )
