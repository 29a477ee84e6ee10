"""Rendering for the CLI: rich tables on stdout, progress on stderr, JSON, and errors.

Results go to stdout (a rich rendering, or one JSON document with ``--json``); progress and
warnings go to stderr, so ``lakeloom ... --json | jq`` always gets clean JSON.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import math
import os
import sys
import traceback
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Literal

import click
import pyarrow as pa
from rich.console import Console, Group, RenderableType
from rich.status import Status
from rich.table import Table
from rich.text import Text

from lakeloom.errors import LakeloomError

__all__ = [
    "StepProgress",
    "arrow_table",
    "err_console",
    "error_line",
    "format_value",
    "jsonable",
    "kv_table",
    "out_console",
    "print_json",
    "report_error",
    "rows_table",
    "warn",
]


#: Width of tables written to a file or a pipe (a terminal's own width is used otherwise).
PIPE_WIDTH = 160


def _width(stream: Any) -> int | None:
    if os.environ.get("COLUMNS"):
        return None
    isatty = getattr(stream, "isatty", None)
    return None if callable(isatty) and isatty() else PIPE_WIDTH


def out_console() -> Console:
    """A console on stdout (for results)."""
    return Console(highlight=False, soft_wrap=False, width=_width(sys.stdout))


def err_console() -> Console:
    """A console on stderr (for progress and warnings)."""
    return Console(stderr=True, highlight=False, soft_wrap=False, width=_width(sys.stderr))


def jsonable(value: Any) -> Any:
    """``json.dumps`` fallback: dates and timestamps as ISO 8601, decimals as numbers..."""
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, pa.DataType | pa.Schema):
        return str(value)
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    return str(value)


def _clean(value: Any) -> Any:
    """NaN and infinities are not JSON: make them null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def print_json(doc: Any) -> None:
    """Print ``doc`` as one JSON document on stdout."""
    click.echo(json.dumps(_clean(doc), default=jsonable, indent=2, ensure_ascii=False))


def format_value(value: Any) -> str:
    """A cell's text: floats rounded for reading, null as ``null``."""
    if value is None:
        return "null"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value != 0 and (abs(value) >= 1e15 or abs(value) < 1e-4):
            return f"{value:.6g}"
        return f"{value:.6f}".rstrip("0").rstrip(".")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def rows_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    title: str | None = None,
    caption: str | None = None,
) -> RenderableType:
    """A rich table of plain rows (values formatted with :func:`format_value`)."""
    table = Table()
    materialised = [list(row) for row in rows]
    for i, name in enumerate(columns):
        values = [row[i] for row in materialised if row[i] is not None]
        numeric = bool(values) and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in values
        )
        table.add_column(name, overflow="fold", justify="right" if numeric else "left")
    for row in materialised:
        table.add_row(*[Text(format_value(v), style="dim" if v is None else "") for v in row])
    if title is None and caption is None:
        return table
    # Title and caption on lines of their own: rich would wrap them to a narrow table's width.
    parts: list[RenderableType] = [Text(title, style="bold")] if title else []
    parts.append(table)
    if caption:
        parts.append(Text(caption, style="dim"))
    return Group(*parts)


def arrow_table(
    data: pa.Table, *, title: str | None = None, total_rows: int | None = None
) -> RenderableType:
    """A rich table of an Arrow table's rows, with a caption when rows were left out."""
    caption = None
    if total_rows is not None and total_rows > data.num_rows:
        caption = f"{data.num_rows:,} of {total_rows:,} rows shown"
    columns = data.column_names
    rows = ([r[c] for c in columns] for r in data.to_pylist())
    return rows_table(columns, rows, title=title, caption=caption)


def kv_table(
    pairs: Mapping[str, Any] | Iterable[tuple[str, Any]], title: str | None = None
) -> Table:
    """A two-column table of names and values."""
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    table = Table(show_header=False, title=title, title_justify="left", box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in items:
        table.add_row(key, Text(format_value(value)))
    return table


def warn(message: str) -> None:
    """A one-line warning on stderr."""
    click.echo(f"warning: {message}", err=True)


def error_line(exc: BaseException) -> str:
    """The one line printed for an error (``error: ...``)."""
    if isinstance(exc, LakeloomError):
        text = str(exc)
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return "error: " + (" ".join(lines) or type(exc).__name__)
    if isinstance(exc, KeyboardInterrupt):
        return "error: interrupted"
    first = (str(exc).strip().splitlines() or [""])[0]
    detail = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return f"error: unexpected {detail} (rerun with --debug for the traceback)"


def report_error(exc: BaseException, *, debug: bool) -> int:
    """Print ``exc`` on stderr (its traceback too with ``debug``); returns the exit code."""
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    click.echo(error_line(exc), err=True)
    if isinstance(exc, KeyboardInterrupt):
        return 130
    return exc.exit_code if isinstance(exc, LakeloomError) else 2


class StepProgress:
    """Shows pipeline steps as they run (on stderr): a spinner, then a line per step."""

    _MARKS: ClassVar[dict[str, tuple[str, str]]] = {
        "succeeded": ("✓", "green"),
        "failed": ("✗", "red"),
        "skipped": ("-", "dim"),
    }

    def __init__(self, console: Console | None = None, *, show_skipped: bool = True) -> None:
        self._console = console or err_console()
        self._status: Status | None = None
        self._show_skipped = show_skipped

    def __call__(self, event: Literal["start", "end"], record: Any) -> None:
        """The runner's ``on_event`` callback."""
        if event == "start":
            self._status = self._console.status(f"{record.step} ({record.kind}) ...")
            self._status.start()
            return
        if self._status is not None:
            self._status.stop()
            self._status = None
        if record.status == "skipped" and not self._show_skipped:
            return
        mark, style = self._MARKS.get(record.status, ("?", ""))
        line = Text()
        line.append(f"{mark} ", style=style)
        line.append(f"{record.step:<16}", style="bold")
        line.append(f" {record.kind:<15}")
        if record.duration_s is not None:
            line.append(f" {record.duration_s:6.2f}s")
        detail = record.error if record.status == "failed" else record.message
        if detail:
            line.append(f"  {detail}", style="red" if record.status == "failed" else "")
        self._console.print(line, soft_wrap=True)

    def close(self) -> None:
        """Stop a spinner left running (after an interruption)."""
        if self._status is not None:
            self._status.stop()
            self._status = None
