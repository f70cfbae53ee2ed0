"""A sliding-window sum kept in fixed time buckets: O(1) to add and to read.

The breaker counts failures with it and the rpm/tpm caps count requests and tokens. Bucketing
trades a little precision (an amount leaves the window one bucket width late at most) for no
per-event memory.
"""

from __future__ import annotations

import math


class SlidingWindow:
    __slots__ = ("_epoch", "_sums", "_total", "_width")

    def __init__(self, window_s: float, buckets: int = 20) -> None:
        self._width = window_s / buckets
        self._sums = [0.0] * buckets
        self._epoch = -math.inf  # the bucket epoch `now` last fell in
        self._total = 0.0

    def _advance(self, now: float) -> int:
        epoch = math.floor(now / self._width)
        if epoch > self._epoch:
            slots = len(self._sums)
            stale = epoch - self._epoch
            if stale >= slots:
                self._sums = [0.0] * slots
                self._total = 0.0
            else:
                for e in range(int(self._epoch) + 1, epoch + 1):
                    i = e % slots
                    self._total -= self._sums[i]
                    self._sums[i] = 0.0
            self._epoch = epoch
        return int(self._epoch)

    def add(self, amount: float, now: float) -> None:
        epoch = self._advance(now)
        self._sums[epoch % len(self._sums)] += amount
        self._total += amount

    def total(self, now: float) -> float:
        self._advance(now)
        return max(0.0, self._total)

    def free_at(self, excess: float, now: float) -> float:
        """When at least `excess` will have left the window (now if it need not)."""
        epoch = self._advance(now)
        if excess <= 0:
            return now
        slots = len(self._sums)
        freed = 0.0
        for e in range(epoch - slots + 1, epoch + 1):
            freed += self._sums[e % slots]
            if freed >= excess:
                return (e + slots) * self._width
        return math.inf
