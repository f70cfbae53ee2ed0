"""Who sends an alert: the first to claim it. A claim is atomic across workers, replicas and restarts.

With Redis configured a claim is a `SET NX` key that expires after the period; in the embedded
default it is a file created with O_EXCL in the data directory, which all workers of the machine
share and which survives a restart.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from pathlib import Path
from typing import Any, Protocol

# A claim outlives its period by this much, so that clocks a little apart agree on it.
GRACE_S = 86_400
# A budget that never resets keeps its claims this long.
FOREVER_S = 400 * 86_400


def digest(key: str) -> str:
    """Keys carry ids from the outside; their digest is a safe file name and Redis key."""
    return hashlib.sha256(key.encode()).hexdigest()[:40]


class Claims(Protocol):
    async def claim(self, key: str, until: float | None) -> bool:
        """True for the first caller for `key` until Unix time `until` (+ grace); None: no end."""
        ...

    async def release(self, key: str) -> None:
        """Give a claim back (its alert could not be delivered), so a later crossing tries again."""
        ...


def _expiry(until: float | None) -> float:
    return (until if until is not None else time.time() + FOREVER_S) + GRACE_S


class MemoryClaims:
    """For a single process (and tests)."""

    def __init__(self) -> None:
        self._held: dict[str, float] = {}

    async def claim(self, key: str, until: float | None) -> bool:
        now = time.time()
        expiry = self._held.get(key)
        if expiry is not None and expiry > now:
            return False
        self._held[key] = _expiry(until)
        return True

    async def release(self, key: str) -> None:
        self._held.pop(key, None)


class FileClaims:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def claim(self, key: str, until: float | None) -> bool:
        return await asyncio.to_thread(self._claim, key, _expiry(until))

    def _claim(self, key: str, expiry: float) -> bool:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / digest(key)
        for _ in range(2):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                if self._expired(path):
                    path.unlink(missing_ok=True)
                    continue
                return False
            with os.fdopen(fd, "w") as f:
                f.write(f"{expiry:.0f}\n")
            return True
        return False

    async def release(self, key: str) -> None:
        await asyncio.to_thread((self.directory / digest(key)).unlink, missing_ok=True)

    def prune(self) -> None:
        """Forget claims whose period is long over."""
        if not self.directory.is_dir():
            return
        for path in self.directory.iterdir():
            if path.is_file() and self._expired(path):
                path.unlink(missing_ok=True)

    @staticmethod
    def _expired(path: Path) -> bool:
        try:
            return float(path.read_text().strip() or 0) < time.time()
        except (OSError, ValueError):
            return False


class RedisClaims:
    def __init__(self, redis: Any, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    def _name(self, key: str) -> str:
        return f"{self.prefix}:alert:{digest(key)}"

    async def claim(self, key: str, until: float | None) -> bool:
        return bool(await self.redis.set(self._name(key), b"1", nx=True, exat=int(_expiry(until))))

    async def release(self, key: str) -> None:
        await self.redis.delete(self._name(key))
