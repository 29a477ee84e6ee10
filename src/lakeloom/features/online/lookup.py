"""Reading online features: the fast path (:func:`lookup`) and its Arrow form."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa

from lakeloom.features.online.base import KeyInput, OnlineStore, OnlineTableNotFound
from lakeloom.features.online.codec import feature_key, key_list, key_normaliser, plain_type

__all__ = ["lookup", "lookup_table"]


def lookup(
    store: OnlineStore,
    name: str,
    keys: Iterable[KeyInput],
    features: Sequence[str] | None = None,
) -> list[dict[str, Any] | None]:
    """The features of each key of ``name``, in order; None for a key that is absent or
    older than the table's TTL.

    Each result holds the key columns, then ``features`` (default: all, in published order).
    Keys are scalars for a one-column key, tuples in key order, or mappings.

    >>> lookup(store, "features.customer", [42, 7], features=["age"])  # doctest: +SKIP
    [{'customer_id': 42, 'age': 31}, None]
    """
    return store.get(name, keys, features)


def lookup_table(
    store: OnlineStore,
    name: str,
    keys: Iterable[KeyInput],
    features: Sequence[str] | None = None,
) -> pa.Table:
    """:func:`lookup` as an Arrow table typed as published: one row per key, in order, with
    the key columns then the features; a missing or expired key has null features.

    >>> lookup_table(store, "features.customer", [42, 7]).to_pandas()  # doctest: +SKIP
    """
    info = store.describe(name)
    if info is None:
        raise OnlineTableNotFound(name, store.list_tables())
    spec = info.spec
    key_values = key_list(keys)
    rows = store.get(name, key_values, features)
    norm = key_normaliser(spec)
    wanted = [norm(k) for k in key_values]
    names = spec.feature_names if features is None else list(feature_key(features))
    columns: dict[str, pa.Array] = {}
    for i, k in enumerate(spec.key_names):
        values = wanted if len(spec.keys) == 1 else [w[i] for w in wanted]
        columns[k] = pa.array(values, type=plain_type(spec.schema.field(k).type))
    for f in names:
        columns[f] = pa.array(
            [None if r is None else r[f] for r in rows],
            type=plain_type(spec.schema.field(f).type),
        )
    return pa.table(columns)
