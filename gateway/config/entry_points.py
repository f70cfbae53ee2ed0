"""Names -> classes: the built-ins, then what installed packages declare under an entry-point group.

One loader for both kinds of extension: provider adapters (`llm_gateway.providers`,
gateway/providers/registry.py) and plugins (`llm_gateway.plugins`, gateway/plugins/registry.py).
A package declares, in its pyproject.toml:

    [project.entry-points."llm_gateway.providers"]
    cohere = "cohere_provider:CohereProvider"

Entry points are read when the gateway starts (before the config is validated, so the names are
known), never at import. An extension cannot replace a built-in; one that fails to import, or is not
the kind of class the group wants, is left out with a warning, and a config that names it then fails
at start-up with "unknown provider" or "unknown plugin".
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import TypeGuard, TypeVar

T = TypeVar("T")


def load_named(
    group: str,
    builtins: Mapping[str, T],
    accepts: Callable[[object], TypeGuard[T]],
    *,
    what: str,
    wanted: str,
    log: logging.Logger,
    found: Iterable[EntryPoint] | None = None,
) -> dict[str, T]:
    """`what` names an extension in warnings ("plugin"), `wanted` what `accepts` checks ("a Plugin subclass").

    `found` replaces the installed entry points (tests)."""
    named = dict(builtins)
    for entry in entry_points(group=group) if found is None else found:
        if entry.name in named:
            log.warning("%s %r (%s) ignored: the name is taken", what, entry.name, entry.value)
            continue
        try:
            loaded = entry.load()
        except Exception as exc:  # any import-time failure of third-party code
            log.warning("%s %r (%s) failed to load: %s", what, entry.name, entry.value, type(exc).__name__)
            continue
        if not accepts(loaded):
            log.warning("%s %r (%s) is not %s; ignored", what, entry.name, entry.value, wanted)
            continue
        named[entry.name] = loaded
    return named
