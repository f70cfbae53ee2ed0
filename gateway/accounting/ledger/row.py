"""The ledger row: one per finished request, built from its `RequestRecord`.

Building it is the only ledger work on the request path, so it copies plain values and does no
formatting; conversions for a database or the spill file happen in the writer.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from time import perf_counter, time_ns
from typing import Any

import orjson

from gateway.core.fingerprint import fingerprint
from gateway.pipeline.record import RequestRecord

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Client-chosen text kept in a row (the model asked for, a wildcard's served name) is clipped to
# this: it is indexed, and a btree entry past about 2.7 kB is refused by PostgreSQL.
MAX_TEXT_CHARS = 256
US_PER_DAY = 86_400_000_000
ZERO = Decimal(0)


@dataclass(slots=True)
class LedgerRow:
    # When the request arrived: microseconds since the Unix epoch, UTC.
    ts_us: int
    request_id: str
    endpoint: str
    key_id: str | None = None
    key_prefix: str | None = None
    team_id: str | None = None
    end_user: str | None = None
    requested_model: str | None = None
    served_model: str | None = None
    provider: str | None = None
    deployment: str | None = None
    attempts: int = 0
    fallback: bool = False
    stream: bool = False
    status: int = 0
    error_type: str | None = None
    cancelled: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    tokens_estimated: bool = False
    # None: tokens were used but no price is known for the deployment (a counted warning).
    cost_usd: Decimal | None = ZERO
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    upstream_ms: float | None = None
    # What the gateway itself added: total latency minus the upstream's.
    overhead_ms: float = 0.0
    cache_hit: bool = False
    tags: dict[str, str] = field(default_factory=dict)
    # A `complexity` model's tier for this request and the score that chose it (gateway/routing/complexity.py).
    complexity_tier: str | None = None
    complexity_score: float | None = None
    # The prompt template version the request was rendered from (gateway/prompts/).
    template_id: str | None = None
    template_version: int | None = None
    # A hash of what makes the answer (gateway/core/fingerprint.py), never the body: exact repeats
    # are counted from it. None for an upload (its file is not in the body) or a body-less request.
    fingerprint: str | None = None

    @classmethod
    def from_record(cls, record: RequestRecord) -> LedgerRow:
        # The one piece of the ledger on the request path: arguments are positional, in field
        # order, because that measured 2-3x faster than keywords for a row this wide.
        now = perf_counter()
        started, finished = record.started, record.finished
        latency = (finished - started) * 1000.0
        upstream: float | None = None
        overhead = latency
        if record.upstream_started is not None:
            # A stream's upstream time runs to its last byte; a unary call's to its full answer.
            end = finished if record.stream or record.first_byte_at is None else record.first_byte_at
            spent = max(0.0, (end - record.upstream_started) * 1000.0)
            upstream, overhead = spent, latency - spent
        deployment, usage, model, tags = record.deployment, record.usage, record.model, record.tags
        return cls(
            # perf_counter is the request path's clock; the wall clock is read once, here.
            time_ns() // 1000 - int((now - started) * 1_000_000),
            record.request_id,
            record.endpoint_name,
            record.key_id,
            record.key_prefix,
            record.team_id,
            storable(record.user) if record.user else None,
            storable(model) if model else None,
            storable(deployment.model or model) if deployment else None,
            deployment.provider if deployment else None,
            deployment.id if deployment else None,
            record.attempts,
            record.fallback,
            record.stream,
            record.status,
            record.error_type,
            record.cancelled,
            usage.prompt_tokens if usage else 0,
            usage.completion_tokens if usage else 0,
            usage.cached_tokens if usage else 0,
            usage.estimated if usage else False,
            # Nothing used, nothing owed: a refused or failed call costs zero, not "unknown".
            record.cost_usd if usage else ZERO,
            latency,
            (record.first_byte_at - started) * 1000.0 if record.stream and record.first_byte_at else None,
            upstream,
            overhead,
            record.cache_hit,
            tags if isinstance(tags, dict) else dict(tags),  # the proxy's is a dict: not copied
            record.complexity_tier,
            record.complexity_score,
            record.template_id,
            record.template_version,
            # The one computed value: about 1 µs per KiB of body (measured: 1.4 µs for 300 bytes, 104 µs for
            # 100 KiB).
            fingerprint(record.endpoint.value, model, record.body) if record.body and model and not record.uploaded
            else None,
        )

    @property
    def ts(self) -> datetime:
        return EPOCH + timedelta(microseconds=self.ts_us)

    @property
    def day(self) -> date:
        return date(1970, 1, 1) + timedelta(days=self.ts_us // US_PER_DAY)

    @property
    def unpriced(self) -> bool:
        return self.cost_usd is None

    @property
    def is_error(self) -> bool:
        # A client that went away is not an error of the gateway's or the upstream's.
        return self.error_type is not None or (self.status >= 400 and self.status != 499)

    def to_json(self) -> bytes:
        """One line of the spill file: named fields, so old files stay readable as columns are added."""
        return orjson.dumps(self, default=_json_default, option=orjson.OPT_APPEND_NEWLINE)

    @classmethod
    def from_json(cls, line: bytes) -> LedgerRow:
        raw: dict[str, Any] = orjson.loads(line)
        known = {k: v for k, v in raw.items() if k in _FIELD_NAMES}
        cost = known.get("cost_usd")
        known["cost_usd"] = Decimal(cost) if cost is not None else None
        return cls(**known)


def storable(text: str) -> str:
    """`text` as PostgreSQL can store it: clipped, no NUL, valid UTF-8 (no lone surrogates).

    A client chooses these strings; one that the database refuses would otherwise cost a
    whole batch of other tenants' rows, or stall the writer."""
    if len(text) > MAX_TEXT_CHARS:
        text = text[:MAX_TEXT_CHARS]
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            text = text.encode("utf-8", "replace").decode()
    return text


# The columns of `ledger_requests`, in table order; `ts` is derived from ts_us.
COLUMNS: tuple[str, ...] = (
    "ts", "request_id", "endpoint", "key_id", "key_prefix", "team_id", "end_user", "requested_model",
    "served_model", "provider", "deployment", "attempts", "fallback", "stream", "status", "error_type",
    "cancelled", "prompt_tokens", "completion_tokens", "cached_tokens", "tokens_estimated", "cost_usd",
    "latency_ms", "ttft_ms", "upstream_ms", "overhead_ms", "cache_hit", "tags", "complexity_tier",
    "complexity_score", "template_id", "template_version", "fingerprint",
)  # fmt: skip
_FIELD_NAMES = frozenset(f.name for f in fields(LedgerRow))


def values(row: LedgerRow, ts: Any, cost: Any, tags: Any) -> tuple[Any, ...]:
    """The row in COLUMNS order, with ts, cost and tags as the database at hand takes them."""
    return (
        ts, row.request_id, row.endpoint, row.key_id, row.key_prefix, row.team_id, row.end_user,
        row.requested_model, row.served_model, row.provider, row.deployment, row.attempts, row.fallback,
        row.stream, row.status, row.error_type, row.cancelled, row.prompt_tokens, row.completion_tokens,
        row.cached_tokens, row.tokens_estimated, cost, row.latency_ms, row.ttft_ms, row.upstream_ms,
        row.overhead_ms, row.cache_hit, tags, row.complexity_tier, row.complexity_score,
        row.template_id, row.template_version, row.fingerprint,
    )  # fmt: skip


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(type(value).__name__)
