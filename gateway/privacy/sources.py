"""The statements that find and erase one subject's rows, per table and per database.

They run on the key store's `Database` (`$n` placeholders on both PostgreSQL and SQLite; the ledger
lives in the same database). Each source is read page by page on a key that never changes under an
erasure, so an export of millions of rows holds one page in memory.

Erasing an end user clears the ledger's `end_user` (and any tag whose value is the id) instead of
deleting rows: the spend stays counted, the rollups (which never hold the end user) stay equal to
their rows, and the person is no longer in them. Erasing a key replaces its id with a fresh
`erased-...` id in the rows and in the rollup, for the same reason. Stored responses are deleted:
they are the conversation itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson

from gateway.privacy.subject import Subject

PAGE = 1000
# Columns SQLite stores as 0/1 that are booleans on PostgreSQL.
_BOOLEANS = frozenset({"fallback", "stream", "cancelled", "tokens_estimated", "cache_hit"})
_JSON_TEXT = frozenset({"tags", "input_items", "response"})


@dataclass(frozen=True, slots=True)
class Source:
    """One table read for a subject: `select` takes the subject's value, the page's last key and a limit."""

    name: str
    select: str
    order_key: tuple[str, ...]


def ledger_filter(subject: Subject) -> str:
    return "end_user = $1" if subject.kind == "user" else "key_id = $1"


def sources(subject: Subject, postgres: bool) -> list[Source]:
    found = [Source("ledger", f"SELECT * FROM ledger_requests WHERE {ledger_filter(subject)} "
                              "AND (ts, request_id) > ($2, $3) ORDER BY ts, request_id LIMIT $4", ("ts", "request_id"))]
    if subject.kind == "key":
        found.append(Source("ledger_daily", "SELECT * FROM ledger_daily WHERE key_id = $1 AND (day, model, provider, "
                                            "team_id) > ($2, $3, $4, $5) ORDER BY day, model, provider, team_id "
                                            "LIMIT $6", ("day", "model", "provider", "team_id")))
    found.append(Source("responses", f"SELECT * FROM responses WHERE {responses_filter(subject, postgres)} AND id > $2 "
                                     "ORDER BY id LIMIT $3", ("id",)))
    return found


def responses_filter(subject: Subject, postgres: bool) -> str:
    if subject.kind == "key":
        return "key_id = $1"
    if postgres:
        return "(response->>'user' = $1 OR response->>'safety_identifier' = $1)"
    return "(json_extract(response, '$.user') = $1 OR json_extract(response, '$.safety_identifier') = $1)"


def first_key(source: Source, postgres: bool) -> tuple[Any, ...]:
    """A key below every row's: the epoch as a time or a day on PostgreSQL, the empty string as text."""
    if not postgres:
        return ("",) * len(source.order_key)
    lowest: dict[str, Any] = {"ts": datetime(1970, 1, 1, tzinfo=UTC), "day": date(1970, 1, 1)}
    return tuple(lowest.get(column, "") for column in source.order_key)


def plain(record: dict[str, Any]) -> dict[str, Any]:
    """A row as JSON-ready values, the same from either database: times ISO-8601, money a decimal string."""
    out: dict[str, Any] = {}
    for name, value in record.items():
        if isinstance(value, datetime | date):
            value = value.isoformat()
        elif isinstance(value, Decimal):
            value = str(value)
        elif name in _BOOLEANS and isinstance(value, int):
            value = bool(value)
        elif name in _JSON_TEXT and isinstance(value, str | bytes):
            value = orjson.loads(value)
        out[name] = value
    return out


@dataclass(frozen=True, slots=True)
class Statement:
    """One erasing statement; `RETURNING 1` on each, so the count is the rows it touched."""

    name: str
    sql: str
    with_replacement: bool = False


def erase_statements(subject: Subject, postgres: bool) -> list[Statement]:
    if subject.kind == "key":
        statements = [
            Statement("ledger", "UPDATE ledger_requests SET key_id = $2, key_prefix = NULL WHERE key_id = $1 "
                                "RETURNING 1", with_replacement=True),
            Statement("ledger_daily", "UPDATE ledger_daily SET key_id = $2 WHERE key_id = $1 RETURNING 1",
                      with_replacement=True),
        ]
    else:
        statements = [
            Statement("ledger", "UPDATE ledger_requests SET end_user = NULL WHERE end_user = $1 RETURNING 1"),
            Statement("ledger_tags", _erase_tags(postgres)),
        ]
    statements.append(Statement("responses", f"DELETE FROM responses WHERE {responses_filter(subject, postgres)} "
                                             "RETURNING 1"))
    return statements


def _erase_tags(postgres: bool) -> str:
    # A client may have tagged requests with the id too (x-gateway-tags: user=...): those tags go.
    if postgres:
        return ("UPDATE ledger_requests SET tags = (SELECT coalesce(jsonb_object_agg(e.key, e.value), '{}'::jsonb) "
                "FROM jsonb_each(tags) e WHERE e.value <> to_jsonb($1::text)) "
                "WHERE EXISTS (SELECT 1 FROM jsonb_each_text(tags) e WHERE e.value = $1) RETURNING 1")
    return ("UPDATE ledger_requests SET tags = (SELECT coalesce(json_group_object(e.key, e.value), '{}') "
            "FROM json_each(ledger_requests.tags) e WHERE e.value <> $1) "
            "WHERE EXISTS (SELECT 1 FROM json_each(ledger_requests.tags) e WHERE e.value = $1) RETURNING 1")
