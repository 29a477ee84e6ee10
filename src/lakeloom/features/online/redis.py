"""The scale-out online store: Redis, one packed value per key.

Keys (``<p>`` is the prefix, ``lakeloom`` unless the URL says ``?prefix=...``):

* ``<p>:data:<table>:<generation>:<key>``: a row packed by
  :class:`~lakeloom.features.online.codec.RowCodec` (event-time header, null bitmap,
  ``struct`` record), with a Redis expiry at ``event time + ttl`` when the table has a TTL;
* ``<p>:meta:<table>``: a hash with the table's spec, current generation and last publish;
* ``<p>:epoch:<table>``: a counter that every commit increments;
* ``<p>:gen:<table>``: the generation counter; ``<p>:tables``: the set of published tables.

A lookup is one ``MGET`` of the epoch and the wanted keys: one round trip for any number of
keys, and a moved epoch (another process published) re-reads the spec before answering.
Writes run a Lua script that compares event times server-side (newer wins, atomically per
script call of up to 1,000 rows). Spark executors write directly (:meth:`partition_writer`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa
import redis
import redis.exceptions

from lakeloom.errors import ConcurrentWriteConflict, InvalidArgument
from lakeloom.features.online.base import (
    OnlineStoreError,
    OnlineTableInfo,
    OnlineTableNotFound,
    OnlineTableSpec,
    PartitionWriter,
    PublishState,
    UnknownFeature,
    WriteCounts,
)
from lakeloom.features.online.codec import (
    HEADER,
    RowCodec,
    column_values,
    drop_null_keys,
    event_micros,
    feature_key,
    key_list,
    key_normaliser,
    key_text,
    table_name,
)

__all__ = ["RedisOnlineStore"]

_PREFIX = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
#: What redis-py raises when the server cannot be reached or does not answer in time.
_UNREACHABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
#: Rows per newer-wins script call (each call blocks the server briefly).
_ROWS_PER_SCRIPT = 1000
_SCAN_COUNT = 1000

# KEYS: data keys; ARGV[1]: ttl in ms (0: none), ARGV[2]: now in ms, ARGV[2 + i]: packed row
# whose first 20 bytes are its event time in µs ("%+020d").
_NEWER_WINS = """
local ttl = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local applied = 0
for i = 1, #KEYS do
  local blob = ARGV[i + 2]
  local ts = tonumber(string.sub(blob, 1, 20))
  local cur = redis.call('GETRANGE', KEYS[i], 0, 19)
  if cur == '' or tonumber(cur) <= ts then
    applied = applied + 1
    if ttl > 0 then
      local at = math.floor(ts / 1000) + ttl
      if at > now then
        redis.call('SET', KEYS[i], blob, 'PXAT', string.format('%.0f', at))
      else
        redis.call('DEL', KEYS[i])
      end
    else
      redis.call('SET', KEYS[i], blob)
    end
  end
end
return applied
"""


def _safe_url(url: str) -> str:
    """``url`` without its password (for messages)."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(":" + parts.password + "@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


class _Plan:
    """A prepared lookup of one feature set of one table."""

    __slots__ = (
        "codec",
        "epoch",
        "epoch_key",
        "features",
        "key_names",
        "norm",
        "pick",
        "prefix",
        "single",
        "table",
        "ttl",
    )

    def __init__(
        self, spec: OnlineTableSpec, epoch: bytes, features: Sequence[str], store_prefix: str
    ) -> None:
        self.table = spec.name
        self.epoch = epoch
        self.epoch_key = f"{store_prefix}:epoch:{spec.name}"
        self.prefix = f"{store_prefix}:data:{spec.name}:{spec.generation}:"
        self.codec = RowCodec(spec.features)
        self.key_names = spec.key_names
        self.features = list(features)
        all_features = spec.feature_names
        self.pick = (
            None
            if self.features == all_features
            else [all_features.index(f) for f in self.features]
        )
        self.single = len(spec.keys) == 1
        self.norm = key_normaliser(spec)
        self.ttl = None if spec.ttl_seconds is None else int(spec.ttl_seconds * 1_000_000)

    def row(self, key: Any, blob: bytes | None, now: int) -> dict[str, Any] | None:
        if blob is None:
            return None
        ttl = self.ttl
        if ttl is not None and int(blob[:HEADER]) < now - ttl:
            return None
        values = self.codec.decode(blob)
        if self.pick is not None:
            values = [values[i] for i in self.pick]
        if self.single:
            out = {self.key_names[0]: key}
        else:
            out = dict(zip(self.key_names, key, strict=True))
        out.update(zip(self.features, values, strict=True))
        return out

    def data_key(self, key: Any) -> str:
        if self.single:
            return self.prefix + (key if type(key) is str else str(key))
        return self.prefix + key_text(key)


