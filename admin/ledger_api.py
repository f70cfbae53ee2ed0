"""Spend and usage from the cost ledger, under /admin/api/ledger/.

    GET spend      totals from the per-day rollup over [start, end] (days, inclusive), grouped
                   by any of team, key, model, provider, day; filtered by team, key, model, provider
    GET requests   raw rows, newest first, filtered by team, key, model, status and a time range,
                   keyset-paginated (`next_cursor` -> `cursor`)
    GET status     the writer's counters: queued, spilled, replayed, unpriced warnings, ...

`format=csv` turns spend or requests into CSV; a requests export streams every matching row.
Money is a decimal string (never a float); a null cost means no price was known.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from admin.inputs import query_int, query_str
from gateway.accounting.ledger.queries import (
    GROUPS,
    MAX_PAGE,
    Cursor,
    LedgerQueries,
    QueryError,
    RowQuery,
    SpendGroup,
    SpendQuery,
    Totals,
)
from gateway.accounting.ledger.row import COLUMNS, LedgerRow
from gateway.accounting.ledger.writer import Ledger
from gateway.core.errors import InvalidRequest
from gateway.edge.responses import json_response

PREFIX = "/admin/api/ledger"
DEFAULT_DAYS = 30
MAX_RANGE_DAYS = 3660
CSV_CHUNK = 1000
TOTAL_FIELDS = tuple(Totals.__dataclass_fields__)

# The admin API's own check (AdminApi.authorize: the master key or an admin key); raises a
# GatewayError (401/403) for anyone else.
Authorize = Callable[[Request], Awaitable[object]]


class LedgerApi:
    def __init__(self, queries: LedgerQueries, ledger: Ledger | None, authorize: Authorize) -> None:
        self.queries = queries
        self.ledger = ledger
        self.authorize = authorize

    async def spend(self, request: Request) -> Response:
        await self.authorize(request)
        end = _day(request, "end") or datetime.now(UTC).date()
        start = _day(request, "start") or end - timedelta(days=DEFAULT_DAYS - 1)
        _check_range(start, end)
        query = SpendQuery(
            start=start,
            end=end,
            group_by=_group_by(request),
            team=query_str(request, "team", 128),
            key=query_str(request, "key", 128),
            model=query_str(request, "model", 256),
            provider=query_str(request, "provider", 64),
        )
        groups = await self.queries.spend(query)
        if _wants_csv(request):
            return _csv_response(_spend_csv(query, groups), f"spend-{start}-{end}.csv")
        total = Totals()
        for group in groups:
            total.add(group.totals)
        return json_response({
            "object": "spend",
            "start": start.isoformat(),
            "end": end.isoformat(),
            "group_by": list(query.group_by),
            "data": [{**group.key, **_totals(group.totals)} for group in groups],
            "total": _totals(total),
        })

    async def requests(self, request: Request) -> Response:
        await self.authorize(request)
        query = _row_query(request)
        if _wants_csv(request):
            return StreamingResponse(
                _rows_csv(self.queries, query), media_type="text/csv; charset=utf-8",
                headers={"content-disposition": 'attachment; filename="requests.csv"'},
            )  # fmt: skip
        page = await self.queries.rows(query)
        return json_response({
            "object": "list",
            "data": [row_record(row) for row in page.rows],
            "has_more": page.next is not None,
            "next_cursor": page.next.encode() if page.next else None,
        })

    async def status(self, request: Request) -> Response:
        await self.authorize(request)
        return json_response({"object": "ledger_status", "enabled": self.ledger is not None,
                              **(self.ledger.status() if self.ledger else {})})  # fmt: skip


def ledger_routes(api: LedgerApi) -> list[Route]:
    return [
        Route(f"{PREFIX}/spend", api.spend, methods=["GET"]),
        Route(f"{PREFIX}/requests", api.requests, methods=["GET"]),
        Route(f"{PREFIX}/status", api.status, methods=["GET"]),
    ]


def row_record(row: LedgerRow) -> dict[str, Any]:
    record = asdict(row)
    del record["ts_us"]
    cost = record.pop("cost_usd")
    return {"ts": row.ts.isoformat(timespec="microseconds"), **record,
            "cost_usd": str(cost) if cost is not None else None}  # fmt: skip


def _totals(totals: Totals) -> dict[str, Any]:
    record = asdict(totals)
    record["cost_usd"] = str(totals.cost_usd)
    return record


def _row_query(request: Request) -> RowQuery:
    end = _instant(request, "end") or datetime.now(UTC)
    start = _instant(request, "start") or end - timedelta(days=DEFAULT_DAYS)
    _check_range(start.date(), end.date())
    cursor = query_str(request, "cursor", 1024)
    try:
        after = Cursor.decode(cursor) if cursor else None
    except QueryError as exc:
        raise InvalidRequest(f"Invalid value for 'cursor': {exc}.", param="cursor", code="invalid_value") from None
    status = query_int(request, "status", 0, 100, 599) or None
    return RowQuery(
        start=start,
        end=end,
        team=query_str(request, "team", 128),
        key=query_str(request, "key", 128),
        model=query_str(request, "model", 256),
        status=status,
        limit=query_int(request, "limit", 100, 1, MAX_PAGE),
        after=after,
    )


def _group_by(request: Request) -> tuple[str, ...]:
    raw = request.query_params.get("group_by")
    if not raw:
        return ()
    names = tuple(dict.fromkeys(name.strip() for name in raw.split(",")))
    unknown = [name for name in names if name not in GROUPS]
    if unknown:
        raise InvalidRequest(
            f"Invalid value for 'group_by': {unknown[0]!r}; use any of {', '.join(GROUPS)}, comma-separated.",
            param="group_by", code="invalid_value",
        )  # fmt: skip
    return names


def _day(request: Request, name: str) -> date | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidRequest(f"Invalid value for '{name}': a date, YYYY-MM-DD.", param=name,
                             code="invalid_value") from None  # fmt: skip


def _instant(request: Request, name: str) -> datetime | None:
    """An ISO-8601 time (UTC if it names no offset) or a date (its midnight, UTC)."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw) if "T" in raw or " " in raw else datetime.combine(
            date.fromisoformat(raw), time())
    except ValueError:
        raise InvalidRequest(f"Invalid value for '{name}': an ISO-8601 time or date.", param=name,
                             code="invalid_value") from None  # fmt: skip
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _check_range(start: date, end: date) -> None:
    if start > end:
        raise InvalidRequest("'start' must not be after 'end'.", param="start", code="invalid_value")
    if (end - start).days > MAX_RANGE_DAYS:
        raise InvalidRequest(f"The range may span at most {MAX_RANGE_DAYS} days.", param="start",
                             code="invalid_value")  # fmt: skip


