"""``lakeloom ui``: the MLflow UI on the workspace's tracking store, in the foreground."""

from __future__ import annotations

import subprocess
import sys

import click

from lakeloom.cli.output import print_json
from lakeloom.cli.state import common_options, get_state

__all__ = ["mlflow_ui_command", "ui"]


def mlflow_ui_command(
    tracking_uri: str, registry_uri: str, artifact_root: str | None, host: str, port: int
) -> list[str]:
    """The ``mlflow ui`` command line for a workspace's store."""
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri]
    if registry_uri and registry_uri != tracking_uri:
        cmd += ["--registry-store-uri", registry_uri]
    if artifact_root:
        cmd += ["--default-artifact-root", artifact_root]
    return [*cmd, "--host", host, "--port", str(port)]


def _serve(cmd: list[str]) -> int:
    """Run the server until it stops (Ctrl+C stops it)."""
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return 0


@click.command(short_help="Open the MLflow UI of the workspace.")
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to listen on (0.0.0.0: every interface).",
)
@common_options
def ui(port: int, host: str) -> None:
    """Open the MLflow UI (experiments, runs, models) of the workspace, until Ctrl+C.

    With a tracking server configured (tracking_uri = http://...), prints where it is.
    """
    state = get_state()
    ws = state.open()
    tracking = ws.tracking
    if not tracking.embedded:
        doc = {"tracking_uri": tracking.tracking_uri, "server": "external"}
        if state.json:
            print_json(doc)
        else:
            click.echo(f"This workspace tracks to {tracking.tracking_uri}: open it there.")
        return
    cmd = mlflow_ui_command(
        tracking.tracking_uri, tracking.registry_uri, tracking.artifact_root, host, port
    )
    url = f"http://{host}:{port}"
    if state.json:
        print_json({"tracking_uri": tracking.tracking_uri, "url": url, "command": cmd})
    else:
        click.echo(f"MLflow UI for {ws.root} at {url} (Ctrl+C to stop)", err=True)
    code = _serve(cmd)
    if code:
        click.get_current_context().exit(2)
