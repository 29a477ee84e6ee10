"""``lakeloom features ...``: list, describe and version feature tables; publish and get online."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click

from lakeloom.cli.output import kv_table, out_console, print_json, rows_table
from lakeloom.cli.state import common_options, get_state
from lakeloom.errors import InvalidArgument

__all__ = ["features"]


@click.group(
    invoke_without_command=True,
    short_help="Feature tables: list, describe, history; publish and get online.",
)
@common_options
@click.pass_context
def features(ctx: click.Context) -> None:
    """Feature tables: list, describe, history; publish and get online (alone: `list`)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_features)


def _when(value: datetime | None) -> str | None:
    return value.isoformat(sep=" ", timespec="seconds") if value else None


@features.command("list")
@common_options
def list_features() -> None:
    """List feature tables with their keys, timestamp key and description."""
    state = get_state()
    found = state.open().features.list_tables()
    if state.json:
        print_json([t.to_dict() for t in found])
        return
    if not found:
        out_console().print("No feature tables yet (fs.create_table creates one).", markup=False)
        return
    rows = [
        [t.name, ", ".join(t.primary_keys), t.timestamp_key or "", t.description] for t in found
    ]
    out_console().print(rows_table(["name", "primary_keys", "timestamp_key", "description"], rows))


@features.command(short_help="Show a feature table's keys, schema, rows, versions, freshness.")
@click.argument("table")
@common_options
def describe(table: str) -> None:
    """Show keys, schema, rows, version, freshness, snapshots and the models that use it."""
    state = get_state()
    info = state.open().features.describe(table).to_dict()
    if state.json:
        print_json(info)
        return
    console = out_console()
    summary = {
        "primary_keys": ", ".join(info["primary_keys"]),
        "timestamp_key": info["timestamp_key"] or "none",
        "description": info["description"] or "",
        "rows": info["rows"],
        "version": info["version"],
        "versions": info["versions"],
        "freshness": info["freshness"] or "none",
        "last_change": info["last_change"],
        "snapshots": ", ".join(f"{t}=v{v}" for t, v in sorted(info["snapshots"].items())) or "none",
        "tags": ", ".join(f"{k}={v}" for k, v in sorted(info["tags"].items())) or "none",
        "used_by": ", ".join(info["used_by"]) or "no registered model",
    }
    console.print(kv_table(summary, title=info["name"]))
    keys = {*info["primary_keys"], info["timestamp_key"]}
    rows = [[f["name"], f["type"], "key" if f["name"] in keys else ""] for f in info["schema"]]
    console.print(rows_table(["column", "type", ""], rows))


@features.command(short_help="Show a feature table's versions (every write is one).")
@click.argument("table")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most N versions.")
@common_options
def history(table: str, limit: int | None) -> None:
    """Show the versions of a feature table, newest first."""
    state = get_state()
    entries = state.open().features.history(table, limit)
    if state.json:
        print_json(entries)
        return
    rows = [[e["version"], _when(e["timestamp"]), e["operation"]] for e in entries]
    out_console().print(rows_table(["version", "timestamp", "operation"], rows))


@features.command(short_help="Copy the latest row per key of feature tables to the online store.")
@click.argument("tables", nargs=-1, required=True)
@click.option(
    "--mode",
    type=click.Choice(["snapshot", "incremental"]),
    default="snapshot",
    show_default=True,
    help="snapshot rebuilds the online copy; incremental writes what changed since the last.",
)
@click.option(
    "--ttl", metavar="DURATION", default=None, help="Rows older than this read as missing (7d)."
)
@common_options
def publish(tables: tuple[str, ...], mode: str, ttl: str | None) -> None:
    """Publish feature tables to the online store (``[online_store]`` in lakeloom.toml)."""
    state = get_state()
    fs = state.open().features
    reports = [fs.publish_table(t, mode=mode, ttl=ttl) for t in tables]
    if state.json:
        print_json([r.to_dict() for r in reports])
        return
    rows = [
        [r.name, r.mode, r.source_version, r.rows_read, r.rows_written, round(r.seconds, 3)]
        for r in reports
    ]
    out_console().print(
        rows_table(["table", "mode", "version", "rows_read", "rows_written", "seconds"], rows)
    )


def _key(text: str) -> Any:
    """A key from the command line: JSON (``42``, ``"a"``, ``[1, "x"]``), else the text."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return tuple(value) if isinstance(value, list) else value


@features.command(short_help="Read online features by key.")
@click.argument("table")
@click.argument("keys", nargs=-1, required=True)
@click.option(
    "--features",
    "names",
    metavar="A,B",
    default=None,
    help="Only these features (comma-separated).",
)
@common_options
def get(table: str, keys: tuple[str, ...], names: str | None) -> None:
    """Read the online features of KEYS (JSON: 42, "abc", or [1, "x"] for several key columns).

    Exits 1 when a key has no online row.
    """
    state = get_state()
    wanted = [n.strip() for n in names.split(",") if n.strip()] if names else None
    if names is not None and not wanted:
        raise InvalidArgument("--features names no feature")
    rows = state.open().features.get_online_features(table, [_key(k) for k in keys], wanted)
    if state.json:
        print_json(rows)
    else:
        console = out_console()
        for key, row in zip(keys, rows, strict=True):
            if row is None:
                console.print(f"{key}: not found", markup=False)
            else:
                console.print(kv_table(row, title=f"{table} {key}"))
    if any(r is None for r in rows):
        raise click.exceptions.Exit(1)
