"""``Workspace.init`` and ``Workspace.open``: settings, folders, MLflow pointed at it."""

from __future__ import annotations

import sqlite3
import tomllib
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pyarrow as pa
import pytest

from lakeloom import Workspace
from lakeloom.errors import SettingsError
from lakeloom.settings import FORMAT_VERSION


@pytest.fixture(autouse=True)
def _no_active_run() -> Iterator[None]:
    yield
    while mlflow.active_run() is not None:
        mlflow.end_run()


def test_init_writes_documented_settings_and_folders(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    ws = Workspace.init(root)
    text = (root / "lakeloom.toml").read_text()
    data = tomllib.loads(text)
    assert data["format_version"] == FORMAT_VERSION
    for key in ("engine", "tracking_uri", "registry_uri", "artifact_location"):
        assert key in data
    assert set(data["spark"]) >= {"master", "remote", "conf"}
    assert set(data["online_store"]) == {"kind", "url"}
    assert set(data["serving"]) == {"host", "port", "workers"}
    assert "storage" in data
    # Every setting has a comment right above it (or above its section).
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if "=" in line and not line.lstrip().startswith("#"):
            above = [x for x in lines[max(0, i - 3) : i] if x.strip()]
            assert any(x.lstrip().startswith(("#", "[")) for x in above), line
    assert (root / "Tables").is_dir()
    assert (root / "Files").is_dir()
    assert ws.root == str(root.resolve())
    assert ws.settings.engine == "local"
    assert repr(ws) == f"Workspace({str(root.resolve())!r}, engine='local')"


def test_init_keeps_an_existing_settings_file(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    Workspace.init(root)
    settings = root / "lakeloom.toml"
    settings.write_text(settings.read_text().replace("port = 5001", "port = 6100"))
    assert Workspace.init(root).settings.serving.port == 6100


def test_reopening_keeps_settings(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    Workspace.init(root)
    path = root / "lakeloom.toml"
    text = path.read_text().replace('master = "local[*]"', 'master = "local[2]"')
    path.write_text(text.replace("port = 5001", "port = 5123"))
    ws = Workspace.open(root)
    assert ws.settings.serving.port == 5123
    assert ws.settings.spark.master == "local[2]"
    assert ws.settings.sources["serving.port"] == str(path)
    again = Workspace.open(str(root))
    assert again.settings == ws.settings


def test_tables_survive_reopening(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    with Workspace.init(root) as ws:
        ws.tables.write("raw.kept", pa.table({"id": [1, 2]}))
    with Workspace.open(root) as ws:
        assert ws.tables.list() == ["raw.kept"]
        assert ws.sql("select sum(id) s from raw.kept").to_pylist() == [{"s": 3}]


def test_env_overrides_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "ws"
    Workspace.init(root)
    monkeypatch.setenv("LAKELOOM_ENGINE", "spark")
    ws = Workspace.open(root)
    assert ws.settings.engine == "spark"  # the engine itself starts lazily
    assert ws.settings.sources["engine"] == "env LAKELOOM_ENGINE"
    assert Workspace.open(root, engine="local").settings.engine == "local"
    monkeypatch.setenv("LAKELOOM_ENGINE", "flink")
    with pytest.raises(SettingsError, match="LAKELOOM_ENGINE"):
        Workspace.open(root)


def test_newer_format_version_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    Workspace.init(root)
    path = root / "lakeloom.toml"
    path.write_text(
        path.read_text().replace(
            f"format_version = {FORMAT_VERSION}", f"format_version = {FORMAT_VERSION + 1}"
        )
    )
    with pytest.raises(SettingsError, match="newer lakeloom") as info:
        Workspace.open(root)
    assert str(path) in str(info.value)


def test_invalid_settings_name_the_file(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "lakeloom.toml").write_text("engine = [unclosed\n")
    with pytest.raises(SettingsError, match=r"lakeloom\.toml"):
        Workspace.open(root)
    (root / "lakeloom.toml").write_text('engine = "duckdb"\n')
    with pytest.raises(SettingsError, match="engine"):
        Workspace.open(root)


def test_open_without_create(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        Workspace.open(tmp_path / "missing", create=False)
    assert not (tmp_path / "missing").exists()


def test_workspace_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKELOOM_WORKSPACE", str(tmp_path / "envws"))
    ws = Workspace.open()
    assert ws.root == str((tmp_path / "envws").resolve())
    assert (tmp_path / "envws" / "Tables").is_dir()


# -- MLflow ------------------------------------------------------------------------------
def test_opening_points_mlflow_at_the_workspace(tmp_path: Path) -> None:
    root = (tmp_path / "ws").resolve()
    ws = Workspace.init(root)
    expected = f"sqlite:///{root}/mlflow.db"
    assert ws.tracking.tracking_uri == expected
    assert ws.tracking.registry_uri == expected
    assert mlflow.get_tracking_uri() == expected
    assert mlflow.get_registry_uri() == expected
    assert ws.tracking.artifact_root == str(root / "mlartifacts")


@pytest.mark.slow
def test_plain_mlflow_calls_land_in_the_workspace(tmp_path: Path) -> None:
    root = (tmp_path / "ws").resolve()
    Workspace.init(root)
    mlflow.set_experiment("x")
    with mlflow.start_run() as run:
        mlflow.log_metric("auc", 0.91)
        mlflow.log_text("hello", "notes/hello.txt")
    with sqlite3.connect(root / "mlflow.db") as db:
        metrics = db.execute(
            "select key, value from metrics where run_uuid = ?", (run.info.run_id,)
        ).fetchall()
        experiments = [r[0] for r in db.execute("select name from experiments").fetchall()]
    assert metrics == [("auc", 0.91)]
    assert "x" in experiments
    artifacts = list((root / "mlartifacts").rglob("hello.txt"))
    assert len(artifacts) == 1
    assert artifacts[0].read_text() == "hello"
    assert run.info.run_id in str(artifacts[0])


def test_the_last_opened_workspace_wins(tmp_path: Path) -> None:
    """mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI; it must not leak into the next
    workspace opened in the same process as if the user had set it."""
    first = Workspace.init(tmp_path / "a")
    second = Workspace.init(tmp_path / "b")
    assert second.tracking.tracking_uri == f"sqlite:///{(tmp_path / 'b').resolve()}/mlflow.db"
    assert mlflow.get_tracking_uri() == second.tracking.tracking_uri
    assert first.tracking.tracking_uri != second.tracking.tracking_uri
    third = Workspace.open(tmp_path / "a")
    assert mlflow.get_tracking_uri() == third.tracking.tracking_uri == first.tracking.tracking_uri


def test_tracking_uri_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "ws"
    Workspace.init(root)
    path = root / "lakeloom.toml"
    from_file = f"sqlite:///{tmp_path}/file.db"
    path.write_text(path.read_text().replace('tracking_uri = ""', f'tracking_uri = "{from_file}"'))
    assert Workspace.open(root).tracking.tracking_uri == from_file

    from_mlflow = f"sqlite:///{tmp_path}/mlflow-env.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", from_mlflow)
    ws = Workspace.open(root)
    assert ws.tracking.tracking_uri == from_mlflow
    assert ws.settings.sources["tracking_uri"] == "env MLFLOW_TRACKING_URI"
    # A user's own MLFLOW_TRACKING_URI keeps winning over the file, workspace after workspace.
    assert Workspace.open(root).tracking.tracking_uri == from_mlflow

    from_lakeloom = f"sqlite:///{tmp_path}/lakeloom-env.db"
    monkeypatch.setenv("LAKELOOM_TRACKING_URI", from_lakeloom)
    ws = Workspace.open(root)
    assert ws.tracking.tracking_uri == from_lakeloom
    assert ws.tracking.registry_uri == from_lakeloom
    assert mlflow.get_tracking_uri() == from_lakeloom
    # An explicit sqlite store still keeps its artifacts in the workspace.
    assert ws.tracking.artifact_root == f"{root.resolve()}/mlartifacts"

    monkeypatch.delenv("LAKELOOM_TRACKING_URI")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert Workspace.open(root).tracking.tracking_uri == from_file