class RedisOnlineStore:
    """Online tables in a Redis database (``redis://[:password@]host:port/db``).

    >>> store = RedisOnlineStore("redis://127.0.0.1:6379/0")  # doctest: +SKIP
    >>> store.get("features.customer", [42])  # doctest: +SKIP
    [{'customer_id': 42, 'age': 31, ...}]
    """

    kind = "redis"

    def __init__(self, url: str, *, prefix: str = "lakeloom") -> None:
        if not _PREFIX.match(prefix):
            raise InvalidArgument(
                f"Redis key prefix {prefix!r} is not allowed: use 1 to 64 letters, digits, "
                "'_', '-' or '.'"
            )
        self.url = url
        self.prefix = prefix
        try:
            self._client: redis.Redis = redis.Redis.from_url(url)
        except ValueError as exc:
            raise OnlineStoreError(f"invalid Redis URL {_safe_url(url)!r}: {exc}") from None
        self._plans: dict[tuple[str, tuple[str, ...] | None], _Plan] = {}
        self._script: Any = None

    # -- helpers -------------------------------------------------------------------------
    def _unreachable(self, exc: Exception) -> OnlineStoreError:
        return OnlineStoreError(
            f"the Redis online store at {_safe_url(self.url)} failed: {exc}; is redis-server "
            "running there ([online_store] url)?"
        )

    def _meta(self, name: str) -> str:
        return f"{self.prefix}:meta:{name}"

    def _epoch(self, name: str) -> str:
        return f"{self.prefix}:epoch:{name}"

    def _data_pattern(self, name: str, generation: int | None = None) -> str:
        gen = "*" if generation is None else f"{generation}:*"
        return f"{self.prefix}:data:{name}:{gen}"

    # -- reading -------------------------------------------------------------------------
    def get(
        self, name: str, keys: Iterable[Any], features: Sequence[str] | None = None
    ) -> list[dict[str, Any] | None]:
        """See :meth:`OnlineStore.get`."""
        fkey = None if features is None else feature_key(features)
        plan = self._plans.get((name, fkey))
        if plan is None:
            plan = self._plan(name, fkey)
        key_values = keys if type(keys) is list else key_list(keys)
        if not key_values:
            return []
        try:
            for attempt in range(3):
                norm = plan.norm
                try:
                    wanted = [norm(k) for k in key_values]
                except InvalidArgument:
                    # Keys checked against a spec that another process may have replaced.
                    if attempt or self._client.get(plan.epoch_key) == plan.epoch:
                        raise
                    plan = self._replan(plan, name, fkey)
                    continue
                data_keys = [plan.data_key(k) for k in wanted]
                found = self._client.execute_command(  # type: ignore[no-untyped-call]
                    "MGET", plan.epoch_key, *data_keys
                )
                if found[0] == plan.epoch:
                    now = time.time_ns() // 1000
                    convert = plan.row
                    return [convert(k, b, now) for k, b in zip(wanted, found[1:], strict=True)]
                # Another process committed a publish: read the new spec and ask again.
                plan = self._replan(plan, name, fkey)
        except _UNREACHABLE as exc:
            raise self._unreachable(exc) from None
        raise OnlineStoreError(f"online table {name!r} kept changing during the lookup; retry")

    def _replan(self, stale: _Plan, name: str, fkey: tuple[str, ...] | None) -> _Plan:
        self._plans = {k: p for k, p in self._plans.items() if p.table != stale.table}
        return self._plan(name, fkey)

    def _plan(self, name: str, fkey: tuple[str, ...] | None) -> _Plan:
        name = table_name(name)
        try:
            pipe = self._client.pipeline(transaction=True)
            pipe.hget(self._meta(name), "spec")
            pipe.get(self._epoch(name))
            raw, epoch = pipe.execute()
        except _UNREACHABLE as exc:
            raise self._unreachable(exc) from None
        if raw is None or epoch is None:
            raise OnlineTableNotFound(name, self.list_tables())
        spec = OnlineTableSpec.from_json(raw)
        known = spec.feature_names
        for f in fkey or ():
            if f not in known:
                raise UnknownFeature(name, str(f), known)
        plan = _Plan(spec, epoch, known if fkey is None else fkey, self.prefix)
        self._plans[(name, fkey)] = plan
        return plan

    def describe(self, name: str) -> OnlineTableInfo | None:
        """See :meth:`OnlineStore.describe`."""
        name = table_name(name)
        try:
            spec, state = self._client.hmget(self._meta(name), ["spec", "state"])
        except _UNREACHABLE as exc:
            raise self._unreachable(exc) from None
        if spec is None or state is None:
            return None
        return OnlineTableInfo(OnlineTableSpec.from_json(spec), PublishState.from_json(state))

    def list_tables(self) -> list[str]:
        """See :meth:`OnlineStore.list_tables`."""
        try:
            names = self._client.smembers(f"{self.prefix}:tables")
        except _UNREACHABLE as exc:
            raise self._unreachable(exc) from None
        return sorted(n.decode() if isinstance(n, bytes) else str(n) for n in names)

    # -- writing -------------------------------------------------------------------------
    def begin(self, spec: OnlineTableSpec, *, fresh: bool) -> OnlineTableSpec:
        """See :meth:`OnlineStore.begin`."""
        try:
            if fresh:
                generation = int(self._client.incr(f"{self.prefix}:gen:{spec.name}"))
                return spec.with_generation(generation)
        except _UNREACHABLE as exc:
            raise self._unreachable(exc) from None
        info = self.describe(spec.name)
        if info is None or not info.spec.same_layout(spec):
            raise InvalidArgument(
                f"online table {spec.name!r} is not published with this layout; "
                "publish a snapshot first"
            )
        return spec.with_generation(info.spec.generation)

    def write(self, spec: OnlineTableSpec, batch: pa.RecordBatch | pa.Table) -> WriteCounts:
        """See :meth:`OnlineStore.write`."""
        received = batch.num_rows
        batch = drop_null_keys(batch, spec)
        n = batch.num_rows
        if n == 0:
            return WriteCounts(received, 0)
        now = time.time_ns() // 1000
        ts = event_micros(batch, spec, now)
        blobs = RowCodec(spec.features).encode_batch(batch, ts)
        prefix = f"{self.prefix}:data:{spec.name}:{spec.generation}:"
        key_cols = [column_values(batch.column(c.name), c.kind) for c in spec.keys]
        if len(key_cols) == 1:
            keys = [prefix + str(k) for k in key_cols[0]]
        else:
            keys = [prefix + key_text(k) for k in zip(*key_cols, strict=True)]
        ttl_ms = 0 if spec.ttl_seconds is None else max(1, int(spec.ttl_seconds * 1000))
        if self._script is None:
            self._script = self._client.register_script(_NEWER_WINS)
        applied = 0
        try:
            for start in range(0, n, _ROWS_PER_SCRIPT):
                stop = start + _ROWS_PER_SCRIPT
                applied += int(
                    self._script(
                        keys=keys[start:stop], args=[ttl_ms, now // 1000, *blobs[start:stop]]
                    )
                )
        except _UNREACHABLE as exc:
            raise self._unreachable(exc) from None
        return WriteCounts(received, applied)

    def commit(self, spec: OnlineTableSpec, state: PublishState) -> None:
        """See :meth:`OnlineStore.commit`."""
        meta = self._meta(spec.name)
        fields: Any = {
            "spec": spec.to_json(),
            "state": state.to_json(),
            "generation": spec.generation,
        }
        try:
            with self._client.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        pipe.watch(meta)  # type: ignore[no-untyped-call]
                        current = pipe.hget(meta, "generation")
                        if current is not None and int(current) > spec.generation:
                            raise ConcurrentWriteConflict(
                                f"another publish of online table {spec.name!r} committed a "
                                "newer snapshot meanwhile; nothing was changed, publish again "
                                "if needed"
                            )
                        pipe.multi()
                        pipe.hset(meta, mapping=fields)
                        pipe.sadd(f"{self.prefix}:tables", spec.name)
                        pipe.incr(self._epoch(spec.name))
                        pipe.execute()
                        break
                    except redis.exceptions.WatchError:
                        continue
            if current is None or int(current) < spec.generation:
                # A new generation is served: delete the replaced one (and any left by a
                # publish that failed). SCAN walks the whole database, so only then.
                self._delete_generations(spec.name, lambda g: g < spec.generation)
        except _UNREACHABLE as exc:
            raise self._unreachable(exc) from None

    def _delete_generations(self, name: str, which: Callable[[int], bool]) -> None:
        base = f"{self.prefix}:data:{name}:".encode()
        batch: list[bytes] = []
        for key in self._client.scan_iter(match=self._data_pattern(name), count=_SCAN_COUNT):
            gen = key[len(base) :].split(b":", 1)[0]
            if gen.isdigit() and which(int(gen)):
                batch.append(key)
                if len(batch) >= _SCAN_COUNT:
                    self._client.unlink(*batch)
                    batch = []
        if batch:
            self._client.unlink(*batch)

    def abort(self, spec: OnlineTableSpec) -> None:
        """See :meth:`OnlineStore.abort`."""
        try:
            self._delete_generations(spec.name, lambda g: g == spec.generation)
        except _UNREACHABLE as exc:
            raise self._unreachable(exc) from None

    def drop(self, name: str) -> None:
        """See :meth:`OnlineStore.drop`."""
        name = table_name(name)
        try:
            if not self._client.exists(self._meta(name)):
                raise OnlineTableNotFound(name, self.list_tables())
            pipe = self._client.pipeline(transaction=True)
            pipe.delete(self._meta(name), self._epoch(name))
            pipe.srem(f"{self.prefix}:tables", name)
            pipe.execute()
            self._delete_generations(name, lambda g: True)
            self._client.delete(f"{self.prefix}:gen:{name}")
        except _UNREACHABLE as exc:
            raise self._unreachable(exc) from None
        self._plans = {k: p for k, p in self._plans.items() if p.table != name}

    def partition_writer(self) -> PartitionWriter | None:
        """A writer that Spark executors run against the same Redis."""
        return RedisPartitionWriter(self.url, self.prefix)

    def close(self) -> None:
        """Close the connection pool (a later call reconnects)."""
        self._client.close()

    def __repr__(self) -> str:
        return f"RedisOnlineStore({_safe_url(self.url)!r}, prefix={self.prefix!r})"


@dataclass(frozen=True)
class RedisPartitionWriter:
    """Writes a partition's Arrow batches to Redis from wherever it runs (picklable)."""

    url: str
    prefix: str

    def __call__(self, spec: OnlineTableSpec, batches: Iterator[pa.RecordBatch]) -> WriteCounts:
        store = RedisOnlineStore(self.url, prefix=self.prefix)
        total = WriteCounts()
        try:
            for batch in batches:
                total = total + store.write(spec, batch)
        finally:
            store.close()
        return total
