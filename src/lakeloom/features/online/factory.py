"""Short names to backends: ``[online_store] kind = "sqlite" | "redis"`` and its ``url``."""

from __future__ import annotations

import os
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from lakeloom.errors import SettingsError
from lakeloom.features.online.base import OnlineStore, OnlineStoreError
from lakeloom.lakehouse.storage import Storage
from lakeloom.settings import OnlineStoreSettings

__all__ = ["DEFAULT_SQLITE_FILE", "open_online_store", "sqlite_path"]

#: The embedded store's file, at the workspace root.
DEFAULT_SQLITE_FILE = "online.db"


def sqlite_path(url: str, storage: Storage) -> str:
    """The SQLite file for ``url``: empty means ``<workspace>/online.db``; a relative path
    is taken from the workspace root. SQLAlchemy-style URLs work too, as MLflow's do:
    ``sqlite:///relative.db``, ``sqlite:////absolute/path.db``."""
    text = url.strip()
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///") :]
    elif text.startswith("file://"):
        text = text[len("file://") :]
    elif "://" in text:
        raise SettingsError(
            f"online_store.url {url!r} is not a SQLite file path; use a path, sqlite:///path, "
            'or set online_store.kind = "redis" for a Redis URL'
        )
    if text and os.path.isabs(os.path.expanduser(text)):
        return os.path.expanduser(text)
    if not storage.is_local:
        raise SettingsError(
            f"the workspace {storage.root} is not a local folder, so the SQLite online store "
            'needs a local file: set [online_store] url to a path, or use kind = "redis"'
        )
    return storage.uri(text or DEFAULT_SQLITE_FILE)


def split_redis_url(url: str) -> tuple[str, str]:
    """A Redis URL without lakeloom's own ``prefix`` query parameter, and that prefix."""
    parts = urlsplit(url.strip())
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((v for k, v in query if k == "prefix"), "lakeloom")
    rest = urlencode([(k, v) for k, v in query if k != "prefix"])
    return urlunsplit(parts._replace(query=rest)), prefix


def open_online_store(settings: OnlineStoreSettings, storage: Storage) -> OnlineStore:
    """The online store the settings name: SQLite (default) or Redis.

    >>> store = open_online_store(OnlineStoreSettings(), Storage("/tmp/ws"))  # doctest: +SKIP
    """
    kind = settings.kind.strip().lower()
    if kind == "sqlite":
        from lakeloom.features.online.sqlite import SQLiteOnlineStore

        return SQLiteOnlineStore(sqlite_path(settings.url, storage))
    if kind == "redis":
        if not settings.url.strip().startswith(("redis://", "rediss://", "unix://")):
            raise SettingsError(
                f"online_store.url must be a Redis URL (redis://host:6379/0) when "
                f'online_store.kind is "redis", got {settings.url!r}'
            )
        try:
            from lakeloom.features.online.redis import RedisOnlineStore
        except ImportError:
            raise OnlineStoreError(
                "the Redis online store needs the redis package: pip install 'lakeloom[redis]'"
            ) from None
        url, prefix = split_redis_url(settings.url)
        return RedisOnlineStore(url, prefix=prefix)
    raise SettingsError(f"online_store.kind is {settings.kind!r}; allowed values: sqlite, redis")
