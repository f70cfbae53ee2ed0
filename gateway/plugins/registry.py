"""Plugin names -> classes, and the configured plugins built.

The built-ins are below; third-party plugins (`gateway.plugins.base.Plugin` subclasses) arrive through
the `llm_gateway.plugins` entry points, read by the one loader (gateway/config/entry_points.py)
when the app is built, and are then usable by name in the config's `plugins:` section.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from importlib.metadata import EntryPoint
from typing import TYPE_CHECKING, TypeGuard

from gateway.accounting.pricing import PriceBook
from gateway.config.entry_points import load_named
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
    """The built-ins, then every entry point that loads and is a `Plugin` subclass."""
    return load_named(GROUP, BUILTINS, _is_plugin_class, what="plugin", wanted="a Plugin subclass", log=log,
                      found=found)


def _is_plugin_class(loaded: object) -> TypeGuard[type[Plugin]]:
    return isinstance(loaded, type) and issubclass(loaded, Plugin)


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
