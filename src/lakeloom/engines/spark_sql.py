"""Lakehouse names (``schema.table``) in Spark SQL, without a metastore.

Spark resolves ``raw.customers`` against its session catalog, which knows nothing about the
lakehouse, and a temporary view cannot carry a dot in its name. So the Spark engine rewrites
the query: a small lexer (string literals, comments and back-quoted identifiers are skipped)
finds two-part names that are lakehouse tables and replaces each by a placeholder that
``SparkSession.sql(query, **frames)`` binds to the table's DataFrame (Spark creates and drops
the temporary views itself, or sends the plans along on Spark Connect).

Names that are not lakehouse tables are left alone, so Spark's own catalogue still answers
for them. One known limit: a table alias spelled like a lakehouse table (``raw.id`` where
``raw`` aliases a table and ``raw.id`` is also a lakehouse table) would be taken for the
table; choose another alias.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["BoundQuery", "bind_table_names", "missing_table_name"]

_IDENT = re.compile(r"[^\W\d]\w*")
_NUMBER = re.compile(r"\d+(?:\.\d*)?(?:[eE][+-]?\d+)?[A-Za-z]*|\.\d+(?:[eE][+-]?\d+)?[A-Za-z]*")


@dataclass(frozen=True)
class _Token:
    kind: str  # "ident", "dot", "other"
    value: str
    start: int
    end: int


@dataclass(frozen=True)
class BoundQuery:
    """A query whose lakehouse names became ``{placeholder}`` fields."""

    #: The query for ``SparkSession.sql(text, **frames)`` (other braces doubled).
    text: str
    #: Placeholder to lakehouse table name (``schema.table``, lower case).
    tables: dict[str, str]


def _skip_string(query: str, i: int) -> int:
    quote = query[i]
    i += 1
    while i < len(query):
        c = query[i]
        if c == "\\":
            i += 2
            continue
        if c == quote:
            return i + 1
        i += 1
    return i


def _skip_block_comment(query: str, i: int) -> int:
    depth = 0
    while i < len(query):
        if query.startswith("/*", i):
            depth += 1
            i += 2
        elif query.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    return i


def _tokens(query: str) -> list[_Token]:
    out: list[_Token] = []
    i, n = 0, len(query)
    while i < n:
        c = query[i]
        if c.isspace():
            i += 1
        elif c in "'\"":
            end = _skip_string(query, i)
            out.append(_Token("other", query[i:end], i, end))
            i = end
        elif query.startswith("--", i):
            end = query.find("\n", i)
            i = n if end < 0 else end + 1
        elif query.startswith("/*", i):
            i = _skip_block_comment(query, i)
        elif c == "`":
            j = i + 1
            parts: list[str] = []
            while j < n:
                if query[j] == "`":
                    if query.startswith("``", j):
                        parts.append("`")
                        j += 2
                        continue
                    j += 1
                    break
                parts.append(query[j])
                j += 1
            out.append(_Token("ident", "".join(parts), i, j))
            i = j
        elif (m := _NUMBER.match(query, i)) and (c.isdigit() or not out or out[-1].kind != "ident"):
            out.append(_Token("other", m.group(), i, m.end()))
            i = m.end()
        elif (m := _IDENT.match(query, i)) is not None:
            out.append(_Token("ident", m.group(), i, m.end()))
            i = m.end()
        elif c == ".":
            out.append(_Token("dot", c, i, i + 1))
            i += 1
        else:
            out.append(_Token("other", c, i, i + 1))
            i += 1
    return out


def _escape_braces(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def bind_table_names(query: str, known: Iterable[str]) -> BoundQuery:
    """Replace the lakehouse names of ``known`` in ``query`` by format placeholders.

    >>> q = bind_table_names("select * from raw.a join raw.a x using (id)", ["raw.a"])
    >>> q.text, q.tables
    ('select * from {lakeloom_t0} join {lakeloom_t0} x using (id)', {'lakeloom_t0': 'raw.a'})
    """
    names = {name.lower() for name in known}
    tokens = _tokens(query)
    pieces: list[str] = []
    tables: dict[str, str] = {}
    placeholders: dict[str, str] = {}
    pos = 0
    for i in range(len(tokens) - 2):
        first, dot, second = tokens[i], tokens[i + 1], tokens[i + 2]
        if not (first.kind == "ident" and dot.kind == "dot" and second.kind == "ident"):
            continue
        if i > 0 and tokens[i - 1].kind == "dot":
            continue  # third part of catalog.schema.table, or schema.table.column
        if i + 3 < len(tokens) and tokens[i + 3].kind == "dot":
            continue
        if first.start < pos:
            continue
        name = f"{first.value.lower()}.{second.value.lower()}"
        if name not in names:
            continue
        if name not in placeholders:
            placeholders[name] = f"lakeloom_t{len(placeholders)}"
            tables[placeholders[name]] = name
        pieces.append(_escape_braces(query[pos : first.start]))
        pieces.append("{" + placeholders[name] + "}")
        pos = second.end
    pieces.append(_escape_braces(query[pos:]))
    return BoundQuery("".join(pieces), tables)


def _condition(exc: BaseException) -> str:
    getter = getattr(exc, "getCondition", None)
    try:
        return str(getter() or "") if getter else ""
    except Exception:
        return ""


def missing_table_name(exc: BaseException) -> str | None:
    """The table a Spark "table or view not found" error names (``schema.table``), or None."""
    if _condition(exc) != "TABLE_OR_VIEW_NOT_FOUND" and "TABLE_OR_VIEW_NOT_FOUND" not in str(exc):
        return None
    params: dict[str, str] = {}
    getter = getattr(exc, "getMessageParameters", None)
    if getter is not None:
        try:
            params = dict(getter() or {})
        except Exception:
            params = {}
    name = params.get("relationName")
    if name is None:
        match = re.search(r"table or view (\S+) cannot be found", str(exc))
        name = match.group(1) if match else None
    if name is None:
        return None
    parts = [p.strip("`") for p in name.split("`.`")]
    return ".".join(parts).strip("`").lower()
