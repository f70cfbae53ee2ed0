"""The built-in providers plus those installed packages declare in the `llm_gateway.providers` group.

A plugin package declares, in its pyproject.toml:

    [project.entry-points."llm_gateway.providers"]
    cohere = "cohere_provider:CohereProvider"

The class is built like a built-in adapter, with the process settings. Loading happens when
the gateway starts (before the config is validated, so the names are known), never at import.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points

from gateway.providers import PROVIDERS

GROUP = "llm_gateway.providers"

log = logging.getLogger("gateway.providers")


def provider_classes(found: Iterable[EntryPoint] | None = None) -> dict[str, type]:
    """Name -> adapter class: the built-ins, then every entry point that loads.

    A plugin cannot replace a built-in; one that fails to import is left out with a warning
    (a config that names it then fails with "unknown provider").
    """
    classes: dict[str, type] = dict(PROVIDERS)
    for entry in entry_points(group=GROUP) if found is None else found:
        if entry.name in classes:
            log.warning("provider plugin %r (%s) ignored: the name is taken", entry.name, entry.value)
            continue
        try:
            loaded = entry.load()
        except Exception as exc:  # any import-time failure of third-party code
            log.warning("provider plugin %r (%s) failed to load: %s", entry.name, entry.value, type(exc).__name__)
            continue
        if not isinstance(loaded, type):
            log.warning("provider plugin %r (%s) is not a class; ignored", entry.name, entry.value)
            continue
        classes[entry.name] = loaded
    return classes
