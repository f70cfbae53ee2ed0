"""Stored responses: what `previous_response_id`, retrieve, delete and `input_items` read.

A response is stored with the input items of its turn (each given an id) and its `response`
object; the conversation behind a `previous_response_id` is the chain of earlier turns, walked in
one recursive query. Every read names an owner: a response belongs to the team of the key that made
it (or to the key itself when it has no team), and anyone else is told it does not exist. Rows past
their retention are invisible at once and deleted by `sweep` (`gateway db maintain`).

It runs on the key store's `Database` (PostgreSQL or the embedded SQLite file), whose adapters
turn driver errors into `StoreUnavailable` (503).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from gateway.core.types import Principal
from gateway.identity.store.sql import Database

JSON = dict[str, Any]
DEFAULT_RETENTION = timedelta(days=30)
MAX_TURNS = 10_000  # a conversation longer than this is cut at its oldest turns
ITEM_PREFIXES = {"message": "msg", "function_call": "fc", "function_call_output": "fco", "reasoning": "rs"}
_COLUMNS = ("id, owner, team_id, key_id, model, deployment, upstream_id, previous_response_id, input_items, "
            "response, created_at, expires_at")


@dataclass(frozen=True, slots=True)
class StoredResponse:
    id: str
    owner: str
    key_id: str
    team_id: str | None
    model: str
    input_items: list[JSON]
    response: JSON
    created_at: datetime
    expires_at: datetime
    previous_response_id: str | None = None
    deployment: str | None = None
    upstream_id: str | None = None


@dataclass(frozen=True, slots=True)
class ItemPage:
    """One page of `GET /v1/responses/{id}/input_items`, in the API's list shape by `body()`."""

    items: list[JSON]
    has_more: bool

    def body(self) -> JSON:
        return {"object": "list", "data": self.items, "first_id": self.items[0]["id"] if self.items else None,
                "last_id": self.items[-1]["id"] if self.items else None, "has_more": self.has_more}


def owner_of(principal: Principal) -> str:
    return f"team:{principal.team_id}" if principal.team_id else f"key:{principal.key_id}"


def with_ids(response_id: str, items: list[JSON]) -> list[JSON]:
    """The items with an id each, as `input_items` lists them; ids the client gave are kept."""
    token = response_id.removeprefix("resp_")
    return [item if isinstance(item.get("id"), str) and item["id"] else
            {"id": f"{ITEM_PREFIXES.get(str(item.get('type')), 'item')}_{token}i{i:04x}", **item}
            for i, item in enumerate(items)]


def _json(value: Any) -> Any:
    # PostgreSQL's codec decodes jsonb; SQLite hands the text back.
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def _record(row: dict[str, Any]) -> StoredResponse:
    return StoredResponse(
        id=row["id"], owner=row["owner"], key_id=row["key_id"], team_id=row["team_id"], model=row["model"],
        input_items=_json(row["input_items"]), response=_json(row["response"]), created_at=row["created_at"],
        expires_at=row["expires_at"], previous_response_id=row["previous_response_id"],
        deployment=row["deployment"], upstream_id=row["upstream_id"],
    )


class ResponseStore:
    def __init__(self, db: Database, retention: timedelta = DEFAULT_RETENTION) -> None:
        self.db = db
        self.retention = retention

    async def put(self, principal: Principal, response: JSON, input_items: list[JSON], created_at: datetime, *,
                  previous_response_id: str | None = None, deployment: str | None = None,
                  upstream_id: str | None = None) -> StoredResponse:
        """Store a finished response made by `principal`; `response["id"]` is its id."""
        record = StoredResponse(
            id=str(response["id"]), owner=owner_of(principal), key_id=principal.key_id, team_id=principal.team_id,
            model=str(response.get("model") or ""), input_items=with_ids(str(response["id"]), input_items),
            response=response, created_at=created_at, expires_at=created_at + self.retention,
            previous_response_id=previous_response_id, deployment=deployment, upstream_id=upstream_id,
        )
        async with self.db.transaction() as tx:
            await tx.execute(
                f"INSERT INTO responses ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                record.id, record.owner, record.team_id, record.key_id, record.model, record.deployment,
                record.upstream_id, record.previous_response_id, record.input_items, record.response,
                record.created_at, record.expires_at,
            )
        return record

    async def get(self, response_id: str, owner: str, now: datetime) -> StoredResponse | None:
        """None when there is no such response, it is another owner's, or it expired."""
        async with self.db.reader() as tx:
            row = await tx.fetchrow(f"SELECT {_COLUMNS} FROM responses WHERE id = $1 AND owner = $2 "
                                    "AND expires_at > $3", response_id, owner, now)
        return None if row is None else _record(row)

    async def delete(self, response_id: str, owner: str, now: datetime) -> bool:
        async with self.db.transaction() as tx:
            row = await tx.fetchrow("DELETE FROM responses WHERE id = $1 AND owner = $2 AND expires_at > $3 "
                                    "RETURNING id", response_id, owner, now)
        return row is not None

    async def conversation(self, response_id: str, owner: str, now: datetime) -> list[JSON] | None:
        """The items a next turn continues from: every turn's input and output, oldest first.

        None when `response_id` itself is not visible to `owner`. A turn deleted or expired in the
        middle of a chain ends the walk there: what came before it is gone with it.
        """
        async with self.db.reader() as tx:
            rows = await tx.fetch(
                "WITH RECURSIVE chain (id, previous_response_id, input_items, response, depth) AS ("
                " SELECT id, previous_response_id, input_items, response, 0 FROM responses"
                " WHERE id = $1 AND owner = $2 AND expires_at > $3"
                " UNION ALL"
                " SELECT r.id, r.previous_response_id, r.input_items, r.response, c.depth + 1"
                " FROM responses r JOIN chain c ON r.id = c.previous_response_id"
                " WHERE r.owner = $2 AND r.expires_at > $3 AND c.depth < $4"
                ") SELECT input_items, response FROM chain ORDER BY depth DESC",
                response_id, owner, now, MAX_TURNS,
            )
        if not rows:
            return None
        items: list[JSON] = []
        for row in rows:
            output = _json(row["response"]).get("output")
            items += _json(row["input_items"]) + (output if isinstance(output, list) else [])
        return items

    async def input_items(self, response_id: str, owner: str, now: datetime, *, after: str | None = None,
                          limit: int = 20, order: str = "desc") -> ItemPage | None:
        """A page of the items the turn took as input, newest first unless `order` is "asc"."""
        record = await self.get(response_id, owner, now)
        if record is None:
            return None
        items = record.input_items if order == "asc" else record.input_items[::-1]
        if after is not None:
            ids = [item.get("id") for item in items]
            items = items[ids.index(after) + 1:] if after in ids else []
        return ItemPage(items[:limit], has_more=len(items) > limit)

    async def sweep(self, now: datetime) -> int:
        """Delete the responses past their retention; how many went."""
        async with self.db.transaction() as tx:
            rows = await tx.fetch("DELETE FROM responses WHERE expires_at <= $1 RETURNING id", now)
        return len(rows)
