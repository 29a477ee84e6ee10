"""The endpoint's ASGI application: FastAPI for everything, a lean path for scoring.

:func:`create_app` builds a FastAPI app whose lifespan loads and warms the models
(:class:`~lakeloom.deployment.runtime.EndpointRuntime`), with ``/health``, ``/ready``,
``/metrics``, ``/ping`` (MLflow's), the OpenAPI docs at ``/docs``, and ``/invocations`` with
its documented alias ``/predict``. The runtime is injected with ``Depends(get_runtime)``, so
tests can override it (``app.dependency_overrides``).

Scoring requests take a lean path by default: a small ASGI wrapper hands ``POST
/invocations`` and ``POST /predict`` straight to the same :func:`score_request` the FastAPI
route calls, skipping Starlette's routing, middleware stack and request objects (most of
the per-request cost at thousands of requests per second). Everything else, and scoring
when the wrapper is off (``lean=False``), goes through FastAPI. Both paths give the same
answers: the tests run the protocol cases against both.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from lakeloom.deployment.config import EndpointConfig
from lakeloom.deployment.protocol import FORMAT_KEYS
from lakeloom.deployment.runtime import DeploymentContext, EndpointRuntime, Reply

__all__ = ["INVOKE_PATHS", "LeanApp", "create_app", "get_runtime", "score_request"]

INVOKE_PATHS = frozenset({"/invocations", "/predict"})

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def get_runtime(request: Request) -> EndpointRuntime:
    """The endpoint's runtime (set by the lifespan); a dependency tests can override."""
    runtime: EndpointRuntime | None = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise RuntimeError("the endpoint has not started")
    return runtime


RuntimeDep = Annotated[EndpointRuntime, Depends(get_runtime)]


async def score_request(
    runtime: EndpointRuntime, headers: Mapping[str, str], receive: Receive
) -> Reply | None:
    """Authenticate, read the body within the size limit, and score; None if the client left."""
    request_id = headers.get("x-request-id")
    if not runtime.authorized(headers.get("authorization"), headers.get("x-api-key")):
        return runtime.refuse(
            401,
            "a valid API key is required (Authorization: Bearer KEY, or X-API-Key: KEY)",
            "UNAUTHENTICATED",
            request_id,
        )
    limit = runtime.config.limits.max_body_bytes
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return runtime.refuse(413, _too_large(limit), "REQUEST_TOO_LARGE", request_id)
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return runtime.refuse(413, _too_large(limit), "REQUEST_TOO_LARGE", request_id)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    return await runtime.invoke(
        body,
        headers.get("content-type"),
        headers.get(runtime.routing_header),
        request_id,
    )


def _too_large(limit: int) -> str:
    return f"the request body is larger than this endpoint's limit of {limit} bytes"


