"""Schemathesis over the whole admin API: every operation, every check, against a real gateway
on each store (SQLite; Postgres with Redis) over a real socket.

The run is seeded and derandomized, so it is the same run every time. Schemathesis draws
requests from the OpenAPI document, valid ones and invalid ones (NUL characters included, as
it does by default), and holds each answer to the document: no 5xx, only documented statuses,
bodies of the documented shape, every schema-valid request accepted and every invalid one
refused, 405 with `Allow` for undeclared methods, no access without the key.

A few rules cannot be stated in JSON Schema, and the document says them in words: an expiry in
the future, a `team_id` that exists, `start` not after `end` within 3660 days, a `cursor` the
API returned, a prompt's `variables` that are the placeholders its messages use. Schema-valid
draws that break one are refused with a 400 naming the field, as they should be;
`keep_the_stated_rules` mends those draws, so that the check that valid data is accepted checks
everything else.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events

from admin import params
from admin.inputs import instant
from tests.admin.conftest import COMPLEXITY
from tests.dbs import REDIS_URL, create_pg_database, drop_pg_database, redis_prefix
from tests.procs import MASTER_KEY, FakeUpstream, Gateway, deployment

SEED = 20_261_207
DEBUG = ""  # "\n" to see each failure's curl command
EXAMPLES = 10  # per operation and phase: several hundred requests in all, about 20 s per store
LEDGER_PATHS = ("/admin/api/ledger/spend", "/admin/api/ledger/requests")
# Ranges of whole days, with the same rule as the ledger's spend.
DAY_RANGE_PATHS = ("/admin/api/ledger/spend", "/admin/api/routing/complexity", "/admin/api/prompts/{template_id}/stats")
PROMPT_BODIES = ("/admin/api/prompts", "/admin/api/prompts/{template_id}/versions")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def fuzzed(request: pytest.FixtureRequest, upstream: FakeUpstream,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:  # fmt: skip
    tmp = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    # Schemathesis sends wrong keys on purpose (its `ignored_auth` check): the failed-authentication
    # throttle would otherwise answer the rest of the run with 429.
    settings: dict[str, object] = {"auth_failure_burst": 100_000}
    dsn = None
    if request.param == "postgres":
        dsn = create_pg_database()
        settings |= {"database_url": dsn, "redis_url": REDIS_URL, "redis_prefix": redis_prefix()}
    models = [{"name": "gpt-test", "aliases": ["gpt-alias"], "deployments": [deployment(upstream)]},
              {"name": "other", "deployments": [deployment(upstream)]},
              {"name": "vendor/*", "deployments": [deployment(upstream)]}, COMPLEXITY]
    gw = Gateway(tmp, models, settings=settings, log=tmp / "gateway.log")
    yield gw
    gw.close()
    if dsn is not None:
        drop_pg_database(dsn)


def keep_the_stated_rules(case: Any, team_id: str) -> Any:
    """Mend a schema-valid draw that breaks a rule the document states only in words."""
    if not case.meta.generation.mode.is_positive:
        return case
    body = case.body if isinstance(case.body, dict) else {}
    if isinstance(body.get("team_id"), str):
        body["team_id"] = team_id
    expires = body.get("expires_at")
    if isinstance(expires, str):
        try:
            # A new key must not be born expired; a changed one may be expired at once.
            kept = instant(expires) > datetime.now(UTC) or case.method.upper() == "PATCH"
        except ValueError:  # beyond the year 9999 in UTC, or a leap second
            kept = False
        if not kept:
            body["expires_at"] = "2999-12-31T23:59:59Z"
    if case.path in PROMPT_BODIES and case.method.upper() == "POST":
        # The placeholders used are the variables declared; left out, they are.
        body.pop("variables", None)
    if case.path in (*LEDGER_PATHS, *DAY_RANGE_PATHS) and case.query:
        case.query.pop("cursor", None)
        if "start" in case.query and not _range_kept(case.path, case.query):
            del case.query["start"]  # its default, a month before `end`, always is
    return case


def _range_kept(path: str, query: dict[str, Any]) -> bool:
    daily = path in DAY_RANGE_PATHS
    first, last = (params.FIRST_DAY, params.LAST_DAY) if daily else (params.FROM, params.UNTIL)
    try:
        start = first.parse(str(query["start"]))
        end = last.parse(str(query["end"])) if "end" in query else datetime.now(UTC)
    except ValueError:
        return True  # not the range's business: the value itself is refused, as it should be
    start_day = start if daily else start.date()  # type: ignore[union-attr]
    end_day = end if daily else end.date()  # type: ignore[union-attr]
    if isinstance(end_day, datetime):
        end_day = end_day.date()
    return start_day <= end_day and (end_day - start_day) <= timedelta(days=3660)


def run_schemathesis(gw: Gateway) -> tuple[int, list[str], set[str]]:
    """The number of requests sent, one line per failed check, and the operations called."""
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    team = httpx.post(f"{gw.base}/admin/api/teams", json={"name": "fuzz-" + secrets.token_hex(4)},
                      headers=headers).json()  # fmt: skip
    config = SchemathesisConfig.from_dict({
        "seed": SEED,
        "auth": {"openapi": {"bearer": {"bearer": MASTER_KEY}}},  # the document's own scheme
        "request-timeout": 20,
        "workers": 1,
        "generation": {"max-examples": EXAMPLES, "deterministic": True, "database": "none"},
        "checks": {"enabled": True},
        "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True}, "fuzzing": {"enabled": True},
                   "stateful": {"enabled": True}},
    })  # fmt: skip
    schema = schemathesis.openapi.from_url(f"{gw.base}/admin/api/openapi.json", config=config)

    @schema.hook("map_case")
    def mend(context: Any, case: Any) -> Any:
        return keep_the_stated_rules(case, team["id"])

    sent, failures, called = 0, [], set()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            sent += len(event.recorder.interactions)
            if event.recorder.interactions:
                called.add(event.recorder.label)
            for checks in event.recorder.checks.values():
                failures += [f"{event.recorder.label}: {c.name}: {c.failure_info.failure.title}"
                             f"{DEBUG and DEBUG + c.failure_info.code_sample}"
                             for c in checks if c.status == Status.FAILURE and c.failure_info is not None]
        elif isinstance(event, events.NonFatalError | events.FatalError):
            failures.append(f"error: {event!r}")
    return sent, failures, called


def test_the_admin_api_keeps_its_openapi_document(fuzzed: Gateway, tmp_path: Path) -> None:
    sent, failures, called = run_schemathesis(fuzzed)
    print(f"schemathesis: {sent} requests to {len(called)} operations, {len(failures)} failed checks")
    assert sent >= 300, sent  # the run really ran: a few hundred requests at least
    document = httpx.get(f"{fuzzed.base}/admin/api/openapi.json").json()
    documented = {f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item}
    assert called >= documented, documented - called  # every operation was called
    assert failures == [], "\n".join(sorted(set(failures)))
