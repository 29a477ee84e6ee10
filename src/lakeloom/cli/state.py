"""What every command shares: the global options, and the workspaces a command opened.

``--workspace``, ``--json`` and ``--debug`` are accepted both before the command name
(``lakeloom --json tables list``) and after it (``lakeloom tables list --json``);
:func:`common_options` puts them on a command.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from lakeloom.errors import SettingsError

if TYPE_CHECKING:
    from lakeloom.workspace import Workspace

__all__ = ["ENGINES", "State", "common_options", "get_state"]

F = TypeVar("F", bound=Callable[..., Any])

#: Values of ``--engine``.
ENGINES = ("local", "spark")


@dataclass
class State:
    """Options of one invocation, and the workspaces it opened (closed at the end)."""

    workspace: str | None = None
    engine: str | None = None
    json: bool = False
    debug: bool = False
    opened: list[Workspace] = field(default_factory=list)

    def root(self, default: str | None = None) -> str:
        """The root: ``--workspace``, else ``default``, else $LAKELOOM_WORKSPACE, else ``.``."""
        return self.workspace or default or os.environ.get("LAKELOOM_WORKSPACE") or "."

    def open(self) -> Workspace:
        """Open the (existing) workspace; a folder without one is an error, not created."""
        from lakeloom.workspace import Workspace

        root = self.root()
        if "://" not in root or root.startswith("file://"):
            folder = Path(root.removeprefix("file://")).expanduser()
            if not (folder / "lakeloom.toml").is_file() and not (folder / "Tables").is_dir():
                raise SettingsError(
                    f"no lakeloom workspace at {folder.resolve()}; create one with "
                    f"`lakeloom init {root}` or pass --workspace PATH"
                )
        ws = Workspace.open(root, engine=self.engine, create=False)
        self.opened.append(ws)
        return ws

    def init(self, root: str) -> Workspace:
        """Create (or reuse) the workspace at ``root`` and open it."""
        from lakeloom.workspace import Workspace

        ws = Workspace.init(root)
        if self.engine is not None:
            ws.close()
            ws = Workspace.open(root, engine=self.engine)
        self.opened.append(ws)
        return ws

    def close_all(self) -> None:
        """Close every workspace opened (stops Spark sessions). Safe to call twice."""
        while self.opened:
            self.opened.pop().close()


def get_state(ctx: click.Context | None = None) -> State:
    """The invocation's :class:`State` (created on first use)."""
    ctx = ctx or click.get_current_context()
    return ctx.ensure_object(State)


def _set_workspace(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        get_state(ctx).workspace = value


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        get_state(ctx).json = True


def _set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        get_state(ctx).debug = True


def common_options(f: F) -> F:
    """Add ``--workspace``, ``--json`` and ``--debug`` to a command (or the group)."""
    f = click.option(
        "--debug",
        is_flag=True,
        expose_value=False,
        callback=_set_debug,
        help="Show the traceback of an error.",
    )(f)
    f = click.option(
        "--json",
        "json_output",
        is_flag=True,
        expose_value=False,
        callback=_set_json,
        help="Print one JSON document on stdout instead of tables.",
    )(f)
    f = click.option(
        "--workspace",
        "-w",
        metavar="PATH",
        expose_value=False,
        callback=_set_workspace,
        help="Workspace folder or URI [default: $LAKELOOM_WORKSPACE, else the current folder].",
    )(f)
    return f
