"""The endpoint at run time: its models, router, batchers, inference log and reload poller.

:meth:`EndpointRuntime.invoke` is the whole scoring path, shared by the FastAPI route and
the lean ASGI path in :mod:`lakeloom.deployment.app`: decode the body, pick a route, check
the rows against the served model's schema, await the route's micro-batcher (with the
per-request timeout), answer in MLflow's format, count, log, and maybe score the shadow.

Hot reload (moved aliases, a changed endpoint file) is :mod:`lakeloom.deployment.reload`'s
:class:`~lakeloom.deployment.reload.Reloader`, started and stopped with the runtime.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import random
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING, Any

from lakeloom.deployment.auth import ApiKeys
from lakeloom.deployment.batching import MicroBatcher, ModelFailed
from lakeloom.deployment.config import EndpointConfig, ModelRef
from lakeloom.deployment.deadlines import Deadlines
from lakeloom.deployment.inference_log import InferenceLogger, LogEntry
from lakeloom.deployment.metrics import Metrics, gauge_lines
from lakeloom.deployment.models import (
    ModelHandle,
    ModelSlot,
    load_version,
    resolve_version,
)
from lakeloom.deployment.protocol import (
    ScoringInput,
    decode,
    error_body,
    predictions_body,
)
from lakeloom.deployment.reload import Reloader
from lakeloom.deployment.routing import Route, Router
from lakeloom.deployment.schema import RequestError

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from lakeloom.lakehouse.storage import Storage
    from lakeloom.lakehouse.tables import Tables
    from lakeloom.settings import Settings
    from lakeloom.tracking.store import TrackingConfig

__all__ = ["DeploymentContext", "EndpointRuntime", "Reply"]

log = logging.getLogger("lakeloom.deployment")

#: Bodies larger than this are decoded on a worker thread, not on the event loop.
_LARGE_BODY = 256 * 1024
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_JSON = (b"content-type", b"application/json")
#: Shadow requests waiting at most; beyond, the shadow skips (the endpoint never waits).
_SHADOW_BACKLOG = 2048


@dataclass(frozen=True)
class DeploymentContext:
    """What the deployment layer needs from a workspace (never the workspace itself)."""

    tables: Tables
    tracking: TrackingConfig
    settings: Settings | None = None
    #: The workspace's storage (where the SQLite online store lives); default: the tables'.
    storage: Storage | None = None

    def open_online_store(self) -> Any:
        """The workspace's online store (``[online_store]``), for feature-aware models."""
        from lakeloom.features.online import open_online_store
        from lakeloom.settings import OnlineStoreSettings

        settings = self.settings.online_store if self.settings else OnlineStoreSettings()
        # Without an explicit storage, the workspace root the tables live under.
        storage = self.storage or self.tables._storage
        return open_online_store(settings, storage)