class LeanApp:
    """ASGI wrapper: scoring requests go straight to :func:`score_request`."""

    def __init__(self, api: FastAPI) -> None:
        self.api = api
        self.state = api.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope."""
        if (
            scope["type"] != "http"
            or scope["path"] not in INVOKE_PATHS
            or scope["method"] != "POST"
            or getattr(self.api.state, "runtime", None) is None
        ):
            await self.api(scope, receive, send)
            return
        runtime: EndpointRuntime = self.api.state.runtime
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        reply = await score_request(runtime, headers, receive)
        if reply is None:
            return
        out = [*reply.headers, (b"content-length", str(len(reply.body)).encode())]
        await send({"type": "http.response.start", "status": reply.status, "headers": out})
        await send({"type": "http.response.body", "body": reply.body})


_REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "description": "Exactly one of "
                + ", ".join(FORMAT_KEYS)
                + " (MLflow's scoring protocol). An optional top-level routing key field "
                "pins the request to a route.",
                "properties": {
                    "dataframe_split": {
                        "type": "object",
                        "properties": {
                            "columns": {"type": "array", "items": {"type": "string"}},
                            "data": {"type": "array", "items": {"type": "array"}},
                            "index": {"type": "array"},
                        },
                        "required": ["data"],
                    },
                    "dataframe_records": {"type": "array", "items": {"type": "object"}},
                    "instances": {"type": "array"},
                    "inputs": {"oneOf": [{"type": "array"}, {"type": "object"}]},
                    "params": {"type": "object"},
                },
            },
            "examples": {
                "dataframe_split": {
                    "value": {"dataframe_split": {"columns": ["x1", "x2"], "data": [[1.0, 2.0]]}}
                },
                "dataframe_records": {"value": {"dataframe_records": [{"x1": 1.0, "x2": 2.0}]}},
            },
        },
        "text/csv": {"schema": {"type": "string", "description": "CSV with a header row."}},
    },
}

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "One prediction per row. Headers: X-Request-ID, X-Lakeloom-Route, "
        "X-Lakeloom-Model, X-Lakeloom-Model-Version.",
        "content": {"application/json": {"example": {"predictions": [0.27]}}},
    },
    400: {"description": "Malformed JSON, or a value that does not fit the model's schema."},
    401: {"description": "Missing or wrong API key."},
    413: {"description": "Body or row count over the endpoint's limits."},
    415: {"description": "Content-Type other than application/json or text/csv."},
    504: {"description": "The prediction took longer than the per-request timeout."},
}


def create_app(
    config: EndpointConfig,
    ctx: DeploymentContext,
    *,
    config_path: str | Path | None = None,
    lean: bool = True,
) -> LeanApp | FastAPI:
    """The endpoint's ASGI app (models load in its lifespan).

    ``config_path``: the file ``config`` came from; its changes apply while running.
    ``lean``: serve scoring requests on the lean ASGI path (default) or through FastAPI.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = EndpointRuntime(config, ctx, config_path=config_path)
        try:
            await asyncio.to_thread(runtime.load)
        except Exception as exc:
            app.state.startup_error = exc
            raise
        runtime.start(asyncio.get_running_loop())
        app.state.runtime = runtime
        try:
            yield
        finally:
            app.state.runtime = None
            await asyncio.to_thread(runtime.stop)

    api = FastAPI(
        title=f"lakeloom endpoint {config.name}",
        version=_version(),
        description="Real-time scoring with MLflow's protocol: POST /invocations (or /predict).",
        lifespan=lifespan,
    )
    api.state.startup_error = None

    @api.get("/health", summary="Liveness: the process answers.")
    async def health() -> dict[str, str]:
        return {"status": "alive"}

    @api.get("/ping", summary="MLflow's liveness check.", include_in_schema=False)
    async def ping() -> Response:
        return Response("\n", media_type="application/json")

    @api.get("/ready", summary="Readiness: every route has a model loaded.")
    async def ready(request: Request) -> JSONResponse:
        runtime: EndpointRuntime | None = getattr(request.app.state, "runtime", None)
        if runtime is None:
            return JSONResponse({"status": "loading", "endpoint": config.name}, status_code=503)
        ok, body = runtime.ready()
        return JSONResponse(body, status_code=200 if ok else 503)

    @api.get("/metrics", summary="Prometheus metrics.", response_class=PlainTextResponse)
    async def metrics(request: Request, runtime: RuntimeDep) -> Response:
        headers = request.headers
        if not runtime.authorized(headers.get("authorization"), headers.get("x-api-key")):
            return _reply(runtime.refuse(401, "a valid API key is required", "UNAUTHENTICATED"))
        return PlainTextResponse(
            runtime.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    async def invocations(request: Request, runtime: RuntimeDep) -> Response:
        reply = await score_request(runtime, request.headers, request.receive)
        if reply is None:
            return Response(status_code=499)
        return _reply(reply)

    for path, summary in (
        ("/invocations", "Score rows (MLflow's scoring protocol)."),
        ("/predict", "Score rows: an alias of /invocations."),
    ):
        api.add_api_route(
            path,
            invocations,
            methods=["POST"],
            summary=summary,
            response_class=Response,
            responses=_RESPONSES,
            openapi_extra={"requestBody": _REQUEST_BODY},
        )
    return LeanApp(api) if lean else api


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lakeloom")
    except PackageNotFoundError:
        return "0"


def _reply(reply: Reply) -> Response:
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in reply.headers}
    media = headers.pop("content-type", "application/json")
    return Response(reply.body, status_code=reply.status, headers=headers, media_type=media)
