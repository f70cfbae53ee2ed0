"""Virtual keys: how they are made, how they are stored, how they are shown.

A key is `sk-gw-` followed by 43 base62 characters drawn from 256 random bits. Only its
SHA-256 is stored. A slow password hash (bcrypt, scrypt, argon2) exists to make guessing a
*low-entropy* secret from a stolen hash expensive; a 256-bit random key cannot be guessed
however fast the hash is, so a plain SHA-256 loses nothing and keeps the lookup a single
indexed equality on the hot path.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

KEY_PREFIX = "sk-gw-"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_RANDOM_BYTES = 32
# 62**43 > 2**256, so 43 characters hold every 256-bit value.
_BODY_LENGTH = 43
# How much of a key lists, logs and the audit log may show: the fixed part and 6 random characters.
DISPLAY_LENGTH = len(KEY_PREFIX) + 6


@dataclass(frozen=True, slots=True)
class NewSecret:
    """A freshly made key: the full text goes to the caller once; the store keeps the rest."""

    key: str
    hash: str
    prefix: str


def new_key() -> NewSecret:
    number = int.from_bytes(secrets.token_bytes(_RANDOM_BYTES), "big")
    body = []
    for _ in range(_BODY_LENGTH):
        number, digit = divmod(number, 62)
        body.append(_ALPHABET[digit])
    key = KEY_PREFIX + "".join(body)
    return NewSecret(key=key, hash=hash_key(key), prefix=display_prefix(key))


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    return key[:DISPLAY_LENGTH]


def new_id(kind: str) -> str:
    """`kind_` + 12 hex digits of milliseconds + 16 random hex digits: ids sort by creation time."""
    return f"{kind}_{int(time.time() * 1000):012x}{secrets.token_hex(8)}"