@dataclass(slots=True)
class Reply:
    """An HTTP answer: status, headers (ASGI byte pairs) and body."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


def _header(value: object) -> bytes:
    return str(value).encode("latin-1", "replace")


class EndpointRuntime:
    """Everything one endpoint process serves with; see the module docstring."""

    def __init__(
        self,
        config: EndpointConfig,
        ctx: DeploymentContext,
        *,
        config_path: str | Path | None = None,
    ) -> None:
        self.config = config
        self.ctx = ctx
        self.config_path = Path(config_path) if config_path is not None else None
        self.metrics = Metrics(config.name)
        self.keys = ApiKeys(config.auth.api_key_hashes)
        self.slots: dict[str, ModelSlot] = {}
        self.batchers: dict[str, MicroBatcher] = {}
        self.router: Router | None = None
        self.logger: InferenceLogger | None = None
        self.config_error: str | None = None
        self.reload_failures: dict[str, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deadlines: Deadlines | None = None
        #: Response headers naming the route and model, by (route, model name, version).
        self._route_headers: dict[tuple[str, str, int | None], list[tuple[bytes, bytes]]] = {}
        self._client: MlflowClient | None = None
        self._reloader = Reloader(self)
        self._shadow_pending = 0
        self._random: Callable[[], float] = random.random
        self._id_prefix = uuid.uuid4().hex[:16]
        self._ids = itertools.count(1)
        self._online: Any = None
        self._online_lock = threading.Lock()

    # -- start and stop -----------------------------------------------------------------
    def client(self) -> MlflowClient:
        """The registry client (created once)."""
        if self._client is None:
            from lakeloom.tracking.store import client

            self._client = client(self.ctx.tracking)
        return self._client

    def online_store(self) -> Any:
        """The online store feature-aware models read (opened on first use, shared)."""
        with self._online_lock:
            if self._online is None:
                self._online = self.ctx.open_online_store()
            return self._online

    def load_ref(self, ref: ModelRef) -> ModelSlot:
        """Resolve, download, load and warm the model ``ref`` points at."""
        version = resolve_version(self.client(), ref)
        handle = load_version(
            self.ctx.tracking,
            ref,
            version,
            trusted_types=self.config.trusted_types,
            allow_pickle=self.config.allow_pickle,
            online_store=self.online_store,
        )
        log.info("loaded %s (version %s)", ref.uri, version)
        return ModelSlot(ref, handle)

    def load(self) -> None:
        """Load and warm every model (blocking); raises ``DeploymentError`` when one fails."""
        for ref in self.config.model_refs():
            if ref.uri not in self.slots:
                self.slots[ref.uri] = self.load_ref(ref)
        self.router = self.build_router(self.config, self.slots)

    def build_router(self, config: EndpointConfig, slots: dict[str, ModelSlot]) -> Router:
        """The router of ``config``'s routes and shadow over loaded ``slots``."""
        routes = [Route(r.name, r.weight, slots[r.model.uri]) for r in config.routes]
        shadow = slots[config.shadow.model.uri] if config.shadow is not None else None
        sample = config.shadow.sample if config.shadow is not None else 0.0
        return Router(routes, shadow, sample)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the batchers, the inference log writer and the poller (after :meth:`load`)."""
        self._loop = loop
        self._deadlines = Deadlines(loop)
        self._deadlines.start()
        # Everything loaded so far (MLflow, pandas, the models) lives as long as the process:
        # moved out of the collector's sight, a full collection no longer walks millions of
        # objects, which stalled the event loop for ~0.5 s at a time.
        gc.collect()
        gc.freeze()
        for uri in self.slots:
            self.batcher(uri)
        table = self.config.inference_table
        if table.enabled:
            self.logger = InferenceLogger(
                self.ctx.tables, self.config.table, self.config.name, table
            )
            self.logger.start()
        self.metrics.collectors.append(self._collect)
        self._reloader.start()

    def batcher(self, uri: str) -> MicroBatcher:
        """The micro-batcher of model ``uri`` (created on first use)."""
        batcher = self.batchers.get(uri)
        if batcher is None:
            assert self._loop is not None
            batching = self.config.batching
            batcher = MicroBatcher(
                uri,
                self._loop,
                max_batch_size=batching.max_batch_size,
                max_wait_s=batching.max_wait_s,
            )
            self.batchers[uri] = batcher
        return batcher

    def check_config(self) -> None:
        """Apply the config file's changes now (the poller does it every poll interval)."""
        self._reloader.check_config()

    def check_aliases(self) -> None:
        """Follow moved aliases now (the poller does it every poll interval)."""
        self._reloader.check_aliases()

    def stop(self) -> None:
        """Stop polling, finish queued predictions and write the inference log (blocking)."""
        self._reloader.stop()
        if self._deadlines is not None:
            self._deadlines.stop()
        for batcher in list(self.batchers.values()):
            batcher.close()
        if self.logger is not None:
            self.logger.stop()
        with self._online_lock:
            if self._online is not None:
                self._online.close()
                self._online = None

    def flush_log(self) -> int:
        """Write the inference table's pending rows now; returns the rows written."""
        return self.logger.flush() if self.logger is not None else 0

    # -- scoring ------------------------------------------------------------------------
    def authorized(self, authorization: str | None, api_key: str | None) -> bool:
        """Whether a request may score (always, when no keys are configured)."""
        return self.keys.allows(authorization, api_key)

    @property
    def routing_header(self) -> str:
        """The routing key's header name, lower case (as ASGI servers give header names)."""
        return self.config.routing.key_header.lower()

    def refuse(
        self, status: int, message: str, error_code: str, request_id: str | None = None
    ) -> Reply:
        """An error answered before scoring (401, 413); counted and logged like the others."""
        rid = self.request_id(request_id)
        body = error_body(RequestError(status, message, error_code))
        self.metrics.observe("none", status, 0.0)
        if self.logger is not None:
            self.logger.log(LogEntry(rid, time.time(), "none", None, None, status, 0.0, error=body))
        headers = [_JSON, (b"x-request-id", _header(rid))]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        return Reply(status, headers, body)

    def request_id(self, given: str | None) -> str:
        """The client's ``X-Request-ID`` when it is safe to echo, else a new one."""
        if given and _REQUEST_ID.match(given):
            return given
        # A random per-process prefix and a counter: unique across workers and restarts, and
        # no system call per request (os.urandom costs ~30 us in some sandboxes).
        return f"{self._id_prefix}{next(self._ids):08x}"

    async def invoke(
        self,
        body: bytes,
        content_type: str | None,
        routing_key: str | None = None,
        request_id: str | None = None,
    ) -> Reply:
        """Score one request; never raises (every failure is an HTTP answer)."""
        start = perf_counter()
        arrived = time.time()
        rid = self.request_id(request_id)
        metrics = self.metrics
        metrics.in_flight += 1
        route_name = "none"
        handle: ModelHandle | None = None
        data: ScoringInput | None = None
        predictions: list[Any] | None = None
        router = self.router
        try:
            if router is None:
                raise RequestError(503, "the endpoint is starting", "SERVICE_UNAVAILABLE")
            key_field = self.config.routing.key_field
            if len(body) > _LARGE_BODY:
                payload = await asyncio.to_thread(decode, body, content_type, key_field)
            else:
                payload = decode(body, content_type, key_field)
            route = router.pick(routing_key if routing_key is not None else payload.routing_key)
            route_name = route.name
            handle = route.slot.handle
            max_rows = self.config.limits.max_rows
            if len(body) > _LARGE_BODY:
                data = await asyncio.to_thread(payload.to_input, handle.input_schema, max_rows)
            else:
                data = payload.to_input(handle.input_schema, max_rows)
            if data.rows:
                future = self.batchers[route.slot.ref.uri].submit(handle, data)
                assert self._deadlines is not None
                self._deadlines.add(future, self.config.limits.timeout_s)
                handle, predictions = await future
            else:
                predictions = []
            status = 200
            out = predictions_body(predictions)
            if router.shadow is not None and data.rows and router.wants_shadow():
                self._shadow(router.shadow, data, rid, arrived, body)
        except RequestError as exc:
            status, out = exc.status, error_body(exc)
        except ModelFailed as exc:
            status = 400
            out = error_body(
                RequestError(400, f"the model could not score this input ({exc.kind})")
            )
        except TimeoutError:
            status = 504
            out = error_body(
                RequestError(
                    504,
                    f"the prediction took longer than {self.config.limits.timeout_s:g}s",
                    "DEADLINE_EXCEEDED",
                )
            )
        except Exception:
            log.exception("unexpected error while scoring request %s", rid)
            status = 500
            out = error_body(RequestError(500, "internal error", "INTERNAL_ERROR"))
        finally:
            metrics.in_flight -= 1
        elapsed = perf_counter() - start
        metrics.observe(route_name, status, elapsed)
        logger = self.logger
        if logger is not None and (
            status != 200
            or self.config.inference_table.sample >= 1.0
            or self._random() < self.config.inference_table.sample
        ):
            ok = status == 200 and data is not None
            logger.log(
                LogEntry(
                    rid,
                    arrived,
                    route_name,
                    handle.name if handle is not None else None,
                    handle.version if handle is not None else None,
                    status,
                    elapsed * 1000.0,
                    data.columns if ok and data is not None else (),
                    data.types if ok and data is not None else (),
                    data.rows if ok and data is not None else None,
                    predictions if ok else None,
                    None if ok else out,
                    body,
                    data.matrix if ok and data is not None else None,
                )
            )
        headers = [_JSON, (b"x-request-id", _header(rid))]
        if handle is not None:
            headers += self._served_by(route_name, handle)
        return Reply(status, headers, out)

    def _served_by(self, route: str, handle: ModelHandle) -> list[tuple[bytes, bytes]]:
        """The headers naming the route and the model version that answered (cached)."""
        key = (route, handle.name, handle.version)
        found = self._route_headers.get(key)
        if found is None:
            found = [
                (b"x-lakeloom-route", _header(route)),
                (b"x-lakeloom-model", _header(handle.name)),
                (b"x-lakeloom-model-version", _header(handle.version)),
            ]
            if len(self._route_headers) < 1024:
                self._route_headers[key] = found
        return found

    def _shadow(
        self, slot: ModelSlot, data: ScoringInput, rid: str, arrived: float, body: bytes
    ) -> None:
        if self._shadow_pending >= _SHADOW_BACKLOG:
            self.metrics.observe_shadow("skipped")
            return
        handle = slot.handle
        schema = handle.input_schema
        start = perf_counter()
        try:
            if schema is not None and (schema.names, schema.types) != (data.columns, data.types):
                records = [dict(zip(data.columns, row, strict=True)) for row in data.rows]
                data = ScoringInput(schema.names, schema.types, schema.convert_records(records))
        except RequestError as exc:
            self.metrics.observe_shadow("error")
            self._log_shadow(rid, arrived, handle, 400, start, None, None, error_body(exc), body)
            return
        self._shadow_pending += 1
        future = self.batchers[slot.ref.uri].submit(handle, data)
        shadow_input = data

        def done(f: asyncio.Future[tuple[ModelHandle, list[Any]]]) -> None:
            self._shadow_pending -= 1
            failure = f.exception()
            if failure is not None:
                self.metrics.observe_shadow("error")
                kind = getattr(failure, "kind", type(failure).__name__)
                error = error_body(
                    RequestError(400, f"the model could not score this input ({kind})")
                )
                self._log_shadow(rid, arrived, handle, 400, start, None, None, error, body)
                return
            used, predictions = f.result()
            self.metrics.observe_shadow("ok")
            self._log_shadow(rid, arrived, used, 200, start, shadow_input, predictions, None, body)

        future.add_done_callback(done)

    def _log_shadow(
        self,
        rid: str,
        arrived: float,
        handle: ModelHandle,
        status: int,
        start: float,
        data: ScoringInput | None,
        predictions: list[Any] | None,
        error: bytes | None,
        body: bytes,
    ) -> None:
        if self.logger is None:
            return
        self.logger.log(
            LogEntry(
                rid,
                arrived,
                "shadow",
                handle.name,
                handle.version,
                status,
                (perf_counter() - start) * 1000.0,
                data.columns if data is not None else (),
                data.types if data is not None else (),
                data.rows if data is not None else None,
                predictions,
                error,
                body,
                data.matrix if data is not None else None,
            )
        )

    # -- status -------------------------------------------------------------------------
    def ready(self) -> tuple[bool, dict[str, Any]]:
        """Whether every route has a model loaded, and what ``/ready`` shows."""
        router = self.router
        if router is None:
            return False, {"status": "loading", "endpoint": self.config.name}
        shares = router.shares()
        routes = [
            {"route": r.name, "weight": r.weight, "share": shares[r.name], **r.slot.status()}
            for r in router.routes
        ]
        problems = [r for r in routes if "reload_error" in r]
        shadow = None
        if router.shadow is not None:
            shadow = {"sample": router.shadow_sample, **router.shadow.status()}
            if "reload_error" in shadow:
                problems.append(shadow)
        degraded = bool(problems) or self.config_error is not None
        body: dict[str, Any] = {
            "status": "degraded" if degraded else "ready",
            "endpoint": self.config.name,
            "routes": routes,
            "shadow": shadow,
            "config_error": self.config_error,
        }
        if self.logger is not None:
            body["inference_table"] = self.logger.status()
        return True, body

    def _collect(self) -> list[str]:
        ep = self.config.name
        router = self.router
        lines: list[str] = []
        if router is not None:
            served = [
                (
                    {"endpoint": ep, "route": r.name, "model": r.slot.handle.name},
                    r.slot.handle.version or 0,
                )
                for r in router.routes
            ]
            if router.shadow is not None:
                h = router.shadow.handle
                served.append(
                    ({"endpoint": ep, "route": "shadow", "model": h.name}, h.version or 0)
                )
            lines += gauge_lines(
                "lakeloom_model_version", "Model version each route serves.", "gauge", served
            )
            lines += gauge_lines(
                "lakeloom_route_weight",
                "Configured traffic weight of each route.",
                "gauge",
                [({"endpoint": ep, "route": r.name}, r.weight) for r in router.routes],
            )
        batches = [
            ({"endpoint": ep, "model": uri}, b.stats.batches) for uri, b in self.batchers.items()
        ]
        rows = [({"endpoint": ep, "model": uri}, b.stats.rows) for uri, b in self.batchers.items()]
        lines += gauge_lines("lakeloom_batches_total", "Predict calls.", "counter", batches)
        lines += gauge_lines("lakeloom_batch_rows_total", "Rows scored.", "counter", rows)
        misses = [
            ({"endpoint": ep, "model": uri}, getattr(slot.handle, "misses", 0))
            for uri, slot in self.slots.items()
            if hasattr(slot.handle, "misses")
        ]
        if misses:
            lines += gauge_lines(
                "lakeloom_feature_lookup_misses_total",
                "Rows whose key a feature lookup did not find in the online store.",
                "counter",
                misses,
            )
        lines += gauge_lines(
            "lakeloom_model_reload_failures_total",
            "Model versions that failed to load (the previous one kept serving).",
            "counter",
            [({"endpoint": ep, "model": uri}, n) for uri, n in self.reload_failures.items()],
        )
        if self.logger is not None:
            st = self.logger.status()
            for key in ("rows_written", "rows_dropped", "write_errors"):
                lines += gauge_lines(
                    f"lakeloom_inference_log_{key}_total",
                    f"Inference table {key.replace('_', ' ')}.",
                    "counter",
                    [({"endpoint": ep}, st[key])],
                )
        return lines
