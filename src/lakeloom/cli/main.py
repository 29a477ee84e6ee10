"""The ``lakeloom`` command: ``lakeloom [--workspace PATH] [--engine local|spark] [--json]
[--debug] COMMAND``.

Exit codes: 0 success, 1 a check ran and said no, 2 any error (one ``error: ...`` line on
stderr; the traceback only with ``--debug``).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import click

from lakeloom.cli import automl, basic, data, demo, run, sql, tables, ui
from lakeloom.cli import features as features_cli
from lakeloom.cli import models as models_cli
from lakeloom.cli import monitor as monitor_cli
from lakeloom.cli import reference as reference_cli
from lakeloom.cli import runs as runs_cli
from lakeloom.cli import score as score_cli
from lakeloom.cli import serve as serve_cli
from lakeloom.cli import train as train_cli
from lakeloom.cli.output import report_error
from lakeloom.cli.state import ENGINES, State, common_options, get_state

__all__ = ["cli", "main", "run_cli"]


class LakeloomGroup(click.Group):
    """A group that turns any error of a command into one line and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; errors are reported, then the context exits with their code."""
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except BrokenPipeError:
            raise click.exceptions.Exit(0) from None  # `lakeloom ... | head`: the reader left
        except (Exception, KeyboardInterrupt) as exc:
            code = report_error(exc, debug=get_state(ctx).debug)
            raise click.exceptions.Exit(code) from None


@click.group(
    cls=LakeloomGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default=None,
    help="Compute engine [default: the workspace's setting, else local].",
)
@common_options
@click.pass_context
def cli(ctx: click.Context, engine: str | None) -> None:
    """lakeloom: the machine-learning lifecycle on a Delta Lakehouse, local-first.

    Start with `lakeloom demo`, or `lakeloom init` then `lakeloom run PIPELINE.toml`.
    """
    state = get_state(ctx)
    if engine is not None:
        state.engine = engine
    ctx.call_on_close(state.close_all)


for _command in (
    basic.init,
    basic.version,
    tables.tables,
    sql.sql,
    data.load,
    data.data,
    run.run,
    demo.demo,
    ui.ui,
    automl.automl,
    train_cli.train,
    runs_cli.runs,
    models_cli.models,
    features_cli.features,
    serve_cli.serve,
    score_cli.score,
    monitor_cli.monitor,
    monitor_cli.ab,
    reference_cli.docs,
):
    cli.add_command(_command)


def run_cli(args: Sequence[str] | None = None, state: State | None = None) -> int:
    """Run the CLI in-process and return its exit code (``main`` without the exit)."""
    state = state or State()
    try:
        rv = cli.main(
            args=list(args) if args is not None else None,
            prog_name="lakeloom",
            standalone_mode=False,
            obj=state,
        )
        return rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
    except click.exceptions.NoArgsIsHelpError as exc:
        exc.show()
        return 2
    except click.ClickException as exc:
        exc.show()
        return 2 if exc.exit_code == 1 else exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.Abort:
        click.echo("error: aborted", err=True)
        return 2
    except (Exception, KeyboardInterrupt) as exc:  # raised outside a command
        return report_error(exc, debug=state.debug)
    finally:
        try:
            state.close_all()
        except Exception as exc:
            report_error(exc, debug=state.debug)


def main() -> None:
    """The console script: run, close the workspaces, flush, and ``os._exit``.

    ``os._exit`` skips interpreter teardown, where delta-rs and pyarrow threads can abort
    the process (exit 134) after the work is done.
    """
    # MLflow prints "View run ... at: URL" on stdout for tracking servers, which would break
    # `--json` output; the CLI reports runs itself.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    # Progress bars of artifact downloads and MLflow's INFO lines (database migrations, ...)
    # drown a command's own report; MLflow's warnings still show.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    if "--debug" not in sys.argv[1:]:
        # Hints MLflow gives to notebook users about signatures that lakeloom writes itself.
        warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow\.types\.utils")
    code = run_cli(sys.argv[1:])
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
