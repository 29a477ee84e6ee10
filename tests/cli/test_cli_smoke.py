"""The installed ``lakeloom`` script in real processes (exit codes, no abort at exit).

Each command runs twice: a process that read Delta tables could abort at interpreter exit
(exit code 134) at random; ``main`` ends with ``os._exit`` to avoid it. Repeats run in
parallel to keep the suite fast.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pytest

from lakeloom import Workspace

_SCRIPT = Path(sys.executable).with_name("lakeloom")
LAKELOOM = str(_SCRIPT) if _SCRIPT.exists() else shutil.which("lakeloom")

pytestmark = pytest.mark.skipif(LAKELOOM is None, reason="the lakeloom script is not installed")


def _env() -> dict[str, str]:
    drop = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    return {k: v for k, v in os.environ.items() if not k.startswith("LAKELOOM_") and k not in drop}


def run_all(
    commands: Sequence[Sequence[str]], cwd: Path, timeout: float = 120
) -> list[subprocess.CompletedProcess[str]]:
    """Run ``lakeloom`` with each argument list, in parallel; results in the same order."""
    procs = [
        subprocess.Popen(
            [str(LAKELOOM), *args],
            cwd=cwd,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in commands
    ]
    results = []
    for proc, args in zip(procs, commands, strict=True):
        out, err = proc.communicate(timeout=timeout)
        results.append(subprocess.CompletedProcess([LAKELOOM, *args], proc.returncode, out, err))
    return results


def test_help(tmp_path: Path) -> None:
    for result in run_all([["--help"], ["tables", "--help"]], tmp_path):
        assert result.returncode == 0, result.stderr
        assert "Usage: lakeloom" in result.stdout


def test_init_and_sql(tmp_path: Path) -> None:
    (init,) = run_all([["init"]], tmp_path)
    assert init.returncode == 0, init.stderr
    assert (tmp_path / "lakeloom.toml").is_file()
    with Workspace.open(tmp_path) as ws:  # a table to read, written in-process (faster)
        ws.tables.write("s.t", pa.table({"x": [42]}))
    read = ["sql", "select x from s.t", "--json"]
    ok1, ok2, bad = run_all([read, read, ["sql", "select * from raw.nope"]], tmp_path)
    for ok in (ok1, ok2):
        assert ok.returncode == 0, ok.stderr
        assert json.loads(ok.stdout)["rows"] == [{"x": 42}]
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip().splitlines() == [
        "error: table 'raw.nope' does not exist; `lakeloom tables` lists them"
    ]


def test_demo(tmp_path: Path) -> None:
    runs = run_all(
        [["demo", "--customers", "500", "--workspace", str(tmp_path / f"demo{i}")] for i in (1, 2)],
        tmp_path,
    )
    for i, result in enumerate(runs, start=1):
        assert result.returncode == 0, result.stderr
        assert "ml.churn_training" in result.stdout
        assert f"lakeloom ui --workspace {tmp_path / f'demo{i}'}" in result.stdout
