"""Parallel slots live as long as their request does, and only a few seconds past a crash.

A slot taken by `admit` carries a lease (`LIMITS_LEASE_S`, seconds): a process killed while
holding slots cannot give them back, so the lease is what frees them. Short leases free them
fast, but a request may run for minutes (a long stream); so while a request lives its process
renews its slots. One `LeaseKeeper` per worker keeps the slots of its requests in flight and,
every third of a lease, renews all of them in one backend call (`Backend.renew`; on Redis one
script call, on a cluster one per hash tag), not one call per request. Two renewals in a row
may fail (Redis away, a stalled event loop) before a live request's slot lapses.

A slot that lapsed anyway (renewals failed for a whole lease) is not brought back: the request
runs on, uncounted, and `lapsed` says how often that happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from gateway.accounting.limits.checks import Backend, Unavailable

log = logging.getLogger("gateway.limits")

# Renewals per lease: one may fail and the next still arrives in time.
RENEWALS_PER_LEASE = 3


class LeaseKeeper:
    def __init__(self, lease_s: float, clock: Callable[[], float]) -> None:
        self.lease_s = lease_s
        self.clock = clock
        # Per backend (Redis, or the in-process fallback): reservation id -> its slots' set keys.
        self._held: dict[Backend, dict[str, tuple[str, ...]]] = {}
        self._task: asyncio.Task[None] | None = None
        self.renewals = 0
        self.failures = 0
        self.lapsed = 0

    @property
    def interval_s(self) -> float:
        return self.lease_s / RENEWALS_PER_LEASE

    @property
    def lease_ms(self) -> int:
        return int(self.lease_s * 1000)

    def hold(self, backend: Backend, keys: tuple[str, ...], member: str) -> None:
        """Renew the parallel slots (their sets' keys) of reservation `member` until it is released."""
        if keys:
            self._held.setdefault(backend, {})[member] = keys

    def release(self, backend: Backend, member: str) -> None:
        held = self._held.get(backend)
        if held is not None:
            held.pop(member, None)

    def held(self) -> int:
        return sum(len(keys) for held in self._held.values() for keys in held.values())

    async def renew(self) -> int:
        """Renew every slot held, one call per backend; returns how many were renewed."""
        now_ms = int(self.clock() * 1000)
        renewed = 0
        for backend, held in list(self._held.items()):
            slots = [(key, member) for member, keys in held.items() for key in keys]
            if not slots:
                continue
            try:
                missing = await backend.renew(slots, now_ms, self.lease_ms)
            except Unavailable:
                # The slots keep the lease they have; the next renewal may still reach them.
                self.failures += 1
                continue
            self.renewals += 1
            renewed += len(slots) - len(missing)
            # A slot settled while the call was out is gone, not lapsed.
            lapsed = sum(1 for member in missing if member in held)
            if lapsed:
                self.lapsed += lapsed
                log.warning("limits: %d parallel slot(s) lapsed before their requests ended", lapsed)
        return renewed

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="limits-lease-keeper")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.renew()
            except Exception:
                # A bug here must not end the renewals: the slots of every later request depend on them.
                log.exception("limits: renewing parallel-slot leases failed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
