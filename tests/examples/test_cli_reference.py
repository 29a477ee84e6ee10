"""docs/cli.md is generated from the CLI; it must match the commands as they are now."""

from __future__ import annotations

import json
from pathlib import Path

import click
from click.testing import CliRunner

from lakeloom.cli import cli
from lakeloom.cli.reference import cli_reference

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
REGENERATE = "lakeloom docs cli --output docs/cli.md"


def _visible(group: click.Group, path: str) -> list[str]:
    ctx = click.Context(group, info_name=path)
    out = []
    for name in group.list_commands(ctx):
        sub = group.get_command(ctx, name)
        if sub is None or sub.hidden:
            continue
        out.append(f"{path} {name}")
        if isinstance(sub, click.Group):
            out += _visible(sub, f"{path} {name}")
    return out


def test_docs_cli_md_is_up_to_date() -> None:
    assert DOC.is_file(), f"docs/cli.md is missing; generate it with `{REGENERATE}`"
    assert DOC.read_text(encoding="utf-8") == cli_reference(cli), (
        f"docs/cli.md is stale (a command or option changed); regenerate it with `{REGENERATE}`"
    )


def test_the_reference_covers_every_visible_command_and_option() -> None:
    text = cli_reference(cli)
    for path in _visible(cli, "lakeloom"):
        assert f"`{path}`\n\n```text\n{path} " in text, path
    assert "`--reason TEXT`" in text and "`--from STEP`" in text
    assert "--stage" not in text  # a hidden option (deprecated stages) is not documented
    assert "| `--workspace" not in text  # global options are documented once, at the top


def test_docs_cli_writes_prints_and_checks(tmp_path: Path) -> None:
    runner = CliRunner()
    printed = runner.invoke(cli, ["docs", "cli"])
    assert printed.exit_code == 0 and printed.stdout == cli_reference(cli)

    target = tmp_path / "cli.md"
    assert runner.invoke(cli, ["docs", "cli", "--output", str(target)]).exit_code == 0
    assert target.read_text(encoding="utf-8") == cli_reference(cli)
    fresh = runner.invoke(cli, ["docs", "cli", "--check", str(target), "--json"])
    assert fresh.exit_code == 0 and json.loads(fresh.stdout)["up_to_date"] is True

    target.write_text("# stale\n", encoding="utf-8")
    stale = runner.invoke(cli, ["docs", "cli", "--check", str(target)])
    assert stale.exit_code == 1
    assert f"regenerate it with `lakeloom docs cli --output {target}`" in stale.stderr
    assert target.read_text(encoding="utf-8") == "# stale\n"  # --check writes nothing

    both = runner.invoke(cli, ["docs", "cli", "--output", "a.md", "--check", "b.md"])
    assert both.exit_code == 2 and "not both" in both.stderr
