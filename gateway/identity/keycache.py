"""What each worker remembers about the keys it has seen, so authentication rarely reads the store.

Entries live `ttl_s` at most and are dropped at once when a change is announced (by the admin
API in this process, by Redis pub/sub or a poll of the store for the others). While the
announcements cannot be trusted (the subscription is down), entries live one second, which
keeps "a revoked key stops working within a second" true at the cost of more reads.

Unknown keys are remembered too, so a client retrying a bad key cannot hammer the database;
the cache is bounded (least recently used entries go first). While the store is unreachable,
entries past their TTL keep answering for `stale_s` (unless a change to them was announced);
keys not in the cache then get 503.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from gateway.core.types import NO_LIMITS, Principal
from gateway.identity.store.base import KeyMatch, Store, StoreUnavailable

DEGRADED_TTL_S = 1.0
# How long past its TTL an entry may still answer while the store is unreachable.
STALE_S = 60.0
# After the store failed, how long misses answer from what is cached (or 503) without trying it.
STORE_RETRY_S = 1.0


@dataclass(frozen=True, slots=True)
class KeyState:
    """One presented secret, as the store described it when it was read."""

    principal: Principal | None  # None: no such key
    is_admin: bool = False
    revoked: bool = False
    # Wall-clock time (epoch seconds) after which this secret is refused, if any.
    expires_at: float | None = None
    # True when `expires_at` is the end of a rotation's grace period rather than the key's expiry.
    rotated: bool = False

    @property
    def key_id(self) -> str | None:
        return None if self.principal is None else self.principal.key_id

    @property
    def team_id(self) -> str | None:
        return None if self.principal is None else self.principal.team_id


UNKNOWN = KeyState(principal=None)


def state_of(match: KeyMatch | None, prefix: str) -> KeyState:
    if match is None:
        return UNKNOWN
    key = match.key
    principal = Principal(
        key_id=key.id,
        key_prefix=prefix,
        team_id=key.team_id,
        key_limits=key.limits,
        team_limits=match.team.limits if match.team is not None else NO_LIMITS,
        allowed_models=None if key.allowed_models is None else frozenset(key.allowed_models),
        metadata=key.metadata,
    )
    key_end = key.expires_at.timestamp() if key.expires_at else None
    secret_end = match.secret_expires_at.timestamp() if match.secret_expires_at else None
    ends = [t for t in (key_end, secret_end) if t is not None]
    expires_at = min(ends) if ends else None
    rotated = secret_end is not None and expires_at == secret_end and (key_end is None or secret_end < key_end)
    return KeyState(principal, key.is_admin, key.revoked_at is not None, expires_at, rotated)


class KeyCache:
    def __init__(
        self,
        store: Store,
        ttl_s: float,
        *,
        max_entries: int = 100_000,
        stale_s: float = STALE_S,
        trusted: Callable[[], bool] = lambda: True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.stale_s = stale_s
        # Whether change announcements are arriving; when not, entries are trusted for one second.
        self.trusted = trusted
        self.clock = clock
        self._entries: OrderedDict[str, tuple[KeyState, float]] = OrderedDict()
        self._loading: dict[str, asyncio.Task[KeyState]] = {}
        # Bumped by every invalidation: a read that started before one must not be cached after it.
        self._generation = 0
        self.reads = 0
        self._store_down_until = 0.0

    @property
    def ttl(self) -> float:
        return self.ttl_s if self.trusted() else min(self.ttl_s, DEGRADED_TTL_S)

    async def get(self, key_hash: str, prefix: str) -> KeyState:
        hit = self._entries.get(key_hash)
        if hit is not None and self.clock() - hit[1] < self.ttl:
            self._entries.move_to_end(key_hash)
            return hit[0]
        try:
            if self.clock() < self._store_down_until:
                raise StoreUnavailable("The key store is unavailable; try again shortly.")
            try:
                return await self._read(key_hash, prefix)
            except StoreUnavailable:
                # Requests in the next second do not wait on a store that just failed.
                self._store_down_until = self.clock() + STORE_RETRY_S
                raise
        except StoreUnavailable:
            # The store cannot answer, so no admin can change a key through it either, and no
            # change was announced (that would have removed the entry): what we knew is still the
            # best answer, for a while.
            if (
                hit is not None and self._entries.get(key_hash) is hit and self.trusted()
                and self.clock() - hit[1] < self.ttl_s + self.stale_s
            ):
                return hit[0]
            raise

    async def _read(self, key_hash: str, prefix: str) -> KeyState:
        loading = self._loading.get(key_hash)
        if loading is None:
            # One read per key however many requests wait for it; the read finishes (and fills
            # the cache) even if the request that started it goes away.
            loading = asyncio.create_task(self._load(key_hash, prefix))
            self._loading[key_hash] = loading
            loading.add_done_callback(partial(self._loaded, key_hash))
        return await asyncio.shield(loading)

    async def _load(self, key_hash: str, prefix: str) -> KeyState:
        generation = self._generation
        self.reads += 1
        state = state_of(await self.store.find_key(key_hash), prefix)
        if generation == self._generation:
            self._put(key_hash, state)
        return state

    def _loaded(self, key_hash: str, task: asyncio.Task[KeyState]) -> None:
        if self._loading.get(key_hash) is task:
            del self._loading[key_hash]
        if not task.cancelled():
            task.exception()  # retrieved here, so a read nobody waits for any more logs nothing

    def _put(self, key_hash: str, state: KeyState) -> None:
        self._entries[key_hash] = (state, self.clock())
        self._entries.move_to_end(key_hash)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def invalidate(self, kind: str, target_id: str | None = None) -> None:
        """Forget a key ("key", id), every key of a team ("team", id), or everything ("all")."""
        self._generation += 1
        # Reads already under way may return what was true before the change: new requests
        # start their own.
        self._loading.clear()
        if kind == "key":
            stale = [h for h, (state, _) in self._entries.items() if state.key_id == target_id]
        elif kind == "team":
            stale = [h for h, (state, _) in self._entries.items() if state.team_id == target_id]
        else:
            self._entries.clear()
            return
        for key_hash in stale:
            del self._entries[key_hash]

    def __len__(self) -> int:
        return len(self._entries)
