"""Failed authentication, throttled per client address and per key prefix (or user name).

Only failures count. Each bucket (an address, the shown prefix of a key, an admin UI user name)
allows `burst` failures, then one more every `refill_s` seconds (GCRA, as the limiter's rpm);
past that, everything from that address or for that prefix is 429 with `retry-after`, the right
key included, or a guesser would learn which guess was right. The counts live in Redis when it
is configured (lua/auth_failure_v1.lua), so every worker and replica shares them, else in
process (the same algorithm over a dict); the contract test runs over both.

A request that authenticates pays for none of this beyond one truthiness test: buckets held
back are remembered in a dict per worker, empty unless someone is being throttled right now.
A worker learns of a bucket held back by another one at its own next failure for it, so with
Redis each worker may let one failure past the allowance, never more.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from importlib import resources
from typing import Protocol

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from gateway.config.settings import Settings
from gateway.core.errors import RateLimited

log = logging.getLogger("gateway.auth")

SCRIPT = "auth_failure_v1.lua"
# Past this many entries the in-process dicts drop those that say nothing any more.
_SWEEP_AT = 10_000


class FailureCounter(Protocol):
    async def fail(self, bucket: str, now_ms: int, refill_ms: int, burst: int) -> int:
        """Count one failure; 0 when within the allowance, else the ms until the next one would be."""
        ...

    async def close(self) -> None: ...


class MemoryCounter:
    """The script's algorithm over a dict; the event loop runs each call to completion."""

    def __init__(self) -> None:
        self._tat: dict[str, int] = {}

    async def fail(self, bucket: str, now_ms: int, refill_ms: int, burst: int) -> int:
        tat = max(self._tat.get(bucket, now_ms), now_ms)
        over = tat + refill_ms - now_ms - burst * refill_ms
        if over > 0:
            return over
        if len(self._tat) >= _SWEEP_AT:
            self._tat = {name: t for name, t in self._tat.items() if t > now_ms}
        self._tat[bucket] = tat + refill_ms
        return 0

    async def close(self) -> None:
        return None


class RedisCounter:
    def __init__(self, url: str, prefix: str, *, timeout_s: float, cluster: bool = False) -> None:
        self.client = (
            RedisCluster.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s) if cluster
            else Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        )
        self.prefix = prefix
        text = resources.files("gateway.identity").joinpath("lua", SCRIPT).read_text()
        self._script = self.client.register_script(text)

    async def fail(self, bucket: str, now_ms: int, refill_ms: int, burst: int) -> int:
        # One hash tag per bucket: a single-key script, at home in any cluster slot.
        key = f"{{{self.prefix}:authfail:{bucket}}}"
        return int(await self._script(keys=[key], args=[now_ms, refill_ms, burst]))

    async def close(self) -> None:
        await self.client.aclose()


class AuthThrottle:
    def __init__(self, counter: FailureCounter, *, burst: int, refill_s: float,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.counter = counter
        self.burst = burst
        self.refill_ms = max(1, round(refill_s * 1000))
        self.clock = clock
        # The in-process count, while Redis cannot be asked (failures are still counted, per process).
        self._fallback = MemoryCounter()
        self._redis_down_until = 0.0
        self.held: dict[str, float] = {}  # bucket -> until when it is held back (clock seconds)

    def check(self, address: str, other: str | None = None) -> None:
        """Refuse an attempt whose bucket is held back right now. On the hot path: one test of an
        empty dict, unless someone is being throttled."""
        if not self.held:
            return
        now = self.clock()
        for bucket in _buckets(address, other):
            until = self.held.get(bucket)
            if until is not None:
                if until > now:
                    raise _refused(until - now)
                del self.held[bucket]

    async def failed(self, address: str, other: str | None = None) -> None:
        """Count a failure from `address` (and for `other`: `key_bucket` or `user_bucket`); raise 429
        if that took either past its allowance."""
        now = self.clock()
        now_ms = int(now * 1000)
        wait_ms = 0
        buckets = _buckets(address, other)
        for bucket in buckets:
            wait_ms = max(wait_ms, await self._count(bucket, now, now_ms))
        if wait_ms:
            if len(self.held) >= _SWEEP_AT:
                self.held = {name: until for name, until in self.held.items() if until > now}
            for bucket in buckets:
                self.held[bucket] = max(self.held.get(bucket, 0.0), now + wait_ms / 1000)
            raise _refused(wait_ms / 1000)

    async def _count(self, bucket: str, now: float, now_ms: int) -> int:
        if now >= self._redis_down_until:
            try:
                return await self.counter.fail(bucket, now_ms, self.refill_ms, self.burst)
            except (RedisError, OSError) as exc:
                log.warning("failed sign-ins are counted per process for a while: Redis did not answer (%s)",
                            type(exc).__name__)
                self._redis_down_until = now + 1.0
        return await self._fallback.fail(bucket, now_ms, self.refill_ms, self.burst)

    async def close(self) -> None:
        await self.counter.close()


def key_bucket(prefix: str) -> str:
    return f"k:{prefix}"


def user_bucket(username: str) -> str:
    return f"u:{username}"


def _buckets(address: str, other: str | None) -> tuple[str, ...]:
    return (f"a:{address}",) if other is None else (f"a:{address}", other)


def _refused(wait_s: float) -> RateLimited:
    seconds = max(1, math.ceil(wait_s))
    return RateLimited(f"Too many failed attempts to authenticate from this address or with this key; retry in "
                       f"{seconds} s.", retry_after=wait_s)


def build_throttle(settings: Settings) -> AuthThrottle:
    counter: FailureCounter = MemoryCounter()
    if settings.redis_url is not None:
        counter = RedisCounter(settings.redis_url.get_secret_value(), settings.redis_prefix,
                               timeout_s=settings.limits_redis_timeout_s, cluster=settings.redis_cluster)
    return AuthThrottle(counter, burst=settings.auth_failure_burst, refill_s=settings.auth_failure_refill_s)
