"""``lakeloom tables ...``: list, inspect, time-travel and maintain Delta tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from lakeloom.cli.output import (
    arrow_table,
    kv_table,
    out_console,
    print_json,
    rows_table,
)
from lakeloom.cli.state import common_options, get_state
from lakeloom.errors import InvalidArgument

__all__ = ["tables"]


@click.group(
    invoke_without_command=True,
    short_help="List, inspect, time-travel and maintain Delta tables.",
)
@common_options
@click.pass_context
def tables(ctx: click.Context) -> None:
    """List, inspect, time-travel and maintain Delta tables (alone: `tables list`)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_tables, schema=None)


@tables.command("list")
@click.option("--schema", metavar="S", help="Only the tables of schema S.")
@common_options
def list_tables(schema: str | None) -> None:
    """List tables with their version, rows and last change."""
    state = get_state()
    ws = state.open()
    infos = [ws.tables.describe(name) for name in ws.tables.list(schema)]
    if state.json:
        print_json([{k: i.to_dict()[k] for k in _LIST_KEYS} for i in infos])
        return
    if not infos:
        where = f" in schema {schema}" if schema else ""
        out_console().print(f"No tables{where} in {ws.root}.", markup=False)
        return
    rows = [
        [i.name, i.version, i.rows, i.files, i.size_bytes, _when(i.last_change), i.last_operation]
        for i in infos
    ]
    out_console().print(rows_table(_LIST_KEYS, rows))


_LIST_KEYS = ["name", "version", "rows", "files", "size_bytes", "last_change", "last_operation"]


def _when(value: datetime | None) -> str | None:
    return value.isoformat(sep=" ", timespec="seconds") if value else None


@tables.command(short_help="Show a table's schema, size and tags.")
@click.argument("table")
@common_options
def describe(table: str) -> None:
    """Show a table's schema, version, rows, size, last change and tags."""
    state = get_state()
    info = state.open().tables.describe(table).to_dict()
    if state.json:
        print_json(info)
        return
    console = out_console()
    summary = {k: v for k, v in info.items() if k not in ("schema", "tags", "partition_columns")}
    summary["partition_columns"] = ", ".join(info["partition_columns"]) or "none"
    summary["tags"] = ", ".join(f"{t}=v{v}" for t, v in sorted(info["tags"].items())) or "none"
    console.print(kv_table(summary, title=info["name"]))
    console.print(rows_table(["column", "type"], [[f["name"], f["type"]] for f in info["schema"]]))


@tables.command()
@click.argument("table")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Newest N commits only.")
@common_options
def history(table: str, limit: int | None) -> None:
    """Show a table's commits, newest first."""
    state = get_state()
    entries = state.open().tables.history(table, limit=limit)
    if state.json:
        print_json(entries)
        return
    rows = [
        [e["version"], _when(e["timestamp"]), e["operation"], _short(e["parameters"])]
        for e in entries
    ]
    out_console().print(rows_table(["version", "timestamp", "operation", "parameters"], rows))


def _short(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items() if v not in (None, "", "[]"))


@tables.command(short_help="Restore an older version (number or tag).")
@click.argument("table")
@click.argument("version_or_tag", metavar="VERSION_OR_TAG")
@common_options
def restore(table: str, version_or_tag: str) -> None:
    """Make an older version (a number or a tag) the table's content, as a new version."""
    state = get_state()
    new = state.open().tables.restore(table, version_or_tag)
    _done(
        state.json,
        {"table": table, "restored": version_or_tag, "version": new},
        f"Restored {table} to {version_or_tag}: now at version {new}.",
    )


@tables.command(short_help="Name a version of a table.")
@click.argument("table")
@click.argument("tag")
@click.option(
    "--version", "version", type=click.IntRange(min=0), help="Version to tag [default: latest]."
)
@common_options
def tag(table: str, tag: str, version: int | None) -> None:
    """Name a version of a table; vacuum keeps a tagged version's files."""
    state = get_state()
    tagged = state.open().tables.tag(table, tag, version)
    _done(
        state.json,
        {"table": table, "tag": tag, "version": tagged},
        f"Tagged {table} version {tagged} as {tag!r}.",
    )


@tables.command()
@click.argument("table")
@click.argument("tag")
@common_options
def untag(table: str, tag: str) -> None:
    """Remove a tag from a table."""
    state = get_state()
    state.open().tables.untag(table, tag)
    _done(state.json, {"table": table, "untagged": tag}, f"Removed tag {tag!r} from {table}.")


@tables.command()
@click.argument("table")
@click.option(
    "--retain",
    default="7d",
    show_default=True,
    metavar="DURATION",
    help="Keep files that versions newer than this need (30m, 12h, 7d...).",
)
@click.option("--dry-run", is_flag=True, help="List the files without deleting them.")
@common_options
def vacuum(table: str, retain: str, dry_run: bool) -> None:
    """Delete data files no recent or tagged version needs."""
    state = get_state()
    files = state.open().tables.vacuum(table, retain=retain, dry_run=dry_run)
    verb = "Would delete" if dry_run else "Deleted"
    if state.json:
        print_json({"table": table, "dry_run": dry_run, "retain": retain, "files": files})
        return
    console = out_console()
    console.print(f"{verb} {len(files)} file(s) of {table}.")
    for name in files:
        console.print(f"  {name}", markup=False)


@tables.command(short_help="Compact a table's small files.")
@click.argument("table")
@common_options
def optimize(table: str) -> None:
    """Compact a table's small files into larger ones (same rows, new version)."""
    state = get_state()
    ws = state.open()
    metrics = ws.tables.optimize(table)
    version = ws.tables.version(table)
    if state.json:
        print_json({"table": table, "version": version, "metrics": metrics})
        return
    console = out_console()
    console.print(f"Optimized {table}: now at version {version}.")
    console.print(kv_table({k: v for k, v in metrics.items() if not isinstance(v, dict)}))


@tables.command()
@click.argument("table")
@click.option("--yes", is_flag=True, help="Really drop it (required: it deletes every version).")
@common_options
def drop(table: str, yes: bool) -> None:
    """Delete a table and all its versions."""
    state = get_state()
    if not yes:
        raise InvalidArgument(f"dropping {table} deletes all its versions; pass --yes to confirm")
    state.open().tables.drop(table)
    _done(state.json, {"table": table, "dropped": True}, f"Dropped {table}.")


@tables.command()
@click.argument("table")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="Rows to show (0: all).",
)
@click.option("--version", "version", type=click.IntRange(min=0), help="Time travel to a version.")
@common_options
def show(table: str, limit: int, version: int | None) -> None:
    """Show a table's rows (the latest version, or --version)."""
    state = get_state()
    ws = state.open()
    data = ws.engine.to_arrow(ws.tables.read(table, version=version))
    total = data.num_rows
    if limit:
        data = data.slice(0, limit)
    if state.json:
        print_json(
            {
                "table": table,
                "version": version if version is not None else ws.tables.version(table),
                "columns": [{"name": f.name, "type": str(f.type)} for f in data.schema],
                "rows": data.to_pylist(),
                "row_count": total,
                "truncated": data.num_rows < total,
            }
        )
        return
    title = f"{table}" + (f" (version {version})" if version is not None else "")
    out_console().print(arrow_table(data, title=title, total_rows=total))


def _done(as_json: bool, doc: dict[str, Any], message: str) -> None:
    if as_json:
        print_json(doc)
    else:
        out_console().print(message, markup=False)
