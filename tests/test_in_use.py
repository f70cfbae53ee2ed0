"""What start-up says is in use: kind and target for the key store, ledger, limiter and cache, no secret."""

from __future__ import annotations

from pathlib import Path

from gateway.config.file import config_from_dict
from gateway.in_use import in_use, shown_url


def lines(raw: dict[str, object]) -> list[str]:
    config, settings = config_from_dict(raw, {"openai"})
    return in_use(config, settings)


def test_urls_are_shown_without_passwords_or_query() -> None:
    assert shown_url("postgresql://gw:s3cret@db:5432/gateway?sslmode=require&password=x") == (
        "postgresql://gw@db:5432/gateway")
    assert shown_url("rediss://:s3cret@cache:6380/1") == "rediss://cache:6380/1"
    assert shown_url("redis://default:s3cret@cache:6379/0") == "redis://default@cache:6379/0"
    assert shown_url("postgresql://gw:s3cret@h1:5432,h2:5432/gateway") == "postgresql://gw@h1:5432,h2:5432/gateway"
    assert shown_url("unix:///run/redis.sock?password=s3cret&db=2") == "unix:///run/redis.sock"


def test_the_embedded_default(tmp_path: Path) -> None:
    assert lines({"settings": {"data_dir": str(tmp_path)}}) == [
        f"key store: sqlite {tmp_path / 'gateway.db'}",
        f"ledger: sqlite {tmp_path / 'gateway.db'}",
        "limiter: in-process, per worker (set GATEWAY_REDIS_URL to share limits across workers)",
        "cache: off (no cache plugin in the config's plugins: section)",
    ]


def test_postgres_redis_and_the_caches() -> None:
    said = lines({
        "settings": {"database_url": "postgresql://gw:s3cret@db:5432/gateway", "redis_url": "redis://:pw@cache:6379/0",
                     "limits_failure_mode": "open", "ledger_enabled": False},
        "plugins": {"teams": {"team_a": [{"name": "cache"}, {"name": "semantic_cache",
                                                              "config": {"embedding_model": "e"}}]}},
    })
    assert said == [
        "key store: postgresql://gw@db:5432/gateway",
        "ledger: off (settings.ledger_enabled is false)",
        "limiter: redis redis://cache:6379/0 (failure mode open)",
        "cache: exact match in redis redis://cache:6379/0; semantic in-process, per worker",
    ]
    assert not [line for line in said if "s3cret" in line or "pw" in line]
    assert lines({"plugins": {"global": [{"name": "cache"}]}})[3] == "cache: exact match in-process, per worker"
    assert lines({"settings": {"redis_url": "redis://r:6379/0", "redis_cluster": True}})[2] == (
        "limiter: redis cluster redis://r:6379/0 (failure mode closed)")
