"""``lakeloom serve`` and the ``serve_demo`` step kind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from deployment_support import COLUMNS, Registry, records

from lakeloom.cli import cli
from lakeloom.deployment import hash_api_key


def test_help_example_and_hash_key() -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0 and "/invocations" in result.output
    example = runner.invoke(cli, ["serve", "--example-config"])
    assert example.exit_code == 0 and "[[routes]]" in example.output
    hashed = runner.invoke(cli, ["serve", "--hash-key"], input="my-key\n")
    assert hashed.exit_code == 0 and hashed.output.strip() == hash_api_key("my-key")


def test_errors_are_one_line(registry: Registry, tmp_path: Path) -> None:
    runner = CliRunner()
    ws = registry.ws.root
    bad = tmp_path / "endpoint.toml"
    bad.write_text('name = "x"\n[[routes]]\nmodel = "models:/m@a"\nweight = "heavy"\n')
    for args, needle in (
        (["serve", str(bad)], "routes[0].weight"),
        (["serve", str(tmp_path / "missing.toml")], "does not exist"),
        (["serve"], "nothing to serve"),
        (["serve", "--model", "models:/no_such_model@production", "--port", "0"], "no_such_model"),
    ):
        result = runner.invoke(cli, [*args, "--workspace", ws])
        assert result.exit_code == 2, (args, result.output)
        lines = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and needle in lines[0], result.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_serve_command_runs_and_stops_cleanly(registry: Registry) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "LAKELOOM_"))}
    command = [
        sys.executable, "-c", "from lakeloom.cli.main import main; main()",
        "serve", "--model", "models:/churn_model@production", "--port", str(port),
        "--workspace", registry.ws.root, "--log-level", "warning",
    ]  # fmt: skip
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                if requests.get(url + "/ready", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "lakeloom serve did not become ready"
            time.sleep(0.2)
        payload = {"dataframe_records": records(registry.frame.head(2)[COLUMNS])}
        resp = requests.post(url + "/invocations", json=payload, timeout=10)
        assert resp.status_code == 200 and len(resp.json()["predictions"]) == 2
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b"error:" not in err


def test_serve_demo_step(registry: Registry) -> None:
    from lakeloom.pipelines.kinds.serve import ServeDemoParams
    from lakeloom.pipelines.steps import StepContext, get_kind

    registry.ws.tables.write("ml.serving_rows", registry.frame, mode="overwrite")
    kind = get_kind("serve_demo")
    params = ServeDemoParams(
        champion="models:/churn_model@production",
        challenger="models:/churn_model@challenger",
        champion_weight=50,
        challenger_weight=50,
        data="ml.serving_rows",
        endpoint="demo_step",
        requests=80,
        concurrency=4,
    )
    ctx = StepContext(registry.ws, "test", "serve", "run-1")
    summary = kind.run(ctx, params)
    assert summary is not None and "champion" in summary and "challenger" in summary
    assert "failed" not in summary
    assert [o.table for o in ctx.outputs] == ["lakeloom.inference_demo_step"]
    logged = registry.ws.sql("select count(*) as n from lakeloom.inference_demo_step")
    assert logged.to_pylist()[0]["n"] == 80
