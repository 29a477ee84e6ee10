"""The ``lakeloom`` command line (click). ``lakeloom --help`` lists the commands."""

from lakeloom.cli.main import cli, main, run_cli

__all__ = ["cli", "main", "run_cli"]
