"""What a configuration puts in use: one line each for the key store, the ledger, the limiter and the
cache, printed at start-up so that a fallback (SQLite, per-process limits) is never silent.

Targets are shown without secrets: a URL keeps its scheme, user, hosts and path, never its password
or query string (where libpq and redis-py also accept a password).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from gateway.config.file import Config
from gateway.config.plugins import PluginsSection
from gateway.config.settings import Settings
from gateway.db.connect import postgres_dsn, sqlite_path


def shown_url(url: str) -> str:
    parts = urlsplit(url)
    # rpartition, not .hostname: a libpq URL may list several hosts (h1:5432,h2:5432).
    userinfo, _, hosts = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return f"{parts.scheme}://{user + '@' if user else ''}{hosts}{parts.path}"


def database(settings: Settings) -> str:
    """The database the key store (and the ledger) use: a Postgres URL, or `sqlite <file>`."""
    dsn = postgres_dsn(settings)
    if dsn is not None:
        return shown_url(dsn)
    return f"sqlite {Path(sqlite_path(settings)).resolve()}"


def ledger(settings: Settings) -> str:
    if not settings.ledger_enabled:
        return "off (settings.ledger_enabled is false)"
    return database(settings)


def limiter(settings: Settings) -> str:
    if settings.redis_url is None:
        return "in-process, per worker (set GATEWAY_REDIS_URL to share limits across workers)"
    kind = "redis cluster" if settings.redis_cluster else "redis"
    return f"{kind} {shown_url(settings.redis_url.get_secret_value())} (failure mode {settings.limits_failure_mode})"


def _plugin_names(section: PluginsSection) -> set[str]:
    entries = [*section.global_, *(e for es in section.teams.values() for e in es),
               *(e for es in section.keys.values() for e in es)]
    return {entry.name for entry in entries}


def cache(config: Config, settings: Settings) -> str:
    names = _plugin_names(config.plugins)
    parts = []
    if "cache" in names:
        # The same rule as the plugin services (gateway/plugins/registry.py): Redis whenever redis_url is set.
        if settings.redis_url is not None:
            parts.append(f"exact match in redis {shown_url(settings.redis_url.get_secret_value())}")
        else:
            parts.append("exact match in-process, per worker")
    if "semantic_cache" in names:
        parts.append("semantic in-process, per worker")
    return "; ".join(parts) if parts else "off (no cache plugin in the config's plugins: section)"


def in_use(config: Config, settings: Settings) -> list[str]:
    return [
        f"key store: {database(settings)}",
        f"ledger: {ledger(settings)}",
        f"limiter: {limiter(settings)}",
        f"cache: {cache(config, settings)}",
    ]
