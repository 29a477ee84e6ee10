"""Fixtures of the lakehouse tests: an S3 emulator (moto's server) on 127.0.0.1.

The emulator runs in its own process: delta-rs calls that keep the GIL while they talk to
S3 (``DeltaTable.history`` among them) would deadlock against an in-process server thread.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakeloom import Workspace

BUCKET = "lakeloom-test"
ACCESS_KEY = "testing"
SECRET_KEY = "testing"
REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto S3 server with bucket ``lakeloom-test``; yields its endpoint URL."""
    boto3 = pytest.importorskip("boto3")
    pytest.importorskip("moto.server")
    server = Path(sys.executable).with_name("moto_server")
    command = [str(server)] if server.exists() else [sys.executable, "-m", "moto.server"]
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    for _ in range(3):  # the free port may be taken between probing and binding it
        port = _free_port()
        endpoint = f"http://127.0.0.1:{port}"
        with open(log, "w") as out:
            proc = subprocess.Popen(
                [*command, "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=out
            )
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                client.list_buckets()
                break
            except Exception:
                time.sleep(0.1)
        if proc.poll() is None:
            break
    else:
        pytest.fail(f"moto server did not start: {log.read_text()[-2000:]}")
    try:
        client.create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def s3_options(s3_endpoint: str) -> dict[str, str]:
    """Storage options reaching the emulator; commits are made safe by conditional puts."""
    return {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_REGION": REGION,
        "AWS_ALLOW_HTTP": "true",
        "conditional_put": "etag",
    }


@pytest.fixture
def s3_workspace(
    s3_options: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Workspace]:
    """A fresh workspace under ``s3://lakeloom-test/`` (MLflow's sqlite in a temp cache)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for var in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    root = f"s3://{BUCKET}/ws-{uuid.uuid4().hex[:12]}"
    ws = Workspace.init(root, storage_options=s3_options)
    try:
        yield ws
    finally:
        ws.close()
