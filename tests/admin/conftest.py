from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.dbs import REDIS_URL, create_pg_database, drop_pg_database, redis_prefix
from tests.procs import MASTER_KEY, FakeUpstream, Gateway, deployment

# A `complexity` model, so that the report on its tiers has a model to name.
COMPLEXITY = {"name": "auto", "complexity": {"tiers": [{"name": "small", "model": "gpt-test", "max_score": 0.5},
                                                       {"name": "large", "model": "other"}]}}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def admin_gateway(
    request: pytest.FixtureRequest, upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """A real gateway process on each store: the embedded SQLite default, and Postgres with Redis."""
    tmp = tmp_path_factory.mktemp(f"admin-{request.param}")
    settings: dict[str, object] = {"log_level": "debug"}
    dsn = None
    if request.param == "postgres":
        dsn = create_pg_database()
        settings |= {"database_url": dsn, "redis_url": REDIS_URL, "redis_prefix": redis_prefix()}
    models = [{"name": "gpt-test", "aliases": ["gpt-alias"], "deployments": [deployment(upstream)]},
              {"name": "other", "deployments": [deployment(upstream)]},
              {"name": "vendor/*", "deployments": [deployment(upstream)]}, COMPLEXITY]
    gw = Gateway(tmp, models, settings=settings, log=tmp / "gateway.log")
    gw.log_file = tmp / "gateway.log"  # type: ignore[attr-defined]
    yield gw
    gw.close()
    if dsn is not None:
        drop_pg_database(dsn)


@pytest.fixture
def admin(admin_gateway: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=admin_gateway.base + "/admin/api",
                      headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=10) as client:
        yield client


def log_text(gw: Gateway) -> str:
    path: Path = gw.log_file  # type: ignore[attr-defined]
    return path.read_text(errors="replace")
