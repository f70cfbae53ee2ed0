"""Whose data: an end user (the `user` / `safety_identifier` a client sends) or a virtual key."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

from gateway.core.errors import InvalidRequest

Kind = Literal["user", "key"]
MAX_ID_CHARS = 256


@dataclass(frozen=True, slots=True)
class Subject:
    kind: Kind
    value: str

    def reference(self, secret: bytes) -> str:
        """A keyed pseudonym for the audit log: it links an export to its erasure without naming
        the subject, and cannot be reversed or recomputed without the gateway's master key."""
        digest = hmac.new(secret, f"{self.kind}:{self.value}".encode(), hashlib.sha256).hexdigest()
        return f"{self.kind}-{digest[:24]}"


def subject_of(user: str | None, key: str | None) -> Subject:
    """Exactly one of the two, non-empty; a 400 naming the problem otherwise."""
    if (user is None) == (key is None):
        raise InvalidRequest("Name exactly one of 'user' (an end user's id) and 'key' (a key id).",
                             param="user", code="invalid_subject")
    kind: Kind = "user" if user is not None else "key"
    value = user if user is not None else key
    assert value is not None
    if not value or len(value) > MAX_ID_CHARS or any(ord(c) < 32 for c in value):
        raise InvalidRequest(f"Invalid '{kind}': 1-{MAX_ID_CHARS} printable characters.", param=kind,
                             code="invalid_subject")
    return Subject(kind, value)


def replacement_key_id() -> str:
    """What an erased key's id becomes in the ledger: unique, so the rollup's keys never collide."""
    return "erased-" + secrets.token_hex(8)
