"""The CLI reference (``docs/cli.md``), generated from the click commands themselves.

``lakeloom docs cli --output docs/cli.md`` writes it; ``lakeloom docs cli --check docs/cli.md``
exits 1 when the file no longer matches the CLI (the test suite runs the same check), so the
reference cannot drift from the code. The output depends only on the commands' definitions:
no terminal width, no environment.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from lakeloom.cli.output import print_json
from lakeloom.cli.state import common_options, get_state

__all__ = ["cli_reference", "docs"]

#: Options every command accepts (documented once, at the top).
_GLOBAL = frozenset({"workspace", "json_output", "debug"})

_HEADER = """\
# CLI reference

<!-- Generated from the CLI by `lakeloom docs cli --output docs/cli.md`: do not edit by hand. -->

Every command accepts `--workspace PATH` (`-w`; default: `$LAKELOOM_WORKSPACE`, else the
current folder), `--json` (one JSON document on stdout instead of tables) and `--debug` (the
traceback of an error), before or after the command name, and `-h`/`--help`. Exit codes: 0
success, 1 a check ran and said no (a gate refused, drift found), 2 any error (one
`error: ...` line on stderr).
"""


def _paragraphs(text: str | None) -> str:
    """A command's help as Markdown: click's ``\\b`` blocks kept verbatim, ``\\f`` cut."""
    if not text:
        return ""
    text = text.split("\f", 1)[0].strip("\n")
    out: list[str] = []
    for block in text.split("\n\n"):
        lines = block.splitlines()
        if lines and lines[0].strip() == "\b":
            body = "\n".join(lines[1:])
            out.append(f"```text\n{body}\n```")
        else:
            out.append("\n".join(line.strip() for line in lines).strip())
    return "\n\n".join(p for p in out if p.strip())


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _options(command: click.Command, ctx: click.Context, *, skip_global: bool) -> list[str]:
    rows = []
    for param in command.get_params(ctx):
        if isinstance(param, click.Argument) or (skip_global and param.name in _GLOBAL):
            continue
        if isinstance(param, click.Option) and "--help" in param.opts:
            continue  # every command has it
        record = param.get_help_record(ctx)
        if record is None:  # hidden options and arguments
            continue
        names, help_text = record
        rows.append(f"| `{_cell(names)}` | {_cell(help_text)} |")
    if not rows:
        return []
    return ["| option | description |", "|---|---|", *rows]


def _usage(command: click.Command, ctx: click.Context) -> str:
    pieces = " ".join(command.collect_usage_pieces(ctx))
    return f"```text\n{ctx.command_path} {pieces}\n```"


def _section(
    command: click.Command, ctx: click.Context, *, depth: int, skip_global: bool
) -> list[str]:
    out = [f"{'#' * depth} `{ctx.command_path}`", "", _usage(command, ctx)]
    body = _paragraphs(command.help)
    if body:
        out += ["", body]
    options = _options(command, ctx, skip_global=skip_global)
    if options:
        out += ["", *options]
    out.append("")
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            sub_ctx = click.Context(sub, info_name=name, parent=ctx)
            out += _section(sub, sub_ctx, depth=min(depth + 1, 4), skip_global=True)
    return out


def _contents(group: click.Group, ctx: click.Context) -> list[str]:
    lines = ["| command | what it does |", "|---|---|"]
    for name in group.list_commands(ctx):
        sub = group.get_command(ctx, name)
        if sub is None or sub.hidden:
            continue
        anchor = f"{ctx.command_path} {name}".replace(" ", "-")
        summary = _cell(sub.get_short_help_str(limit=200))
        lines.append(f"| [`{name}`](#{anchor}) | {summary} |")
    return lines


def cli_reference(group: click.Group, name: str = "lakeloom") -> str:
    """The Markdown reference of ``group`` and every visible command under it.

    >>> from lakeloom.cli.main import cli
    >>> cli_reference(cli).startswith("# CLI reference")
    True
    """
    ctx = click.Context(group, info_name=name, **group.context_settings)
    body = [_HEADER, *_contents(group, ctx), ""]
    body += _section(group, ctx, depth=2, skip_global=True)
    return "\n".join(body).rstrip("\n") + "\n"


@click.group(short_help="Generate documentation from lakeloom itself.")
def docs() -> None:
    """Generate documentation from lakeloom itself."""


@docs.command("cli")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the Markdown to this file [default: stdout].",
)
@click.option(
    "--check",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Compare with this file instead: exit 1 if it is out of date (writes nothing).",
)
@common_options
def docs_cli(output: Path | None, check: Path | None) -> None:
    """The CLI reference in Markdown (docs/cli.md), generated from the commands.

    Regenerate the committed reference with `lakeloom docs cli --output docs/cli.md`.
    """
    if output is not None and check is not None:
        raise click.UsageError("pass --output or --check, not both")
    root = click.get_current_context().find_root().command
    if not isinstance(root, click.Group):  # pragma: no cover - the CLI's root is a group
        raise click.UsageError("the CLI has no command group to document")
    text = cli_reference(root)
    state = get_state()
    if check is not None:
        current = check.read_text(encoding="utf-8") if check.is_file() else None
        fresh = current == text
        if state.json:
            print_json({"file": str(check), "up_to_date": fresh})
        elif not fresh:
            click.echo(
                f"{check} is out of date; regenerate it with `lakeloom docs cli --output {check}`",
                err=True,
            )
        if not fresh:
            raise click.exceptions.Exit(1)
        return
    if output is None:
        sys.stdout.write(text)
        return
    output.write_text(text, encoding="utf-8")
    click.echo(f"wrote {output} ({len(text.splitlines())} lines)", err=True)
