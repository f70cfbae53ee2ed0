"""What a client may attach to a request for the ledger: its `user` field and free tags.

Tags come in one header, `x-gateway-tags: team=search,env=prod`. They are bounded (count and
size) because every one of them is stored with the row; a malformed header is a 400 so the
client learns of it instead of finding holes in its reports later.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.core.errors import InvalidRequest

TAGS_HEADER = "x-gateway-tags"
MAX_TAGS = 16
MAX_HEADER_BYTES = 2048
MAX_VALUE_CHARS = 256
MAX_USER_CHARS = 256
_KEY = re.compile(r"[A-Za-z0-9_.:/\-]{1,64}")
# Printable, no comma (the separator); '=' is allowed inside a value.
_VALUE = re.compile(r"[^,\x00-\x1f\x7f]*")


def parse_tags(header: str | None) -> dict[str, str]:
    if not header:
        return {}
    if len(header.encode()) > MAX_HEADER_BYTES:
        raise _bad(f"is longer than {MAX_HEADER_BYTES} bytes")
    tags: dict[str, str] = {}
    for item in header.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not _KEY.fullmatch(key):
            raise _bad("expects key=value pairs separated by commas; keys are 1-64 of A-Z a-z 0-9 _ . : / -")
        if len(value) > MAX_VALUE_CHARS or not _VALUE.fullmatch(value):
            raise _bad(f"tag {key!r}: a value is at most {MAX_VALUE_CHARS} printable characters")
        if key in tags:
            raise _bad(f"tag {key!r} is given twice")
        tags[key] = value
    if len(tags) > MAX_TAGS:
        raise _bad(f"carries more than {MAX_TAGS} tags")
    return tags


def client_user(body: dict[str, Any]) -> str | None:
    """OpenAI's end-user id (`user`, else its successor `safety_identifier`), when the client sent
    one; clipped, never an error."""
    for name in ("user", "safety_identifier"):
        user = body.get(name)
        if isinstance(user, str) and user:
            return user[:MAX_USER_CHARS]
    return None


def _bad(reason: str) -> InvalidRequest:
    return InvalidRequest(f"The {TAGS_HEADER} header {reason}.", param=TAGS_HEADER, code="invalid_tags")