def _wants_csv(request: Request) -> bool:
    fmt = request.query_params.get("format", "json")
    if fmt not in ("json", "csv"):
        raise InvalidRequest("Invalid value for 'format': json or csv.", param="format", code="invalid_value")
    return fmt == "csv"


def _csv_line(values: list[Any]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(["" if v is None else v for v in values])
    return out.getvalue()


def _spend_csv(query: SpendQuery, groups: list[SpendGroup]) -> str:
    lines = [_csv_line([*query.group_by, *TOTAL_FIELDS])]
    for group in groups:
        totals = _totals(group.totals)
        lines.append(_csv_line([*(group.key[g] for g in query.group_by), *(totals[f] for f in TOTAL_FIELDS)]))
    return "".join(lines)


def _csv_response(text: str, filename: str) -> Response:
    return Response(text, media_type="text/csv; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="{filename}"'})  # fmt: skip


async def _rows_csv(queries: LedgerQueries, query: RowQuery) -> AsyncIterator[str]:
    yield _csv_line(list(COLUMNS))
    lines: list[str] = []
    async for row in queries.stream_rows(query):
        lines.append(_csv_line(_csv_values(row)))
        if len(lines) >= CSV_CHUNK:
            yield "".join(lines)
            lines = []
    yield "".join(lines)


def _csv_values(row: LedgerRow) -> list[Any]:
    record = row_record(row)
    record["tags"] = ";".join(f"{k}={v}" for k, v in row.tags.items())
    return [record[column] for column in COLUMNS]
