"""``lakeloom init`` and ``lakeloom version``."""

from __future__ import annotations

import platform
from importlib import metadata

import click

from lakeloom.cli.output import kv_table, out_console, print_json
from lakeloom.cli.state import common_options, get_state

__all__ = ["init", "version"]


@click.command(short_help="Create a workspace.")
@click.argument("path", required=False, metavar="[PATH]")
@common_options
def init(path: str | None) -> None:
    """Create a workspace at PATH (default: --workspace, else the current folder).

    Writes lakeloom.toml (every setting documented) and the Tables/ and Files/ folders; an
    existing lakeloom.toml is kept as it is.
    """
    state = get_state()
    ws = state.init(path or state.root())
    info = {
        "workspace": ws.root,
        "settings": ws.storage.uri("lakeloom.toml"),
        "tables": ws.storage.uri("Tables"),
        "files": ws.files_dir,
        "engine": ws.settings.engine,
        "tracking_uri": ws.tracking.tracking_uri,
    }
    if state.json:
        print_json(info)
        return
    console = out_console()
    console.print(f"Workspace ready at {ws.root}")
    console.print(kv_table(info))


def _versions() -> dict[str, str]:
    out = {"lakeloom": _version("lakeloom"), "python": platform.python_version()}
    for dist in ("deltalake", "duckdb", "pyarrow", "mlflow", "pyspark"):
        out[dist] = _version(dist)
    return out


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


@click.command()
@common_options
def version() -> None:
    """Print the versions of lakeloom and of the libraries it runs on."""
    versions = _versions()
    if get_state().json:
        print_json(versions)
        return
    out_console().print(kv_table(versions))
