"""Session fixtures for the deployment tests: the registry and the endpoints.

What they hold is described in :mod:`deployment_support`, which the tests import their
helpers from (a module of its own name: ``conftest`` clashes across test folders).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from deployment_support import (
    API_KEY,
    COLUMNS,
    POLL,
    Endpoint,
    Registry,
    _log_lightgbm,
    _log_sklearn,
    _log_slow,
    _pipeline,
    _start,
    churn_frame,
    endpoint_toml,
)

from lakeloom import Workspace
from lakeloom.deployment import hash_api_key, load_endpoint_config, parse_endpoint_config


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A workspace whose registry holds the models ``deployment_support`` describes."""
    import mlflow

    ws = Workspace.init(tmp_path_factory.mktemp("deployment") / "ws")
    mlflow.set_experiment("deployment-tests")
    frame = churn_frame(600)
    X, y = frame[COLUMNS], frame["churned"]
    models = {}
    for version, c in enumerate((1.0, 0.01, 10.0), start=1):
        models[f"churn_model/{version}"] = _pipeline(c).fit(X, y)
        _log_sklearn(models[f"churn_model/{version}"], X, "churn_model")
    for version, c in enumerate((1.0, 0.05), start=1):
        models[f"reload_model/{version}"] = _pipeline(c).fit(X, y)
        _log_sklearn(models[f"reload_model/{version}"], X, "reload_model")
    _log_sklearn(_pipeline(1.0).fit(X, y), X, "reload_model", pickle=True)  # v3: refused
    _log_slow("slow_model")
    lgb_columns = _log_lightgbm("lgb_model")
    reg = Registry(ws, frame, models, lgb_columns)
    for name, alias, version in (
        ("churn_model", "production", 1),
        ("churn_model", "challenger", 2),
        ("churn_model", "candidate", 3),
        ("reload_model", "live", 1),
        ("slow_model", "live", 1),
        ("lgb_model", "live", 1),
    ):
        reg.set_alias(name, alias, version)
    try:
        yield reg
    finally:
        ws.close()


@pytest.fixture(scope="session")
def main_endpoint(
    registry: Registry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Endpoint]:
    """champion 90 / challenger 10 with a shadow, from a file the tests may rewrite."""
    path = tmp_path_factory.mktemp("endpoint") / "endpoint.toml"
    path.write_text(endpoint_toml("churn"))
    ep = _start(registry, load_endpoint_config(path), path)
    yield ep
    ep.server.stop()


@pytest.fixture(scope="session")
def fastapi_endpoint(
    registry: Registry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Endpoint]:
    """The main endpoint's routes served through FastAPI's routing (no lean path)."""
    path = tmp_path_factory.mktemp("endpoint-fastapi") / "endpoint.toml"
    path.write_text(endpoint_toml("churn_fastapi"))
    ep = _start(registry, load_endpoint_config(path), path, lean=False)
    yield ep
    ep.server.stop()


@pytest.fixture(params=["lean", "fastapi"])
def endpoint(
    request: pytest.FixtureRequest, main_endpoint: Endpoint, fastapi_endpoint: Endpoint
) -> Endpoint:
    """Both scoring paths, for the protocol tests."""
    return main_endpoint if request.param == "lean" else fastapi_endpoint


@pytest.fixture(scope="session")
def reload_endpoint(registry: Registry) -> Iterator[Endpoint]:
    """``reload_model@live`` alone; the hot-reload tests move its alias."""
    config = parse_endpoint_config(
        {
            "name": "reload",
            "routes": [{"name": "live", "model": "models:/reload_model@live"}],
            "reload": {"poll_interval": POLL},
            "batching": {"max_wait_ms": 1},
        },
        "tests",
    )
    ep = _start(registry, config, None)
    yield ep
    ep.server.stop()


@pytest.fixture(scope="session")
def guarded_endpoint(registry: Registry) -> Iterator[Endpoint]:
    """API keys, a 64 KiB body limit, 50 rows at most and a 0.5 s timeout."""
    config = parse_endpoint_config(
        {
            "name": "guarded",
            "routes": [{"name": "slow", "model": "models:/slow_model@live"}],
            "auth": {"api_key_hashes": [hash_api_key(API_KEY)]},
            "limits": {"max_body_bytes": 65536, "max_rows": 50, "timeout": "0.5s"},
            "reload": {"poll_interval": POLL},
        },
        "tests",
    )
    ep = _start(registry, config, None)
    yield ep
    ep.server.stop()
