"""Endpoint configuration: ``endpoint.toml``, validated when loaded.

A minimal file names the endpoint and one route::

    name = "churn"

    [[routes]]
    name = "champion"
    model = "models:/churn_model@production"
    weight = 90

    [[routes]]
    name = "challenger"
    model = "models:/churn_model@challenger"
    weight = 10

    [shadow]                       # optional: scored asynchronously, logged, never returned
    model = "models:/churn_model@candidate"
    sample = 1.0

Every other section is optional (defaults shown by :func:`example_config`). Errors name the
key, the file and what is allowed. Weights may change while the endpoint runs: the file is
re-read within ``reload.poll_interval``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakeloom.durations import parse_duration
from lakeloom.errors import EndpointConfigError, InvalidArgument

__all__ = [
    "AuthConfig",
    "BatchingConfig",
    "EndpointConfig",
    "InferenceTableConfig",
    "LimitsConfig",
    "ModelRef",
    "RouteConfig",
    "RoutingConfig",
    "ShadowConfig",
    "example_config",
    "load_endpoint_config",
    "parse_endpoint_config",
    "parse_model_ref",
    "single_model_config",
]

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_HEADER = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class ModelRef:
    """A parsed model URI: ``models:/name@alias``, ``models:/name/3`` or ``models:/name/latest``.

    Only registry URIs are served: an alias (or ``latest``) is followed by the reload poller.
    """

    uri: str
    name: str
    version: int | None = None
    alias: str | None = None

    @property
    def moves(self) -> bool:
        """Whether the version this URI points at can change (an alias or ``latest``)."""
        return self.version is None


def parse_model_ref(uri: str) -> ModelRef:
    """Parse a registry model URI; raises ``InvalidArgument`` naming the accepted forms.

    >>> parse_model_ref("models:/churn_model@production").alias
    'production'
    """
    text = uri.strip() if isinstance(uri, str) else ""
    hint = "use models:/NAME@ALIAS, models:/NAME/VERSION or models:/NAME/latest"
    if not text.startswith("models:/"):
        raise InvalidArgument(f"model URI {uri!r} is not a registry URI; {hint}")
    rest = text[len("models:/") :]
    if "@" in rest:
        name, _, alias = rest.partition("@")
        if not name or not alias or "/" in alias or "/" in name:
            raise InvalidArgument(f"cannot read model URI {uri!r}; {hint}")
        return ModelRef(text, name, alias=alias)
    name, _, tail = rest.partition("/")
    if not name or "/" in tail:
        raise InvalidArgument(f"cannot read model URI {uri!r}; {hint}")
    if tail in ("", "latest"):
        return ModelRef(text, name)
    if not tail.isdigit():
        raise InvalidArgument(
            f"model URI {uri!r}: {tail!r} is not a version number (registry stages are "
            f"deprecated: use an alias, models:/{name}@ALIAS)"
        )
    return ModelRef(text, name, version=int(tail))


@dataclass(frozen=True)
class RouteConfig:
    """One route: a model and its share of the traffic."""

    name: str
    model: ModelRef
    weight: float


@dataclass(frozen=True)
class ShadowConfig:
    """A model scored on a sample of the traffic, logged and never returned."""

    model: ModelRef
    sample: float = 1.0


@dataclass(frozen=True)
class RoutingConfig:
    """Where a request's routing key comes from: a header, else a top-level JSON field."""

    key_header: str = "X-Routing-Key"
    key_field: str = "routing_key"


@dataclass(frozen=True)
class BatchingConfig:
    """Micro-batching of concurrent requests into one predict call per route."""

    #: Rows per predict call at most. Each call pays fixed costs (the hand-off to the worker
    #: thread and back, the model's own set-up), so batches of whole requests amortise them;
    #: ~1,000 rows of a tree model take 1-2 ms.
    max_batch_size: int = 1024
    #: How long a first row waits for others when the model is idle (0: never wait).
    max_wait_s: float = 0.0


@dataclass(frozen=True)
class LimitsConfig:
    """Request limits: body size, rows and the per-request timeout."""

    max_body_bytes: int = 10 * 1024 * 1024
    max_rows: int = 100_000
    timeout_s: float = 30.0


@dataclass(frozen=True)
class AuthConfig:
    """API keys, stored as ``sha256:<hex>`` hashes; empty means no authentication."""

    api_key_hashes: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        """Whether requests must carry a key."""
        return bool(self.api_key_hashes)


