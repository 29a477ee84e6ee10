"""What each backend does underneath the contract: storage layout, reclaiming, settings."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from lakeloom.engines.base import Engine
from lakeloom.errors import InvalidArgument, SettingsError
from lakeloom.features.online import OnlineStoreError, lookup, open_online_store, publish
from lakeloom.features.online.codec import RowCodec, event_time, key_text
from lakeloom.features.online.publish import build_spec
from lakeloom.features.online.sqlite import SQLiteOnlineStore
from lakeloom.lakehouse.storage import Storage
from lakeloom.settings import OnlineStoreSettings

NAME = "features.c"


def data(keys: list[int], age_hours: list[float], values: list[int]) -> pa.Table:
    now = datetime.now(UTC)
    return pa.table(
        {
            "k": pa.array(keys, pa.int64()),
            "ts": pa.array(
                [now - timedelta(hours=h) for h in age_hours], pa.timestamp("us", "UTC")
            ),
            "v": pa.array(values, pa.int64()),
        }
    )


def put(store: object, engine: Engine, table: pa.Table, **kw: object) -> None:
    publish(store, engine, table, name=NAME, primary_keys="k", timestamp_key="ts", **kw)  # type: ignore[arg-type]


# -- SQLite ---------------------------------------------------------------------------------
def test_sqlite_layout_generations_and_reclaiming(tmp_path: Path, local_engine: Engine) -> None:
    store = SQLiteOnlineStore(str(tmp_path / "online.db"))
    put(store, local_engine, data([1, 2], [0, 0], [1, 2]))
    put(store, local_engine, data([1, 2, 3], [0, 5, 0], [1, 2, 3]), ttl="1h")
    con = sqlite3.connect(tmp_path / "online.db")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    assert sorted(tables) == ["_lakeloom_online", f"{NAME}@2"]
    # Rows past the TTL are deleted when publishing (lookups already ignore them).
    assert [r[0] for r in con.execute(f'SELECT k FROM "{NAME}@2" ORDER BY k')] == [1, 3]
    types = dict(con.execute(f"SELECT name, type FROM pragma_table_info('{NAME}@2')").fetchall())
    assert types["k"] == "INTEGER" and types["v"] == "INTEGER"
    con.close()
    store.drop(NAME)
    con = sqlite3.connect(tmp_path / "online.db")
    assert [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")] == [
        "_lakeloom_online"
    ]
    con.close()
    store.close()


def test_sqlite_unwritable_path(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OnlineStoreError, match="cannot open the SQLite online store"):
        SQLiteOnlineStore(str(blocker / "online.db"))


# -- Redis ----------------------------------------------------------------------------------
@pytest.mark.redis
def test_redis_layout_generations_and_expiry(redis_db: str, local_engine: Engine) -> None:
    import redis

    from lakeloom.features.online.redis import RedisOnlineStore

    store = RedisOnlineStore(redis_db, prefix="ll")
    client = redis.Redis.from_url(redis_db)
    put(store, local_engine, data([1, 2], [0, 0], [1, 2]))
    assert sorted(client.keys("ll:data:*")) == [
        b"ll:data:features.c:1:1",
        b"ll:data:features.c:1:2",
    ]
    put(store, local_engine, data([1, 2], [0.5, 5], [1, 2]), ttl="1h")
    # The replaced generation is gone; a row past its TTL is not written; others expire.
    assert client.keys("ll:data:*") == [b"ll:data:features.c:2:1"]
    remaining = client.pttl("ll:data:features.c:2:1")
    assert 0 < remaining <= 30 * 60 * 1000
    assert client.smembers("ll:tables") == {b"features.c"}
    store.drop(NAME)
    assert client.keys("ll:*") == []
    client.close()
    store.close()


@pytest.mark.redis
def test_redis_prefixes_keep_workspaces_apart(redis_db: str, local_engine: Engine) -> None:
    a = open_online_store(OnlineStoreSettings("redis", redis_db + "?prefix=a"), Storage("/x"))
    b = open_online_store(OnlineStoreSettings("redis", redis_db + "?prefix=b"), Storage("/x"))
    put(a, local_engine, data([1], [0], [1]))
    assert a.list_tables() == [NAME] and b.list_tables() == []
    a.close()
    b.close()


def test_redis_unreachable_and_bad_urls() -> None:
    from lakeloom.features.online.redis import RedisOnlineStore

    store = RedisOnlineStore("redis://:secret@127.0.0.1:1/0")
    with pytest.raises(
        OnlineStoreError, match=r"127\.0\.0\.1:1/0 failed.*redis-server running"
    ) as info:
        store.list_tables()
    assert "secret" not in str(info.value)
    with pytest.raises(InvalidArgument, match="prefix"):
        RedisOnlineStore("redis://127.0.0.1:1/0", prefix="a:b")


def test_row_codec_round_trip_and_key_text() -> None:
    table = pa.table(
        {"a": [1, None], "s": ["x", None], "f": [float("nan"), 2.0], "t": [True, None]}
    )
    spec = build_spec(
        "x.y",
        table.append_column("k", pa.array([1, 2])).schema,
        primary_keys=["k"],
        timestamp_key=None,
        features=None,
        ttl_seconds=None,
    )
    codec = RowCodec(spec.features)
    blobs = codec.encode_batch(table, [5, -5])
    assert blobs[1].startswith(b"-0000000000000000005") and event_time(blobs[1]) == -5
    first, second = (codec.decode(b) for b in blobs)
    assert first[0] == 1 and first[1] == "x" and first[2] != first[2] and first[3] is True
    assert second == [None, None, 2.0, None]
    assert key_text((1, "a\x1fb")) != key_text((1, "a", "b"))  # type: ignore[arg-type]


# -- settings -------------------------------------------------------------------------------
def test_open_online_store_from_settings(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path))
    default = open_online_store(OnlineStoreSettings(), storage)
    assert isinstance(default, SQLiteOnlineStore) and default.path == f"{tmp_path}/online.db"
    relative = open_online_store(OnlineStoreSettings("sqlite", "sub/o.db"), storage)
    assert isinstance(relative, SQLiteOnlineStore) and relative.path == f"{tmp_path}/sub/o.db"
    absolute = open_online_store(
        OnlineStoreSettings("sqlite", f"sqlite:///{tmp_path}/a.db"), storage
    )
    assert isinstance(absolute, SQLiteOnlineStore) and absolute.path == f"{tmp_path}/a.db"
    for store in (default, relative, absolute):
        store.close()
    with pytest.raises(SettingsError, match="needs a local file"):
        open_online_store(OnlineStoreSettings(), Storage("s3://bucket/ws"))
    with pytest.raises(SettingsError, match="not a SQLite file path"):
        open_online_store(OnlineStoreSettings("sqlite", "redis://x"), storage)
    with pytest.raises(SettingsError, match="must be a Redis URL"):
        open_online_store(OnlineStoreSettings("redis", ""), storage)
    with pytest.raises(SettingsError, match="allowed values: sqlite, redis"):
        open_online_store(OnlineStoreSettings("memcached", ""), storage)


def test_lookup_through_a_store_opened_from_settings(tmp_path: Path, local_engine: Engine) -> None:
    store = open_online_store(OnlineStoreSettings(), Storage(str(tmp_path)))
    put(store, local_engine, data([4], [0], [40]))
    assert lookup(store, NAME, [4]) == [{"k": 4, "v": 40}]
    store.close()
