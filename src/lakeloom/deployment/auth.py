"""API keys: stored as SHA-256 hashes, compared in constant time.

Clients send ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. The endpoint keeps only
``sha256:<hex>`` hashes (``lakeloom serve --hash-key`` makes one), hashes what a request
carries and compares it with every stored hash using :func:`hmac.compare_digest`, so
neither a match's position nor a prefix shows in the timing. Keys are meant to be long
random tokens (``secrets.token_urlsafe(32)``), for which one SHA-256 is enough; a slow
password hash would cost every request milliseconds.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

__all__ = ["ApiKeys", "hash_api_key"]


def hash_api_key(key: str) -> str:
    """The stored form of ``key``: ``sha256:<64 hex digits>``.

    >>> hash_api_key("secret")[:15]
    'sha256:2bb80d5'
    """
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


class ApiKeys:
    """Checks the key a request carries against the stored hashes."""

    def __init__(self, hashes: Sequence[str]) -> None:
        self._digests = [bytes.fromhex(h.split(":", 1)[1]) for h in hashes]

    @property
    def enabled(self) -> bool:
        """Whether any key is configured (no keys: every request is allowed)."""
        return bool(self._digests)

    def allows(self, authorization: str | None, api_key: str | None) -> bool:
        """Whether the request's ``Authorization`` or ``X-API-Key`` header holds a valid key."""
        if not self._digests:
            return True
        key = api_key
        if key is None and authorization is not None:
            scheme, _, token = authorization.strip().partition(" ")
            key = token.strip() if scheme.lower() == "bearer" else None
        if not key:
            return False
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
        ok = False
        for stored in self._digests:  # no early exit: every hash is compared
            ok |= hmac.compare_digest(digest, stored)
        return ok
