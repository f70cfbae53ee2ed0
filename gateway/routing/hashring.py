"""Consistent hashing with bounded loads (Mirrokni, Thorup and Zadimoghaddam, 2018).

Each node owns many points on a ring; a key goes to the first node clockwise from its hash
whose load stays under `c * (total + 1) / n`, c >= 1. Keys stick to one node while it has
room and spill to the next node on the ring, always the same one, when it has not; taking a
node out moves only the keys it owned.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Generic, TypeVar

from gateway.routing.request import stable_hash

POINTS_PER_NODE = 64

T = TypeVar("T", bound=Hashable)


class HashRing(Generic[T]):
    def __init__(self, nodes: Sequence[T], name: Callable[[T], str], points: int = POINTS_PER_NODE) -> None:
        ring = sorted((stable_hash(f"{name(node)}#{i}"), n) for n, node in enumerate(nodes) for i in range(points))
        self._hashes = [h for h, _ in ring]
        self._owners = [n for _, n in ring]
        self._nodes = list(nodes)

    def walk(self, key: int) -> Iterator[T]:
        """Every node once, in ring order from the key: the key's owner first."""
        start = bisect.bisect(self._hashes, key)
        seen: set[int] = set()
        total = len(self._owners)
        for step in range(total):
            n = self._owners[(start + step) % total]
            if n not in seen:
                seen.add(n)
                yield self._nodes[n]
                if len(seen) == len(self._nodes):
                    return

    def pick(self, key: int, load: Callable[[T], float], candidates: set[T], factor: float) -> T | None:
        """The first candidate from the key's point whose load stays within `factor` of the mean."""
        loads = {node: load(node) for node in candidates}
        if not loads:
            return None
        bound = math.ceil(factor * (sum(loads.values()) + 1) / len(loads))
        for node in self.walk(key):
            if node in loads and loads[node] + 1 <= bound:
                return node
        return min(loads, key=loads.__getitem__)
