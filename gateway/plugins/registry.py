"""Plugin names -> classes: the built-ins, then installed packages' entry points.

A third-party package declares, in its pyproject.toml:

    [project.entry-points."llm_gateway.plugins"]
    shout = "sample_plugin:ShoutPlugin"

and its class (a `gateway.plugins.base.Plugin` subclass) is then usable by that name in the
config's `plugins:` section. Entry points are read when the app is built, never at import.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING

from gateway.accounting.pricing import PriceBook
from gateway.config.plugins import PluginsSection
from gateway.config.settings import Settings
from gateway.db.redis import open_redis
from gateway.plugins.base import Plugin, Services
from gateway.plugins.cache.embed import SelfEmbedder
from gateway.plugins.cache.exact import ResponseCache
from gateway.plugins.cache.semantic import SemanticCache
from gateway.plugins.guardrails.content import ContentRules
from gateway.plugins.guardrails.injection import InjectionGuard
from gateway.plugins.guardrails.pii import PiiRedactor
from gateway.plugins.guardrails.request_limits import RequestLimits
from gateway.plugins.runner import Plugins

if TYPE_CHECKING:
    from gateway.observability.labels import LabelPolicy
    from gateway.observability.metrics import GatewayMetrics

GROUP = "llm_gateway.plugins"

BUILTINS: dict[str, type[Plugin]] = {
    cls.name: cls
    for cls in (RequestLimits, PiiRedactor, InjectionGuard, ContentRules, ResponseCache, SemanticCache)
}

log = logging.getLogger("gateway.plugins")


def plugin_classes(found: Iterable[EntryPoint] | None = None) -> dict[str, type[Plugin]]:
    """A plugin cannot take a built-in's name; one that fails to import is left out with a warning,
    and a config that names it then fails at start-up with "unknown plugin"."""
    classes = dict(BUILTINS)
    for entry in entry_points(group=GROUP) if found is None else found:
        if entry.name in classes:
            log.warning("plugin %r (%s) ignored: the name is taken", entry.name, entry.value)
            continue
        try:
            loaded = entry.load()
        except Exception as exc:  # any import-time failure of third-party code
            log.warning("plugin %r (%s) failed to load: %s", entry.name, entry.value, type(exc).__name__)
            continue
        if not (isinstance(loaded, type) and issubclass(loaded, Plugin)):
            log.warning("plugin %r (%s) is not a Plugin subclass; ignored", entry.name, entry.value)
            continue
        classes[entry.name] = loaded
    return classes


def build_plugins(
    section: PluginsSection,
    settings: Settings,
    prices: PriceBook,
    metrics: GatewayMetrics | None = None,
    labels: LabelPolicy | None = None,
) -> Plugins:
    """Every configured plugin, built and checked (a bad entry is a `ConfigError`)."""
    services = Services(settings=settings, prices=prices, metrics=metrics, labels=labels)
    if section.empty:
        return Plugins(section, dict(BUILTINS), services)
    if settings.redis_url is not None:
        services.redis = open_redis(settings)
    if settings.master_key is not None:
        # Bound to the app by the app factory once the app exists.
        services.embed = SelfEmbedder(settings.master_key.get_secret_value())
    return Plugins(section, plugin_classes(), services)