@dataclass(frozen=True)
class InferenceTableConfig:
    """The inference table ``lakeloom.inference_<endpoint>``."""

    enabled: bool = True
    #: Fraction of successful requests logged (errors are always logged).
    sample: float = 1.0
    flush_interval_s: float = 1.0
    #: Compact the table's small files this often (0: never).
    optimize_interval_s: float = 600.0
    #: Rows held in memory at most; beyond, rows are dropped (and counted in /metrics).
    max_pending_rows: int = 200_000


@dataclass(frozen=True)
class EndpointConfig:
    """A validated endpoint configuration. Build with :func:`load_endpoint_config`."""

    name: str
    routes: tuple[RouteConfig, ...]
    shadow: ShadowConfig | None = None
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    inference_table: InferenceTableConfig = field(default_factory=InferenceTableConfig)
    metrics: bool = True
    #: How often aliases (and the config file) are checked for changes.
    poll_interval_s: float = 10.0
    #: Types trusted when loading skops-saved scikit-learn models (beyond lakeloom's own).
    trusted_types: tuple[str, ...] = ()
    allow_pickle: bool = False
    #: Where the configuration was read from ("" when built in code).
    source: str = ""

    @property
    def table(self) -> str:
        """The inference table's name."""
        return f"lakeloom.inference_{self.name}"

    def model_refs(self) -> list[ModelRef]:
        """Every model the endpoint serves (routes, then the shadow), without repeats."""
        refs = [r.model for r in self.routes]
        if self.shadow is not None:
            refs.append(self.shadow.model)
        seen: dict[str, ModelRef] = {}
        for ref in refs:
            seen.setdefault(ref.uri, ref)
        return list(seen.values())


_SECTIONS: dict[str, tuple[str, ...]] = {
    "": (
        "name",
        "routes",
        "shadow",
        "routing",
        "batching",
        "limits",
        "auth",
        "inference_table",
        "metrics",
        "reload",
        "models",
    ),
    "routes": ("name", "model", "weight"),
    "shadow": ("model", "sample"),
    "routing": ("key_header", "key_field"),
    "batching": ("max_batch_size", "max_wait_ms"),
    "limits": ("max_body_bytes", "max_rows", "timeout"),
    "auth": ("api_key_hashes",),
    "inference_table": (
        "enabled",
        "sample",
        "flush_interval",
        "optimize_interval",
        "max_pending_rows",
    ),
    "metrics": ("enabled",),
    "reload": ("poll_interval",),
    "models": ("trusted_types", "allow_pickle"),
}


