"""Real-time endpoints: MLflow's scoring protocol with routes, shadow, hot reload and logging.

>>> config = load_endpoint_config("endpoint.toml")                       # doctest: +SKIP
>>> app = create_app(config, DeploymentContext(ws.tables, ws.tracking))  # doctest: +SKIP
>>> with start_server(app) as server:                                    # doctest: +SKIP
...     requests.post(server.url + "/invocations", json={"dataframe_split": ...})

``lakeloom serve`` is the command-line face. Model loading is pluggable through
:func:`register_model_loader` (see :mod:`lakeloom.deployment.models`).
"""

from lakeloom.deployment.app import create_app, get_runtime
from lakeloom.deployment.auth import hash_api_key
from lakeloom.deployment.config import (
    EndpointConfig,
    example_config,
    load_endpoint_config,
    parse_endpoint_config,
    single_model_config,
)
from lakeloom.deployment.models import (
    LoadRequest,
    ModelHandle,
    PyfuncHandle,
    register_model_loader,
)
from lakeloom.deployment.runtime import DeploymentContext, EndpointRuntime
from lakeloom.deployment.schema import ColumnSpec, InputSchema
from lakeloom.deployment.server import RunningServer, serve, serve_workers, start_server

__all__ = [
    "ColumnSpec",
    "DeploymentContext",
    "EndpointConfig",
    "EndpointRuntime",
    "InputSchema",
    "LoadRequest",
    "ModelHandle",
    "PyfuncHandle",
    "RunningServer",
    "create_app",
    "example_config",
    "get_runtime",
    "hash_api_key",
    "load_endpoint_config",
    "parse_endpoint_config",
    "register_model_loader",
    "serve",
    "serve_workers",
    "single_model_config",
    "start_server",
]
