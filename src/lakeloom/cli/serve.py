"""``lakeloom serve``: run a real-time endpoint (MLflow's scoring protocol) with uvicorn."""

from __future__ import annotations

import getpass
import json
import os
import sys
from typing import Any

import click

from lakeloom.cli.output import print_json
from lakeloom.cli.state import common_options, get_state
from lakeloom.errors import InvalidArgument

__all__ = ["serve", "worker_app"]

#: Where ``lakeloom serve --workers N`` tells its worker processes what to serve.
_SPEC_ENV = "LAKELOOM_SERVE_SPEC"


def _endpoint(
    config_file: str | None, model: str | None, name: str | None, hashes: list[str]
) -> Any:
    from lakeloom.deployment import load_endpoint_config, single_model_config

    if config_file is not None:
        if model is not None or name is not None:
            raise InvalidArgument("give either an endpoint config file or --model, not both")
        config = load_endpoint_config(config_file)
        if hashes:
            from dataclasses import replace

            from lakeloom.deployment.config import AuthConfig

            config = replace(config, auth=AuthConfig((*config.auth.api_key_hashes, *hashes)))
        return config
    if model is None:
        raise InvalidArgument(
            "nothing to serve: give an endpoint config file (lakeloom serve endpoint.toml) or "
            "--model models:/NAME@ALIAS"
        )
    overrides = {"auth": {"api_key_hashes": hashes}} if hashes else None
    return single_model_config(model, name=name, overrides=overrides)


def worker_app() -> Any:
    """The app of one worker process (``--workers N``): rebuilt from the spec in the env."""
    from lakeloom.deployment import DeploymentContext, create_app
    from lakeloom.workspace import Workspace

    spec = json.loads(os.environ[_SPEC_ENV])
    ws = Workspace.open(spec["workspace"], engine=spec.get("engine"), create=False)
    config = _endpoint(spec.get("config"), spec.get("model"), spec.get("name"), spec["hashes"])
    ctx = DeploymentContext(ws.tables, ws.tracking, ws.settings)
    return create_app(config, ctx, config_path=spec.get("config"))


@click.command(short_help="Serve models over HTTP (MLflow's scoring protocol).")
@click.argument("config_file", metavar="[ENDPOINT.toml]", required=False)
@click.option("--model", "-m", metavar="URI", help="Serve one model: models:/NAME@ALIAS.")
@click.option("--name", metavar="NAME", help="Endpoint name with --model [default: the model's].")
@click.option("--host", metavar="HOST", help="Address to listen on [default: 127.0.0.1].")
@click.option("--port", "-p", type=int, metavar="PORT", help="Port [default: 5001].")
@click.option("--workers", type=click.IntRange(1, 256), help="Worker processes [default: 1].")
@click.option(
    "--api-key-hash",
    "hashes",
    multiple=True,
    metavar="sha256:HEX",
    help="Require an API key with this hash (repeatable); see --hash-key.",
)
@click.option(
    "--hash-key",
    is_flag=True,
    help="Read an API key on stdin, print its hash for the config, and exit.",
)
@click.option("--example-config", is_flag=True, help="Print a documented endpoint.toml and exit.")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
@common_options
def serve(
    config_file: str | None,
    model: str | None,
    name: str | None,
    host: str | None,
    port: int | None,
    workers: int | None,
    hashes: tuple[str, ...],
    hash_key: bool,
    example_config: bool,
    log_level: str,
) -> None:
    """Serve models at /invocations (and /predict) until interrupted.

    \b
      lakeloom serve --model models:/churn_model@production
      lakeloom serve endpoint.toml --port 8080 --workers 2

    An endpoint file declares routes (champion/challenger weights), an optional shadow
    model, limits, API keys and the inference table (`lakeloom serve --example-config`).
    Weights changed in the file and aliases moved in the registry (`lakeloom models
    promote`, `rollback`) are followed within the reload poll interval, without a restart.
    Also served: /health, /ready, /metrics (Prometheus) and the OpenAPI docs at /docs.
    """
    state = get_state()
    if hash_key:
        key = sys.stdin.readline().strip() if not sys.stdin.isatty() else getpass.getpass("key: ")
        if not key:
            raise InvalidArgument("no key given on stdin")
        from lakeloom.deployment import hash_api_key

        digest = hash_api_key(key)
        print_json({"hash": digest}) if state.json else click.echo(digest)
        return
    if example_config:
        from lakeloom.deployment import example_config as example

        click.echo(example(), nl=False)
        return
    ws = state.open()
    config = _endpoint(config_file, model, name, list(hashes))
    serving = ws.settings.serving
    host = host or serving.host
    port = serving.port if port is None else port
    workers = workers or serving.workers
    routes = ", ".join(f"{r.name}={r.model.uri} ({r.weight:g})" for r in config.routes)
    if state.json:
        print_json({"endpoint": config.name, "url": f"http://{host}:{port}", "workers": workers})
    else:
        click.echo(f"endpoint {config.name} on http://{host}:{port}: {routes}", err=True)
    from lakeloom.deployment import DeploymentContext, create_app
    from lakeloom.deployment.server import serve as run_server
    from lakeloom.deployment.server import serve_workers

    if workers > 1:
        os.environ[_SPEC_ENV] = json.dumps(
            {
                "workspace": ws.root,
                "engine": state.engine,
                "config": os.path.abspath(config_file) if config_file else None,
                "model": model,
                "name": name,
                "hashes": list(hashes),
            }
        )
        try:
            serve_workers(
                "lakeloom.cli.serve:worker_app",
                host=host,
                port=port,
                workers=workers,
                log_level=log_level,
            )
        except KeyboardInterrupt:
            pass
        return
    ctx = DeploymentContext(ws.tables, ws.tracking, ws.settings)
    app = create_app(config, ctx, config_path=config_file)
    try:
        run_server(app, host=host, port=port, log_level=log_level, debug=state.debug)
    except KeyboardInterrupt:  # Ctrl-C is how a foreground server stops: not an error
        pass
