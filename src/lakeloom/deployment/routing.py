"""Traffic routing: weighted split, sticky keys, and the shadow sample.

A :class:`Router` is immutable; changing weights builds a new one and swaps the runtime's
reference, so a request sees one consistent table. A request with a routing key always
lands on the same route for the same weights: the key is hashed (BLAKE2b, not Python's
salted ``hash``, so every worker and restart agrees) to a point in [0, 1) that falls in one
route's share. Other requests draw a random point.
"""

from __future__ import annotations

import hashlib
import random
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

from lakeloom.deployment.models import ModelSlot

__all__ = ["Route", "Router", "key_point"]


@dataclass(frozen=True)
class Route:
    """A named route to a model slot, with its weight."""

    name: str
    weight: float
    slot: ModelSlot


def key_point(key: str) -> float:
    """Where a routing key falls in [0, 1), the same in every process."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


class Router:
    """Picks a route per request; knows the shadow slot and its sample."""

    def __init__(
        self,
        routes: Sequence[Route],
        shadow: ModelSlot | None = None,
        shadow_sample: float = 1.0,
    ) -> None:
        live = [r for r in routes if r.weight > 0]
        if not live:
            raise ValueError("at least one route needs a positive weight")
        self.routes = tuple(routes)
        self._live = tuple(live)
        total = sum(r.weight for r in live)
        # Upper bounds of each route's share of [0, 1); the last is exactly 1.
        self._bounds = [b / total for b in accumulate(r.weight for r in live)]
        self._bounds[-1] = 1.0
        self.shadow = shadow
        self.shadow_sample = shadow_sample
        self._random = random.random

    def pick(self, key: str | None = None) -> Route:
        """The route for a request (``key``: its routing key, if it has one)."""
        live = self._live
        if len(live) == 1:
            return live[0]
        point = key_point(key) if key is not None else self._random()
        return live[min(bisect_right(self._bounds, point), len(live) - 1)]

    def wants_shadow(self) -> bool:
        """Whether this request is also scored by the shadow model."""
        return self.shadow is not None and (
            self.shadow_sample >= 1.0 or self._random() < self.shadow_sample
        )

    def shares(self) -> dict[str, float]:
        """Each route's configured share of the traffic (0 to 1)."""
        total = sum(r.weight for r in self._live)
        return {r.name: (r.weight / total if r.weight > 0 else 0.0) for r in self.routes}
