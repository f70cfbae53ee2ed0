"""Whose limits a request counts against, and the Redis key names of their counters.

Scopes are the calling key, its team, and the public model. Every key name starts with a hash
tag naming its scope (`{gw:k:<key>}:rpm`, `{gw:t:<team>}:usd:2026-11`, `{gw:m:<model>}:tpm`),
so one scope's counters share one Redis Cluster slot. On a single Redis all the scopes of a
request go into one script call; on a cluster each scope's slot gets its own call, sent at once
(see redis_backend.py). Tagging a key's counters with its team instead would put key and team in
one slot, but a key can move to another team, and its counters (its spend) must not reset when
it does; so a key has a tag of its own.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Literal

from gateway.core.types import Limits, Principal

ScopeKind = Literal["key", "team", "model"]

_TAG_LETTER: dict[ScopeKind, str] = {"key": "k", "team": "t", "model": "m"}
_PLAIN = re.compile(r"[^{}\s]{1,128}")


@dataclass(slots=True, frozen=True)
class Scope:
    kind: ScopeKind
    # Names the scope in a refusal's message; never holds key material.
    label: str
    # The stem of its counters' names: the hash tag.
    base: str
    limits: Limits


def any_limit(limits: Limits) -> bool:
    return (
        limits.rpm is not None
        or limits.tpm is not None
        or limits.max_parallel is not None
        or limits.budget_usd is not None
    )


def scope_base(prefix: str, kind: ScopeKind, name: str) -> str:
    return f"{{{prefix}:{_TAG_LETTER[kind]}:{_safe(name)}}}"


def scopes_for(prefix: str, principal: Principal | None, model: str, model_limits: Limits | None) -> list[Scope]:
    scopes: list[Scope] = []
    if principal is not None:
        if any_limit(principal.key_limits):
            base = scope_base(prefix, "key", principal.key_id)
            scopes.append(Scope("key", "this API key", base, principal.key_limits))
        if principal.team_id and any_limit(principal.team_limits):
            base = scope_base(prefix, "team", principal.team_id)
            scopes.append(Scope("team", f"team {principal.team_id}", base, principal.team_limits))
    if model_limits is not None and any_limit(model_limits):
        scopes.append(Scope("model", f"model {model}", scope_base(prefix, "model", model), model_limits))
    return scopes


def _safe(name: str) -> str:
    """The name itself when it cannot break a hash tag, else a digest of it."""
    if _PLAIN.fullmatch(name):
        return name
    return "h" + hashlib.sha256(name.encode()).hexdigest()[:24]