class _Reader:
    """Typed access to a TOML mapping with errors that name the key and the source."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, message: str) -> EndpointConfigError:
        return EndpointConfigError(f"{key} in {self.source} {message}")

    def table(self, data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, Mapping):
            raise self.fail(key, "must be a table ([" + key + "])")
        self.known(value, key)
        return value

    def known(self, table: Mapping[str, Any], section: str) -> None:
        allowed = _SECTIONS[section]
        for key in table:
            if key not in allowed:
                where = f"[{section}] " if section else ""
                raise EndpointConfigError(
                    f"unknown key {where}{key!r} in {self.source}; known: {', '.join(allowed)}"
                )

    def string(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"must be a non-empty string, got {_kind(value)}")
        return value.strip()

    def number(self, value: Any, key: str, low: float, high: float) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, f"must be a number, got {_kind(value)}")
        if not low <= value <= high:
            raise self.fail(key, f"is {value}; allowed: {low:g} to {high:g}")
        return float(value)

    def integer(self, value: Any, key: str, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"must be a whole number, got {_kind(value)}")
        if not low <= value <= high:
            raise self.fail(key, f"is {value}; allowed: {low} to {high}")
        return value

    def boolean(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, got {_kind(value)}")
        return value

    def duration(self, value: Any, key: str, low: float = 0.0) -> float:
        try:
            seconds = parse_duration(value).total_seconds()
        except InvalidArgument:
            raise self.fail(
                key, f"must be a duration like 30s, 5m or 0.5s, got {value!r}"
            ) from None
        if seconds < low:
            raise self.fail(key, f"is {value!r}; it must be at least {low:g}s")
        return seconds

    def model(self, value: Any, key: str) -> ModelRef:
        text = self.string(value, key)
        try:
            return parse_model_ref(text)
        except InvalidArgument as exc:
            raise self.fail(key, f"is not usable: {exc}") from None

    def strings(self, value: Any, key: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, "must be a list of strings")
        return tuple(value)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string" if value.strip() else "an empty string"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a table"
    return type(value).__name__


def parse_endpoint_config(data: Mapping[str, Any], source: str = "arguments") -> EndpointConfig:
    """Validate a configuration mapping (as read from TOML)."""
    r = _Reader(source)
    r.known(data, "")
    if "name" not in data:
        raise EndpointConfigError(
            f"{source} has no 'name': an endpoint needs a name (lower case letters, digits, _); "
            "it names the inference table lakeloom.inference_<name>"
        )
    name = r.string(data["name"], "name")
    if not _NAME.match(name):
        raise r.fail(
            "name",
            f"is {name!r}; use lower case letters, digits and '_', starting with a letter "
            "(at most 63 characters)",
        )
    routes = _routes(r, data.get("routes"))
    shadow = None
    if "shadow" in data:
        tbl = r.table(data, "shadow")
        if "model" not in tbl:
            raise r.fail("shadow", "needs a 'model' (a models:/ URI)")
        shadow = ShadowConfig(
            model=r.model(tbl["model"], "shadow.model"),
            sample=r.number(tbl.get("sample", 1.0), "shadow.sample", 0.0, 1.0),
        )
    rt = r.table(data, "routing")
    routing = RoutingConfig(
        key_header=r.string(rt.get("key_header", RoutingConfig.key_header), "routing.key_header"),
        key_field=r.string(rt.get("key_field", RoutingConfig.key_field), "routing.key_field"),
    )
    if not _HEADER.match(routing.key_header):
        raise r.fail("routing.key_header", "must be a header name (letters, digits, '-')")
    bt = r.table(data, "batching")
    batching = BatchingConfig(
        max_batch_size=r.integer(
            bt.get("max_batch_size", BatchingConfig.max_batch_size),
            "batching.max_batch_size",
            1,
            100_000,
        ),
        max_wait_s=r.number(bt.get("max_wait_ms", 0.0), "batching.max_wait_ms", 0.0, 1000.0) / 1000,
    )
    lt = r.table(data, "limits")
    limits = LimitsConfig(
        max_body_bytes=r.integer(
            lt.get("max_body_bytes", LimitsConfig.max_body_bytes),
            "limits.max_body_bytes",
            1024,
            1024**3,
        ),
        max_rows=r.integer(lt.get("max_rows", LimitsConfig.max_rows), "limits.max_rows", 1, 10**8),
        timeout_s=r.duration(lt.get("timeout", "30s"), "limits.timeout", 0.001),
    )
    at = r.table(data, "auth")
    hashes = r.strings(at.get("api_key_hashes", []), "auth.api_key_hashes")
    for h in hashes:
        if not _HASH.match(h):
            raise r.fail(
                "auth.api_key_hashes",
                "must hold hashes like sha256:<64 hex digits> (make one with "
                "`lakeloom serve --hash-key`), never the keys themselves",
            )
    it = r.table(data, "inference_table")
    table = InferenceTableConfig(
        enabled=r.boolean(it.get("enabled", True), "inference_table.enabled"),
        sample=r.number(it.get("sample", 1.0), "inference_table.sample", 0.0, 1.0),
        flush_interval_s=r.duration(
            it.get("flush_interval", "1s"), "inference_table.flush_interval", 0.01
        ),
        optimize_interval_s=r.duration(
            it.get("optimize_interval", "10m"), "inference_table.optimize_interval"
        ),
        max_pending_rows=r.integer(
            it.get("max_pending_rows", 200_000), "inference_table.max_pending_rows", 1, 10**8
        ),
    )
    mt = r.table(data, "metrics")
    rl = r.table(data, "reload")
    md = r.table(data, "models")
    return EndpointConfig(
        name=name,
        routes=routes,
        shadow=shadow,
        routing=routing,
        batching=batching,
        limits=limits,
        auth=AuthConfig(hashes),
        inference_table=table,
        metrics=r.boolean(mt.get("enabled", True), "metrics.enabled"),
        poll_interval_s=r.duration(rl.get("poll_interval", "10s"), "reload.poll_interval", 0.05),
        trusted_types=r.strings(md.get("trusted_types", []), "models.trusted_types"),
        allow_pickle=r.boolean(md.get("allow_pickle", False), "models.allow_pickle"),
        source=source,
    )


def _routes(r: _Reader, value: Any) -> tuple[RouteConfig, ...]:
    if value is None:
        raise EndpointConfigError(
            f"{r.source} declares no routes: add [[routes]] with name, model and weight"
        )
    if not isinstance(value, list) or not value or not all(isinstance(v, Mapping) for v in value):
        raise r.fail("routes", "must be one or more [[routes]] tables")
    out: list[RouteConfig] = []
    for i, tbl in enumerate(value):
        r.known(tbl, "routes")
        where = f"routes[{i}]"
        if "model" not in tbl:
            raise r.fail(where, "needs a 'model' (a models:/ URI)")
        name = r.string(tbl.get("name", f"route{i}" if len(value) > 1 else "default"), where)
        if not _NAME.match(name) or name == "shadow":
            raise r.fail(
                f"{where}.name",
                f"is {name!r}; use lower case letters, digits and '_' ('shadow' is reserved)",
            )
        if any(o.name == name for o in out):
            raise r.fail(f"{where}.name", f"repeats the route name {name!r}")
        weight = r.number(
            tbl.get("weight", 1.0 if len(value) == 1 else None), where + ".weight", 0, 1e9
        )
        out.append(RouteConfig(name, r.model(tbl["model"], f"{where}.model"), weight))
    if sum(o.weight for o in out) <= 0:
        raise r.fail("routes", "have weights adding up to 0: at least one must be positive")
    return tuple(out)


def load_endpoint_config(path: str | Path) -> EndpointConfig:
    """Read and validate an endpoint TOML file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EndpointConfigError(f"endpoint config {p} does not exist") from None
    except OSError as exc:
        raise EndpointConfigError(f"cannot read endpoint config {p}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise EndpointConfigError(f"{p} is not valid TOML: {exc}") from None
    return parse_endpoint_config(data, str(p))


def single_model_config(
    model: str, *, name: str | None = None, overrides: Mapping[str, Any] | None = None
) -> EndpointConfig:
    """An endpoint with one route serving ``model`` (named after the model by default)."""
    try:
        ref = parse_model_ref(model)
    except InvalidArgument as exc:
        raise EndpointConfigError(str(exc)) from None
    if name is None:
        name = re.sub(r"[^a-z0-9_]", "_", ref.name.lower())
        if not name or not name[0].isalpha():
            name = "m_" + name
        name = name[:63]
    data: dict[str, Any] = {
        "name": name,
        "routes": [{"name": "default", "model": model, "weight": 100}],
        **(overrides or {}),
    }
    return parse_endpoint_config(data, "--model")


def example_config(name: str = "churn", models: Sequence[str] = ()) -> str:
    """A documented ``endpoint.toml`` with every key at its default."""
    champion = models[0] if models else "models:/churn_model@production"
    challenger = models[1] if len(models) > 1 else "models:/churn_model@challenger"
    return f'''\
name = "{name}"                   # the inference table is lakeloom.inference_{name}

[[routes]]
name = "champion"
model = "{champion}"
weight = 90

[[routes]]
name = "challenger"
model = "{challenger}"
weight = 10

# [shadow]                        # scored asynchronously, logged, never returned
# model = "models:/churn_model@candidate"
# sample = 1.0

[routing]
key_header = "X-Routing-Key"      # requests with the same key always reach the same route
key_field = "routing_key"         # ... or a top-level field of the JSON body

[batching]
max_batch_size = {BatchingConfig.max_batch_size}             # rows per predict call at most
max_wait_ms = 0                   # wait for more rows when the model is idle

[limits]
max_body_bytes = 10485760
max_rows = 100000
timeout = "30s"

[auth]
api_key_hashes = []               # ["sha256:..."] from `lakeloom serve --hash-key`

[inference_table]
enabled = true
sample = 1.0                      # errors are always logged
flush_interval = "1s"
optimize_interval = "10m"

[metrics]
enabled = true

[reload]
poll_interval = "10s"             # aliases and this file are checked this often

[models]
trusted_types = []
allow_pickle = false
'''
