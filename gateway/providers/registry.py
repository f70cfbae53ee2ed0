"""Provider adapters by name: the built-ins (gateway/providers/__init__.py), then those installed
packages declare in the `llm_gateway.providers` group, read by the one entry-point loader
(gateway/config/entry_points.py) when the gateway starts. An adapter class is built with the
process settings, like a built-in.

Also here: which adapter reads a deployment's load, for the router (an optional capability).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from importlib.metadata import EntryPoint
from typing import TypeGuard

from gateway.config.entry_points import load_named
from gateway.config.file import Deployment
from gateway.providers import PROVIDERS
from gateway.providers.base import Provider, ProviderClass
from gateway.routing.scraper import LoadProbe, ProbeFor

GROUP = "llm_gateway.providers"
# The probe for a deployment whose adapter has none but which names a `metrics_url`: a vLLM server
# behind another adapter (docs/routing.md).
METRICS_URL_PROBE = "vllm"

log = logging.getLogger("gateway.providers")


def provider_classes(found: Iterable[EntryPoint] | None = None) -> dict[str, ProviderClass]:
    """The built-ins, then every entry point that loads and is a class."""
    return load_named(GROUP, PROVIDERS, _is_class, what="provider plugin", wanted="a class", log=log, found=found)


def _is_class(loaded: object) -> TypeGuard[ProviderClass]:
    # Whether it has the `Provider` methods is found when it is built and called, as for a built-in.
    return isinstance(loaded, type)


def probe_for(adapters: Mapping[str, Provider]) -> ProbeFor:
    """Deployment -> the adapter that reads its load: its own, when it can; for any other deployment
    with a `metrics_url`, the vLLM adapter; otherwise none."""
    fallback = adapters.get(METRICS_URL_PROBE)

    def probe(deployment: Deployment) -> LoadProbe | None:
        own = adapters.get(deployment.provider)
        if isinstance(own, LoadProbe):
            return own
        if deployment.metrics_url is not None and isinstance(fallback, LoadProbe):
            return fallback
        return None

    return probe
