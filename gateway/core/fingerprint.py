"""A request's fingerprint: what makes two requests the same answer, as a hash, never the body.

The response cache's key (gateway/plugins/cache/keys.py) is this material plus the caller's scope;
the ledger keeps the fingerprint alone, so that exact repeats can be counted afterwards (by team or
key, as the cache would scope them) without the ledger ever holding a prompt.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

# Body fields that never change the answer. The end user's id (`user`, or its successor
# `safety_identifier`) is one: left in, the cache would not share an answer between two users and
# the ledger's fingerprint would be a hash of the id with the prompt, which an erasure leaves.
IGNORED = frozenset({"stream", "stream_options", "user", "safety_identifier", "store", "metadata"})


def answer_material(endpoint: str, model: str, body: Mapping[str, Any]) -> dict[str, Any]:
    return {"v": 1, "endpoint": endpoint, "model": model, "body": {k: v for k, v in body.items() if k not in IGNORED}}


def fingerprint(endpoint: str, model: str, body: Mapping[str, Any]) -> str | None:
    """SHA-256 of the answer's material, in hex; None for a body JSON cannot hold."""
    try:
        return hashlib.sha256(orjson.dumps(answer_material(endpoint, model, body),
                                           option=orjson.OPT_SORT_KEYS)).hexdigest()
    except orjson.JSONEncodeError:
        return None
