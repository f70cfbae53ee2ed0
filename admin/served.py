"""The model names the gateway serves, as the admin API checks `allowed_models` against them.

A name is served when the router resolves it (gateway/routing/router.py, `Router.group`): a
group's name, an alias, or a name a wildcard route (`openai/*`) matches, which is its literal
prefix and suffix around at least one character. The same rule is stated as a JSON Schema for
the OpenAPI document, so a client can know in advance which names are taken.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gateway.config.file import ModelGroup

_REGEX_SPECIAL = frozenset(".^$*+?()[]{}|\\")


@dataclass(frozen=True, slots=True)
class ServedModels:
    names: frozenset[str]
    wildcards: tuple[tuple[str, str], ...]  # (prefix, suffix) around the `*`
    complexity: tuple[str, ...] = ()  # the `complexity` models (tiers chosen per request)

    @classmethod
    def of(cls, groups: Sequence[ModelGroup]) -> ServedModels:
        names: set[str] = set()
        wildcards: list[tuple[str, str]] = []
        for group in groups:
            if "*" in group.name:
                prefix, _, suffix = group.name.partition("*")
                wildcards.append((prefix, suffix))
            else:
                names.add(group.name)
            names.update(group.aliases)
        tiered = tuple(sorted(group.name for group in groups if group.complexity is not None))
        return cls(frozenset(names), tuple(wildcards), tiered)

    def serves(self, name: str) -> bool:
        return name in self.names or any(
            name.startswith(prefix) and name.endswith(suffix) and len(name) > len(prefix) + len(suffix)
            for prefix, suffix in self.wildcards
        )

    def schema(self) -> dict[str, Any]:
        """One served name, as JSON Schema (unsatisfiable when nothing is served)."""
        options: list[dict[str, Any]] = [{"enum": sorted(self.names)}] if self.names else []
        options += [{"pattern": f"^{_literal(prefix)}[^\\x00]+{_literal(suffix)}$"}
                    for prefix, suffix in self.wildcards]
        return {"anyOf": options} if options else {"not": {}}


def _literal(text: str) -> str:
    # Escapes only what is special, so the pattern means the same to ECMA-262, Python and Rust.
    return "".join("\\" + c if c in _REGEX_SPECIAL else c for c in text)
