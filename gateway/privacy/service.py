"""Export and erase one subject's data across the ledger, stored responses and the cache.

An export is JSON Lines: a manifest first (what was searched, how many records each source gave,
what the gateway does not keep), then one line per record, `{"source": ..., "record": {...}}`.
An erasure runs every statement in one database transaction, then purges the cache, and writes
one audit entry with the counts and a keyed pseudonym of the subject, never the id itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from gateway.accounting.ledger import SPILL_DIR
from gateway.config.settings import Settings
from gateway.db.connect import postgres_dsn
from gateway.db.redis import open_redis
from gateway.identity.store.sql import Database
from gateway.plugins.cache import attribution
from gateway.privacy.sources import PAGE, erase_statements, first_key, plain, sources
from gateway.privacy.subject import Subject, replacement_key_id

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

# What the manifest says about places the gateway does not search, so nobody assumes it did.
NOT_KEPT = {
    "request_logs": "The gateway keeps no request log store: its log lines go to stdout (they carry the key's "
                    "prefix and team, never the end user; the prompt only with GATEWAY_LOG_PROMPTS=true); erase "
                    "them where they are shipped.",
    "in_process_cache": "Answers cached in a worker's memory (no redis_url) cannot be attributed; they "
                        "expire within the cache's ttl_s.",
    "semantic_cache": "The semantic cache keeps its answers in each worker's memory, unattributed; they "
                      "expire within its ttl_s.",
    "ledger_spill": "Ledger rows waiting in spill files (the database was away) are written later; run "
                    "erase again once `pending_spill_files` is 0.",
}


@dataclass(slots=True)
class Erasure:
    subject_ref: str
    counts: dict[str, int] = field(default_factory=dict)
    pending_spill_files: int = 0
    replacement_key_id: str | None = None

    def record(self) -> dict[str, Any]:
        return {"object": "privacy.erasure", **asdict(self)}


class Privacy:
    def __init__(self, db: Database, *, postgres: bool, secret: bytes,
                 open_redis: Callable[[], Redis | RedisCluster] | None = None, redis_prefix: str = "gw",
                 spill_dir: Path | None = None) -> None:
        self.db = db
        self.postgres = postgres
        self.secret = secret
        # A client for each action (they are rare), closed after it: nothing to keep open.
        self.open_redis = open_redis
        self.redis_prefix = redis_prefix
        self.spill_dir = spill_dir

    async def export(self, subject: Subject, actor: str) -> AsyncIterator[bytes]:
        """The manifest line, then every record; counted first so the manifest can say how many."""
        counts = {source.name: 0 for source in sources(subject, self.postgres)}
        async for name, _ in self._records(subject):
            counts[name] += 1
        cached = await self._cached(subject)
        counts["cache"] = len(cached)
        await self._audit(actor, "privacy.export", subject, {"counts": counts})
        yield _line({"object": "privacy.manifest", "subject": {"kind": subject.kind, "id": subject.value},
                     "generated_at": datetime.now(UTC).isoformat(), "counts": counts, "not_searched": NOT_KEPT})
        async for name, record in self._records(subject):
            yield _line({"source": name, "record": record})
        for key, value in cached:
            yield _line({"source": "cache", "record": {"key": key, **orjson.loads(value)}})

    async def erase(self, subject: Subject, actor: str) -> Erasure:
        erasure = Erasure(subject.reference(self.secret))
        replacement = replacement_key_id() if subject.kind == "key" else None
        async with self.db.transaction() as tx:
            for statement in erase_statements(subject, self.postgres):
                args = (subject.value, replacement) if statement.with_replacement else (subject.value,)
                erasure.counts[statement.name] = len(await tx.fetch(statement.sql, *args))
        erasure.replacement_key_id = replacement
        erasure.counts["cache"] = 0
        if self.open_redis is not None:
            redis = self.open_redis()
            try:
                erasure.counts["cache"] = await attribution.purge(redis, self.redis_prefix,
                                                                  f"{subject.kind}:{subject.value}")
            finally:
                await redis.aclose()
        if self.spill_dir is not None and self.spill_dir.is_dir():
            erasure.pending_spill_files = sum(1 for path in self.spill_dir.iterdir() if path.is_file())
        await self._audit(actor, "privacy.erase", subject, {"counts": erasure.counts,
                                                            "replacement_key_id": replacement})
        return erasure

    async def _records(self, subject: Subject) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        for source in sources(subject, self.postgres):
            after = first_key(source, self.postgres)
            while True:
                async with self.db.reader() as tx:
                    rows = await tx.fetch(source.select, subject.value, *after, PAGE)
                for row in rows:
                    yield source.name, plain(row)
                if len(rows) < PAGE:
                    break
                after = tuple(rows[-1][column] for column in source.order_key)

    async def _cached(self, subject: Subject) -> list[tuple[str, bytes]]:
        if self.open_redis is None:
            return []
        redis = self.open_redis()
        try:
            return await attribution.attributed(redis, self.redis_prefix, f"{subject.kind}:{subject.value}")
        finally:
            await redis.aclose()

    async def _audit(self, actor: str, action: str, subject: Subject, details: dict[str, Any]) -> None:
        async with self.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO audit_log (at, actor, action, target_type, target_id, details) "
                "VALUES ($1, $2, $3, $4, $5, $6)",
                datetime.now(UTC), actor, action, "privacy_subject", subject.reference(self.secret), details,
            )


def _line(value: dict[str, Any]) -> bytes:
    return orjson.dumps(value) + b"\n"


def build_privacy(settings: Settings, db: Database) -> Privacy:
    """The service on the gateway's own database, Redis and spill directory, keyed by the master key."""
    if settings.master_key is None:
        raise ValueError("privacy actions need the master key (GATEWAY_MASTER_KEY): it keys the audit pseudonyms")
    return Privacy(
        db, postgres=postgres_dsn(settings) is not None, secret=settings.master_key.get_secret_value().encode(),
        open_redis=(lambda: open_redis(settings)) if settings.redis_url is not None else None,
        redis_prefix=settings.redis_prefix, spill_dir=Path(settings.data_dir) / SPILL_DIR,
    )
