"""Spend and usage from the cost ledger, under /admin/api/ledger/.

    GET spend      totals from the per-day rollup over [start, end] (days, inclusive), grouped
                   by any of team, key, model, provider, day; filtered by team, key, model, provider,
                   and by lists of teams or keys (a page's worth in one query)
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
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from admin import params
from admin.api import by_method
from gateway.accounting.ledger.queries import LedgerQueries, RowQuery, SpendGroup, SpendQuery
from gateway.accounting.ledger.rollup import Totals
from gateway.accounting.ledger.row import COLUMNS, LedgerRow
from gateway.accounting.ledger.writer import Ledger
from gateway.core.errors import InvalidRequest
from gateway.edge.responses import json_response

PREFIX = "/admin/api/ledger"
DEFAULT_DAYS = 30
MAX_RANGE_DAYS = 3660
CSV_CHUNK = 1000
TOTAL_FIELDS = tuple(Totals.__dataclass_fields__)
T = TypeVar("T", date, datetime)

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
        end = params.LAST_DAY.get(request, datetime.now(UTC).date())
        start = params.FIRST_DAY.get(request, _back(end, timedelta(days=DEFAULT_DAYS - 1)))
        _check_range(start, end)
        query = SpendQuery(
            start=start,
            end=end,
            group_by=params.GROUP_BY.get(request, ()),
            team=params.TEAM.read(request),
            key=params.KEY.read(request),
            teams=params.TEAMS.get(request, ()),
            keys=params.KEYS.get(request, ()),
            model=params.MODEL.read(request),
            provider=params.PROVIDER.read(request),
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
    return [by_method(f"{PREFIX}/spend", {"GET": api.spend}), by_method(f"{PREFIX}/requests", {"GET": api.requests}),
            by_method(f"{PREFIX}/status", {"GET": api.status})]


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
    end = params.UNTIL.get(request, datetime.now(UTC))
    start = params.FROM.get(request, _back(end, timedelta(days=DEFAULT_DAYS)))
    _check_range(start.date(), end.date())
    return RowQuery(
        start=start,
        end=end,
        team=params.TEAM.read(request),
        key=params.KEY.read(request),
        model=params.MODEL.read(request),
        status=params.STATUS.read(request),
        limit=params.ROWS.get(request, 100),
        after=params.CURSOR.read(request),
    )


def _back(moment: T, span: timedelta) -> T:
    """`span` before `moment`, or the earliest time there is (an `end` in the year 1 has little before it)."""
    earliest = datetime.min.replace(tzinfo=UTC) if isinstance(moment, datetime) else date.min
    return max(moment, earliest + span) - span


def _check_range(start: date, end: date) -> None:
    if start > end:
        raise InvalidRequest("'start' must not be after 'end'.", param="start", code="invalid_value")
    if (end - start).days > MAX_RANGE_DAYS:
        raise InvalidRequest(f"The range may span at most {MAX_RANGE_DAYS} days.", param="start",
                             code="invalid_value")  # fmt: skip


def _wants_csv(request: Request) -> bool:
    return params.FORMAT.get(request, "json") == "csv"


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
