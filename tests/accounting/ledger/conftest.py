from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.accounting.ledger.helpers import migrate
from tests.dbs import create_pg_database, drop_pg_database
from tests.procs import FakeUpstream, Gateway, deployment, free_port

# USD per million tokens, chosen so that every term of a cost shows in the result.
PRICED = {"input_per_mtok": "3", "output_per_mtok": "15", "cached_input_per_mtok": "1.5"}
PER_REQUEST = {"input_per_mtok": "1", "output_per_mtok": "2", "per_request": "0.01"}


@pytest.fixture(scope="session")
def ledger_dsn() -> Iterator[str]:
    """A fresh database for this session, migrated; no PostgreSQL is an error here, never a skip."""
    dsn = create_pg_database()
    migrate(dsn)
    yield dsn
    drop_pg_database(dsn)


def ledger_models(upstream: FakeUpstream) -> list[dict[str, Any]]:
    return [
        {"name": "priced", "deployments": [deployment(upstream, price=PRICED)]},
        # The same fake's native Responses API, relayed as it is for /v1/responses.
        {"name": "priced-native", "deployments": [deployment(upstream, price=PRICED, responses_api="native")]},
        {"name": "per-request", "deployments": [deployment(upstream, price=PER_REQUEST)]},
        # No price in the config: the shipped table's, by the upstream model id.
        {"name": "table", "deployments": [deployment(upstream, model="gpt-4o-mini")]},
        # Neither: the cost is unknown.
        {"name": "unpriced", "deployments": [deployment(upstream, model="fake-unpriced")]},
        # One request a minute: the second is refused with 429 by admission (gateway/accounting/limits/).
        {"name": "limited", "deployments": [deployment(upstream, price=PRICED)], "limits": {"rpm": 1}},
        # Unreachable, falling back to `priced`: the row names the deployment that served it.
        {"name": "primary", "fallbacks": ["priced"], "retries": 0, "deployments": [
            {"provider": "openai", "base_url": f"http://127.0.0.1:{free_port()}/v1", "price": PRICED}]},
        {"name": "down", "deployments": [{"provider": "openai", "base_url": f"http://127.0.0.1:{free_port()}/v1",
                                          "price": PRICED}]},
    ]


@pytest.fixture(scope="module")
def ledger_gateway(
    upstream: FakeUpstream, ledger_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("ledger-gw")
    settings = {
        "database_url": ledger_dsn,
        "data_dir": str(tmp / "data"),
        "ledger_flush_s": 0.05,
        "ledger_premake_days": 3,
        "max_body_bytes": 64 * 1024,
    }
    gw = Gateway(tmp, ledger_models(upstream), settings=settings)
    yield gw
    gw.close()
