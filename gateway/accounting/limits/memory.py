"""The limits in-process: the embedded default, and the fallback when Redis is down (open mode).

The same algorithm as `lua/admit_v1.lua`, `lua/settle_v2.lua` and `lua/renew_v1.lua`, line for
line, over dicts.
The event loop runs each call to completion, which gives the atomicity Lua gives in Redis.
Limits are then per process: with several workers each enforces them on its own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from gateway.accounting.limits.checks import WINDOW_MS, Check, Kind, Outcome, from_fields

EPSILON = 1e-6
# How often (gateway clock) entries nobody needs any more are swept out.
SWEEP_EVERY_MS = 60_000


@dataclass(slots=True)
class _Entry:
    value: float = 0.0
    members: dict[str, int] = field(default_factory=dict)
    # Gateway-clock ms after which the entry says nothing (the TTL of the Redis key); 0: never.
    expires: float = 0.0


class MemoryBackend:
    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._swept = 0

    async def start(self) -> None:
        return None

    def _get(self, key: str, now: int) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and entry.expires and entry.expires <= now:
            del self._entries[key]
            return None
        return entry

    async def admit(self, checks: Sequence[Check], now_ms: int, member: str, lease_ms: int) -> list[Outcome]:
        now = now_ms
        self._sweep(now)
        entries = self._entries
        outcomes: list[Outcome] = []
        # Per check, its entry as found (None: none, or expired and dropped), and a bucket's new TAT.
        found: list[_Entry | None] = []
        fresh: list[float] = []
        all_ok = True
        for check in checks:
            kind, limit, amount = check.kind, check.limit, check.amount
            entry = entries.get(check.key)
            if entry is not None and entry.expires and entry.expires <= now:
                del entries[check.key]
                entry = None
            found.append(entry)
            ok, remaining, reset, retry, new_tat = True, 0, 0, 0, 0.0
            if kind is Kind.RPM or kind is Kind.TPM:
                if limit <= 0:
                    ok, retry = False, WINDOW_MS
                else:
                    interval = WINDOW_MS / limit
                    tat = entry.value if entry is not None else 0.0
                    if tat < now:
                        tat = now
                    new_tat = tat + amount * interval
                    if new_tat - now <= WINDOW_MS + EPSILON:
                        tat = new_tat
                    else:
                        ok, retry = False, math.ceil(new_tat - now - WINDOW_MS)
                    remaining = max(0, math.floor((WINDOW_MS - (tat - now)) / interval + EPSILON))
                    reset = math.ceil(tat - now)
            elif kind is Kind.PARALLEL:
                used = len(entry.members) if entry is not None else 0
                if entry is not None and used + amount > limit:
                    # Only a full set can hold slots whose lease ran out (their holders died).
                    entry.members = {m: until for m, until in entry.members.items() if until > now}
                    used = len(entry.members)
                if used + amount <= limit:
                    remaining = limit - used - amount
                else:
                    ok, remaining, retry = False, max(0, limit - used), 1000
            else:
                spent = entry.value if entry is not None else 0
                if spent < limit:
                    remaining = max(0, int(limit - spent - amount))
                else:
                    ok = False
            fresh.append(new_tat)
            all_ok = all_ok and ok
            outcomes.append(from_fields(Outcome, (ok, remaining, reset, retry)))
        if not all_ok:
            return outcomes
        # Reserve everything. Each entry is the check's as found above: nothing ran in between.
        for check, entry, new_tat in zip(checks, found, fresh, strict=True):
            kind = check.kind
            if kind is Kind.RPM or kind is Kind.TPM:
                if entry is not None:
                    entry.value, entry.expires = new_tat, math.ceil(new_tat) + 1000
                else:
                    entries[check.key] = _Entry(new_tat, expires=math.ceil(new_tat) + 1000)
            elif kind is Kind.PARALLEL:
                if entry is None:
                    entry = entries.setdefault(check.key, _Entry())
                entry.members[member] = now + lease_ms
                entry.expires = now + lease_ms
            elif check.amount:
                if entry is None:
                    entry = entries.setdefault(check.key, _Entry())
                entry.value += check.amount
                if check.ttl_ms > 0:
                    entry.expires = now + check.ttl_ms
        return outcomes

    async def adjust(self, checks: Sequence[Check], deltas: Sequence[int], now_ms: int, member: str) -> list[int]:
        now = now_ms
        entries = self._entries
        spent: list[int] = []
        for check, delta in zip(checks, deltas, strict=True):
            kind = check.kind
            entry = entries.get(check.key)
            if entry is not None and entry.expires and entry.expires <= now:
                del entries[check.key]
                entry = None
            if (kind is Kind.RPM or kind is Kind.TPM) and delta and check.limit > 0:
                tat = entry.value if entry is not None else 0.0
                if delta > 0 or tat > now:
                    new_tat = max(tat, now) + delta * WINDOW_MS / check.limit
                    if new_tat <= now:
                        entries.pop(check.key, None)
                    elif entry is not None:
                        entry.value, entry.expires = new_tat, math.ceil(new_tat) + 1000
                    else:
                        entries[check.key] = _Entry(new_tat, expires=math.ceil(new_tat) + 1000)
            elif kind is Kind.PARALLEL and delta < 0:
                if entry is not None:
                    entry.members.pop(member, None)
            elif kind is Kind.BUDGET:
                if entry is not None:
                    entry.value = max(0.0, entry.value + delta)
                elif delta > 0:
                    entry = _Entry(delta, expires=now + check.ttl_ms if check.ttl_ms > 0 else 0)
                    entries[check.key] = entry
                spent.append(int(entry.value) if entry is not None else 0)
                continue
            spent.append(0)
        return spent

    async def renew(self, slots: Sequence[tuple[str, str]], now_ms: int, lease_ms: int) -> list[str]:
        until = now_ms + lease_ms
        missing: list[str] = []
        for key, member in slots:
            entry = self._get(key, now_ms)
            if entry is None or member not in entry.members:
                missing.append(member)
                continue
            entry.members[member] = max(entry.members[member], until)
            entry.expires = max(entry.expires, until)
        return missing

    async def read(self, key: str, now_ms: int) -> int:
        entry = self._get(key, now_ms)
        return int(entry.value) if entry else 0

    def _sweep(self, now: int) -> None:
        if now - self._swept < SWEEP_EVERY_MS:
            return
        self._swept = now
        self._entries = {k: e for k, e in self._entries.items() if not e.expires or e.expires > now}

    async def close(self) -> None:
        self._entries.clear()
