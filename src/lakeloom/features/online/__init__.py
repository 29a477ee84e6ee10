"""The online feature store: the latest row per key, served in well under a millisecond.

Two backends behind one small interface (:class:`OnlineStore`), chosen by
``[online_store] kind`` in ``lakeloom.toml``: ``"sqlite"`` (default: the file
``<workspace>/online.db``, or the path in ``url``) and ``"redis"`` (``url =
"redis://host:6379/0"``; add ``?prefix=name`` to share one database between workspaces).

The functions the feature store facade calls::

    store = open_online_store(settings.online_store, storage)          # OnlineStore
    report = publish(store, engine, table_ref_or_frame, name="features.customer",
                     primary_keys=["customer_id"], timestamp_key="event_ts",
                     features=None, mode="snapshot", ttl="7d")         # PublishReport
    rows = lookup(store, "features.customer", [42, 43], features=["age"])
    # -> [{"customer_id": 42, "age": 31}, None]   (None: unknown key or older than the TTL)
    table = lookup_table(store, "features.customer", [42, 43])        # pyarrow.Table, nulls

* :func:`open_online_store` ``(settings, storage) -> OnlineStore``.
* :func:`publish` ``(store, engine, source, *, name, primary_keys, timestamp_key,
  features=None, mode="snapshot"|"incremental", ttl=None, chunk_rows=10_000) ->
  PublishReport``: materialises the latest row per key of a lakehouse table (a
  :class:`~lakeloom.engines.TableRef`: its Delta version is recorded) or of a frame (Arrow,
  pandas, polars, Spark). The report says what ran (``mode``, and ``reason`` when an
  incremental request ran as a snapshot), the versions, rows read and rows stored.
* :func:`lookup` ``(store, name, keys, features=None) -> list[dict | None]``: the fast path.
  Keys are scalars (one key column), tuples in key order, or mappings of key column to value;
  each result holds the key columns, then the features (all, or those asked for, in that
  order). Table names are case-insensitive.
* :func:`lookup_table`: the same as one Arrow table with the published column types (a
  missing key gives nulls).
* ``store.describe(name)`` (:class:`OnlineTableInfo`), ``store.list_tables()``,
  ``store.drop(name)``, ``store.close()``.

Semantics, the same on every backend (one contract suite checks them):

* **Newer wins**: a stored row is replaced only by a row with the same or a newer event
  timestamp (``timestamp_key``; without one, the publish time). Rows with a null key are
  left out; a null event time counts as older than any time (as ``Engine.latest_per_key``).
* **TTL on read**: with ``ttl``, a row older than ``now - ttl`` (by its event timestamp)
  reads as missing; Redis expires such keys, SQLite deletes them at the next publish.
* **Snapshot** publishing writes a fresh copy (a *generation*) that readers switch to at once
  when it is complete, then deletes the old one: keys deleted from the table disappear and
  the columns may change. **Incremental** publishing writes only the rows of the data files
  the table gained since the Delta version recorded at the last publish (details in
  :mod:`lakeloom.features.online.incremental`). A publish that would commit over a newer snapshot
  raises ``ConcurrentWriteConflict``.
* Values round-trip with their types (:mod:`lakeloom.features.online.codec`).

Errors: :class:`OnlineTableNotFound` (never published), :class:`UnknownFeature`,
``InvalidArgument`` (a key of the wrong shape or type, bad publish arguments),
:class:`OnlineStoreError` (the store cannot be reached or opened).
"""

from lakeloom.features.online.base import (
    OnlineStore,
    OnlineStoreError,
    OnlineTableInfo,
    OnlineTableNotFound,
    OnlineTableSpec,
    PublishState,
    UnknownFeature,
    WriteCounts,
)
from lakeloom.features.online.factory import open_online_store
from lakeloom.features.online.lookup import lookup, lookup_table
from lakeloom.features.online.publish import PublishReport, publish

__all__ = [
    "OnlineStore",
    "OnlineStoreError",
    "OnlineTableInfo",
    "OnlineTableNotFound",
    "OnlineTableSpec",
    "PublishReport",
    "PublishState",
    "UnknownFeature",
    "WriteCounts",
    "lookup",
    "lookup_table",
    "open_online_store",
    "publish",
]
