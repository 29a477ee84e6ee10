"""Loading raw files (CSV, Parquet, JSON) from ``Files/`` into lakehouse tables.

DuckDB reads the file and infers its column types; CSV rows that do not fit (a value that
does not cast, a missing or extra column) are set aside with ``store_rejects`` and reported
with their line numbers instead of failing the whole load. A text column whose values are
almost all numbers, dates or timestamps (at most :data:`MAX_BAD_SHARE` of them not) gets that
type, and its few bad values become rejected rows too, rather than turning the whole column
into text. The rows that fit are written with one Delta commit.

>>> report = load_file(ws.tables, ws.files_dir, "customers.csv", "raw.customers")  # doctest: +SKIP
>>> report.rows_loaded, report.rows_rejected, report.version                       # doctest: +SKIP
(9998, 2, 0)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import duckdb
import pyarrow as pa

from lakeloom.errors import InvalidArgument, SchemaMismatch
from lakeloom.lakehouse.names import parse_table_name
from lakeloom.lakehouse.tables import Tables

__all__ = [
    "FORMATS",
    "MAX_BAD_SHARE",
    "FileFormat",
    "LoadReport",
    "RejectedRow",
    "detect_format",
    "load_file",
    "read_file",
    "resolve_file",
]

FileFormat = Literal["csv", "parquet", "json"]

#: Formats ``load_file`` reads, and the file extensions that select them.
FORMATS: dict[str, tuple[str, ...]] = {
    "csv": (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz"),
    "parquet": (".parquet", ".pq"),
    "json": (".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz"),
}

#: Share of a text column's values that may fail to parse for it still to be typed.
MAX_BAD_SHARE = 0.02

#: How many rejected rows a report describes (all of them are counted).
REPORTED_REJECTS = 10

# Candidate types for text columns, strictest first, with the test a value must pass.
_CANDIDATES: tuple[tuple[str, str], ...] = (
    # Like DuckDB's sniffer, zero-padded numbers (zip codes, ids) stay text.
    ("BIGINT", r"regexp_full_match(trim({c}), '[+-]?(0|[1-9][0-9]*)')"),
    (
        "DOUBLE",
        r"try_cast({c} as DOUBLE) is not null and not regexp_matches(trim({c}), '^[+-]?0[0-9]')",
    ),
    ("DATE", "try_cast({c} as DATE) is not null"),
    ("TIMESTAMP", "try_cast({c} as TIMESTAMP) is not null"),
)
# DuckDB types a Delta table cannot hold, read as text instead.
_AS_TEXT = ("TIME", "TIME WITH TIME ZONE", "INTERVAL", "UUID", "JSON", "BIT")


@dataclass(frozen=True)
class RejectedRow:
    """One row of a file that was not loaded, and why."""

    line: int | None
    column: str | None
    error: str
    text: str | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {"line": self.line, "column": self.column, "error": self.error, "text": self.text}


@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_file` did."""

    path: str
    table: str
    format: str
    mode: str
    rows_loaded: int
    rows_rejected: int
    version: int
    columns: dict[str, str] = field(default_factory=dict)
    #: The first :data:`REPORTED_REJECTS` rejected rows.
    rejects: list[RejectedRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "path": self.path,
            "table": self.table,
            "format": self.format,
            "mode": self.mode,
            "rows_loaded": self.rows_loaded,
            "rows_rejected": self.rows_rejected,
            "version": self.version,
            "columns": dict(self.columns),
            "rejects": [r.to_dict() for r in self.rejects],
        }


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def resolve_file(files_dir: str, path: str | os.PathLike[str]) -> Path:
    """The local file ``path`` names: absolute, or relative to the workspace's ``Files/``.

    A relative path may not leave ``Files/`` (through ``..``); the file must exist.
    """
    raw = os.fspath(path)
    if not raw.strip():
        raise InvalidArgument("the file path is empty")
    if "://" in raw and not raw.startswith("file://"):
        raise InvalidArgument(
            f"cannot load {raw}: only local files are supported; copy it into Files/ first"
        )
    raw = raw.removeprefix("file://")
    candidate = Path(raw).expanduser()
    if candidate.is_absolute():
        resolved = candidate.resolve()
    else:
        if "://" in files_dir:
            raise InvalidArgument(
                f"cannot load {raw} relative to {files_dir}: files on an object store are "
                "not supported yet; pass an absolute local path"
            )
        base = Path(files_dir).resolve()
        resolved = (base / candidate).resolve()
        if not resolved.is_relative_to(base):
            raise InvalidArgument(f"path {raw!r} leaves the workspace's Files/ folder ({base})")
    if not resolved.is_file():
        where = "" if candidate.is_absolute() else f" (relative paths are read from {files_dir})"
        what = "is a folder, not a file" if resolved.is_dir() else "does not exist"
        raise InvalidArgument(f"file {resolved} {what}{where}")
    return resolved


def detect_format(path: str | os.PathLike[str], format: str | None = None) -> FileFormat:
    """``format`` when given, else the format the file's extension names."""
    if format is not None:
        fmt = format.lower()
        if fmt not in FORMATS:
            raise InvalidArgument(
                f"format {format!r} is not supported; use one of {', '.join(FORMATS)}"
            )
        return fmt  # type: ignore[return-value]
    name = os.fspath(path).lower()
    for fmt, extensions in FORMATS.items():
        if name.endswith(extensions):
            return fmt  # type: ignore[return-value]
    known = ", ".join(ext for exts in FORMATS.values() for ext in exts)
    raise InvalidArgument(
        f"cannot tell the format of {os.fspath(path)} from its extension ({known}); "
        "pass the format (--format csv|parquet|json)"
    )


