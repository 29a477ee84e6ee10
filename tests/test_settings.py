from __future__ import annotations

from pathlib import Path

import pytest

from lakeloom.errors import SettingsError
from lakeloom.settings import FORMAT_VERSION, default_settings_toml, load_settings


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "lakeloom.toml"
    path.write_text(text)
    return str(path)


def test_defaults_file_round_trips(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, default_settings_toml()), env={})
    assert s.engine == "local"
    assert s.format_version == FORMAT_VERSION
    assert s.spark.master == "local[*]"
    assert s.online_store.kind == "sqlite"
    assert s.serving.port == 5001


def test_env_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'engine = "local"\n[spark]\nmaster = "local[1]"\n')
    s = load_settings(path, env={"LAKELOOM_ENGINE": "spark", "LAKELOOM_SPARK_MASTER": "local[2]"})
    assert s.engine == "spark"
    assert s.spark.master == "local[2]"
    assert s.sources["engine"] == "env LAKELOOM_ENGINE"


def test_tracking_uri_precedence(tmp_path: Path) -> None:
    path = write(tmp_path, 'tracking_uri = "http://file:5000"\n')
    assert load_settings(path, env={}).tracking_uri == "http://file:5000"
    env = {"MLFLOW_TRACKING_URI": "http://mlflow:5000"}
    assert load_settings(path, env=env).tracking_uri == "http://mlflow:5000"
    env["LAKELOOM_TRACKING_URI"] = "http://lakeloom:5000"
    assert load_settings(path, env=env).tracking_uri == "http://lakeloom:5000"


@pytest.mark.parametrize(
    ("text", "env", "words"),
    [
        ('engine = "duckdb"\n', {}, ["engine", "lakeloom.toml", "local, spark"]),
        ("", {"LAKELOOM_ENGINE": "flink"}, ["engine", "env LAKELOOM_ENGINE", "local, spark"]),
        ("[serving]\nport = 70000\n", {}, ["serving.port", "1 to 65535"]),
        ('[serving]\nport = "x"\n', {}, ["serving.port", "whole number"]),
        ('enginee = "local"\n', {}, ["unknown setting", "enginee"]),
        ('[spark]\nremote = "http://x"\n', {}, ["spark.remote", "sc://"]),
        ('[online_store]\nkind = "memcached"\n', {}, ["online_store.kind", "sqlite, redis"]),
        ("engine = [\n", {}, ["not valid TOML"]),
    ],
)
def test_bad_values_name_key_and_allowed(
    tmp_path: Path, text: str, env: dict[str, str], words: list[str]
) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(write(tmp_path, text), env=env)
    for word in words:
        assert word in str(info.value)


def test_newer_format_version_refused(tmp_path: Path) -> None:
    path = write(tmp_path, f"format_version = {FORMAT_VERSION + 1}\n")
    with pytest.raises(SettingsError, match="newer lakeloom"):
        load_settings(path, env={})
