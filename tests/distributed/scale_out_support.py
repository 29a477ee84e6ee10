"""Helpers of the scale-out tests (the server fixtures live in conftest.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LAKELOOM",
    "PIPELINE",
    "ROOT",
    "START_TIMEOUT",
    "ConnectServer",
    "answers",
    "base_env",
    "free_port",
    "one_error_line",
    "run",
    "table_folders",
    "tail",
]

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = ROOT / "examples" / "churn" / "pipeline.toml"
LAKELOOM = str(Path(sys.executable).parent / "lakeloom")
#: How long a server may take to answer (the machine may be busy with other tests).
START_TIMEOUT = 180.0


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def base_env(**extra: str) -> dict[str, str]:
    """This environment for a subprocess: the venv's tools first on PATH, no LAKELOOM_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKELOOM_", "MLFLOW_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONWARNINGS"] = "ignore::FutureWarning"
    env.update(extra)
    return env


def run(
    command: list[str], env: dict[str, str], timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in the repository, capturing its output as text."""
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def one_error_line(stderr: str) -> str:
    """The CLI's error: exactly one line on stderr, starting with ``error:``."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, stderr
    assert "Traceback" not in stderr, stderr
    return errors[0]


def table_folders(root: Path) -> list[str]:
    """Every Delta table folder under a workspace's Tables/ (``schema/table``)."""
    return sorted(f"{p.parent.name}/{p.name}" for p in (root / "Tables").glob("*/*") if p.is_dir())


def tail(path: Path, chars: int = 3000) -> str:
    """The end of a log file (for a failure message)."""
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


@dataclass(frozen=True)
class ConnectServer:
    """A running Spark Connect server."""

    url: str
    port: int
    log_dir: Path