def _connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("set TimeZone='UTC'")
    return con


def _csv_source(path: Path, types: dict[str, str] | None = None) -> str:
    options = ["store_rejects = true"]
    if types:
        pairs = ", ".join(f"{_sql_str(k)}: {_sql_str(v)}" for k, v in types.items())
        options.append(f"types = {{{pairs}}}")
    return f"read_csv({_sql_str(str(path))}, {', '.join(options)})"


def _describe(con: duckdb.DuckDBPyConnection, source: str) -> dict[str, str]:
    rows = con.sql(f"describe select * from {source}").fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def _refine_text_columns(con: duckdb.DuckDBPyConnection, path: Path) -> dict[str, str]:
    """Types for text columns whose values almost all parse as a stricter type."""
    sniffed = _describe(con, _csv_source(path))
    text = [name for name, typ in sniffed.items() if typ == "VARCHAR"]
    if not text:
        return {}
    exprs = []
    for name in text:
        col = _ident(name)
        exprs.append(f"count({col})")
        exprs += [f"count(*) filter (where {test.format(c=col)})" for _, test in _CANDIDATES]
    counts = con.execute(f"select {', '.join(exprs)} from {_csv_source(path)}").fetchall()[0]
    types: dict[str, str] = {}
    width = 1 + len(_CANDIDATES)
    for i, name in enumerate(text):
        present, *passing = (int(v) for v in counts[i * width : (i + 1) * width])
        for (typ, _), ok in zip(_CANDIDATES, passing, strict=True):
            if present and present - ok <= MAX_BAD_SHARE * present:
                types[name] = typ
                break
    return types


def _rejects(con: duckdb.DuckDBPyConnection) -> tuple[int, list[RejectedRow]]:
    (total,) = con.execute(
        "select count(distinct (file_id, line)) from reject_errors "
        "where scan_id = (select max(scan_id) from reject_scans)"
    ).fetchall()[0]
    rows = con.execute(
        "select line, column_name, error_type, error_message, csv_line from reject_errors "
        "where scan_id = (select max(scan_id) from reject_scans) "
        "qualify row_number() over (partition by file_id, line order by column_idx) = 1 "
        f"order by file_id, line limit {REPORTED_REJECTS}"
    ).fetchall()
    return int(total), [
        RejectedRow(
            line=int(r[0]) if r[0] is not None else None,
            column=r[1],
            error=f"{r[2]}: {r[3]}" if r[3] else str(r[2]),
            text=r[4],
        )
        for r in rows
    ]


def _select_storable(con: duckdb.DuckDBPyConnection, source: str) -> str:
    columns = _describe(con, source)
    parts = [
        f"cast({_ident(n)} as VARCHAR) as {_ident(n)}" if t in _AS_TEXT else _ident(n)
        for n, t in columns.items()
    ]
    return f"select {', '.join(parts)} from {source}"


def read_file(
    path: str | os.PathLike[str], format: str | None = None
) -> tuple[pa.Table, int, list[RejectedRow]]:
    """Read a local file into Arrow with inferred types.

    Returns the rows that fit, the number of rejected rows (CSV only) and the first
    :data:`REPORTED_REJECTS` of them.
    """
    file = Path(path)
    fmt = detect_format(file, format)
    con = _connect()
    try:
        try:
            if fmt == "csv":
                source = _csv_source(file, _refine_text_columns(con, file))
            elif fmt == "parquet":
                source = f"read_parquet({_sql_str(str(file))})"
            else:
                source = f"read_json_auto({_sql_str(str(file))})"
            data = con.sql(_select_storable(con, source)).to_arrow_table()
        except duckdb.Error as exc:
            raise InvalidArgument(
                f"cannot read {file} as {fmt.upper()}: {_first_line(exc)}"
            ) from None
        rejected, first = _rejects(con) if fmt == "csv" else (0, [])
    finally:
        con.close()
    return data, rejected, first


def load_file(
    tables: Tables,
    files_dir: str,
    path: str | os.PathLike[str],
    table: str,
    *,
    format: str | None = None,
    mode: Literal["overwrite", "append"] = "overwrite",
) -> LoadReport:
    """Load a file into ``table`` (created when missing) and report what was loaded.

    ``path`` is absolute or relative to ``files_dir`` (the workspace's ``Files/``).
    ``mode="overwrite"`` replaces the table's rows and schema; ``"append"`` adds rows that
    must fit its schema. Raises when the file is missing, its format unknown or no row fits.
    """
    if mode not in ("overwrite", "append"):
        raise InvalidArgument(f"mode must be 'overwrite' or 'append', got {mode!r}")
    schema, name = parse_table_name(table)
    target = f"{schema}.{name}"
    file = resolve_file(files_dir, path)
    fmt = detect_format(file, format)
    data, rejected, first = read_file(file, fmt)
    if data.num_rows == 0:
        detail = f" ({rejected} row(s) rejected, e.g. {first[0].error})" if first else ""
        raise InvalidArgument(f"file {file} has no rows to load{detail}")
    try:
        version = tables.write(
            target,
            data,
            mode=mode,
            schema_mode="overwrite" if mode == "overwrite" else None,
        )
    except SchemaMismatch as exc:
        raise SchemaMismatch(f"cannot append {file} to {target}: {exc}") from None
    return LoadReport(
        path=str(file),
        table=target,
        format=fmt,
        mode=mode,
        rows_loaded=data.num_rows,
        rows_rejected=rejected,
        version=version,
        columns={f.name: str(f.type) for f in tables.describe(target).schema},
        rejects=first,
    )
