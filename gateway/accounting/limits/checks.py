"""What a limiter backend is asked: one `Check` per limit that applies, answered by an `Outcome`.

Both backends (Redis through `lua/admit_v1.lua`, and `memory.py` in-process) implement the same
algorithm over these; the contract tests in tests/accounting/limits/ hold them to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import NamedTuple, Protocol

# Requests and tokens are limited per minute.
WINDOW_MS = 60_000
# Limits and amounts are capped here: Lua numbers are doubles, exact up to 2**53, and a request
# asking for absurd max_tokens must not push a counter past what INCRBY accepts.
MAX_AMOUNT = 2**53 - 1


class Kind(StrEnum):
    RPM = "r"
    TPM = "t"
    PARALLEL = "p"
    BUDGET = "b"


# NamedTuples, not frozen dataclasses: a request builds six of each, and a frozen dataclass
# costs two to three times as much to make (object.__setattr__ per field).
class Check(NamedTuple):
    kind: Kind
    key: str
    # Requests or tokens per minute, parallel slots, or micro-USD per budget period.
    limit: int
    # What this request reserves: 1 request, the estimated tokens, 1 slot, the estimated micro-USD.
    amount: int
    # Budget counters: how long the period's counter must live; 0 for no expiry.
    ttl_ms: int = 0

    @property
    def tag(self) -> str:
        return hash_tag(self.key)


def hash_tag(key: str) -> str:
    """A counter's hash tag: counters with equal tags share a Redis Cluster slot."""
    return key[: key.index("}") + 1]


# Makes a Check or an Outcome from a tuple of its fields, skipping the Python-level __new__ that
# NamedTuple generates: the per-request ones are made in the limiter's hottest loops.
from_fields = tuple.__new__


class Outcome(NamedTuple):
    ok: bool
    # What is left after this request (or, when refused, before it).
    remaining: int
    # Until the bucket is full again (RPM, TPM).
    reset_ms: int
    # When refused: until this check could pass.
    retry_ms: int


class Unavailable(Exception):
    """The backend could not answer (Redis unreachable, timed out, or failing).

    `down` False: one slow moment on a connection that was answering (a first stall); the
    requests it held fail, but the limiter does not switch to its failure mode for it."""

    def __init__(self, reason: str, *, down: bool = True) -> None:
        super().__init__(reason)
        self.down = down


class Backend(Protocol):
    async def start(self) -> None:
        """Get ready ahead of the first request (connect, load scripts); may raise `Unavailable`."""
        ...

    async def admit(self, checks: Sequence[Check], now_ms: int, member: str, lease_ms: int) -> list[Outcome]:
        """All checks pass and are reserved together, or nothing is reserved."""
        ...

    async def adjust(self, checks: Sequence[Check], deltas: Sequence[int], now_ms: int, member: str) -> list[int]:
        """Apply what was really used (or undo a reservation): one delta per check. Returns, per
        check, a budget's counter after the change (micro-USD spent, reservations included), 0 for
        the other kinds."""
        ...

    async def renew(self, slots: Sequence[tuple[str, str]], now_ms: int, lease_ms: int) -> list[str]:
        """Extend to now + lease the parallel slots (set key, reservation id) still held; a slot
        already given back or pruned stays gone. Returns the reservation ids of the slots not
        found, one per slot."""
        ...

    async def read(self, key: str, now_ms: int) -> int:
        """A budget counter's value (micro-USD spent, reservations included); 0 when absent."""
        ...

    async def close(self) -> None: ...
