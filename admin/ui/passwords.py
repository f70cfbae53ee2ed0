"""Admin users' passwords, kept as scrypt hashes.

Passwords are guessable, unlike virtual keys (gateway/identity/keys.py), so they get a slow, memory-hard
hash: scrypt with N = 2**15, r = 8, p = 3 (32 MiB and about a tenth of a second per hash), one of
the settings OWASP's Password Storage Cheat Sheet lists as equivalent to its first choice
(N = 2**17, r = 8, p = 1) for a third of the memory. A stored hash carries its parameters, so
raising them later leaves existing hashes valid.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets

LOG2_N = 15
R = 8
P = 3
SALT_BYTES = 16
HASH_BYTES = 32
MIN_LENGTH = 12
MAX_LENGTH = 1024
# Each hash holds 128 * r * N * p bytes; at most this many run at once per process, so a burst
# of sign-in attempts cannot take the machine's memory.
CONCURRENT_CHECKS = 2


class PasswordError(ValueError):
    pass


def check_new_password(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise PasswordError(f"password: at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise PasswordError(f"password: at most {MAX_LENGTH} characters")


def _scrypt(password: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    n = 1 << log2_n
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * r * n * p + (1 << 20),
                          dklen=HASH_BYTES)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, log2_n: int = LOG2_N, r: int = R, p: int = P) -> str:
    check_new_password(password)
    salt = secrets.token_bytes(SALT_BYTES)
    return f"scrypt${log2_n}${r}${p}${_b64(salt)}${_b64(_scrypt(password, salt, log2_n, r, p))}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, log2_n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt" or len(password) > MAX_LENGTH:
            return False
        actual = _scrypt(password, _unb64(salt), int(log2_n), int(r), int(p))
        return hmac.compare_digest(actual, _unb64(expected))
    except ValueError:
        return False


# Checked when a user name is unknown, so a wrong name costs as much time as a wrong password.
_DUMMY = f"scrypt${LOG2_N}${R}${P}${_b64(bytes(SALT_BYTES))}${_b64(bytes(HASH_BYTES))}"


class PasswordChecker:
    """Checks sign-in attempts off the event loop, a few at a time (built once per app)."""

    def __init__(self, concurrent: int = CONCURRENT_CHECKS) -> None:
        self._slots = asyncio.Semaphore(concurrent)

    async def verify(self, password: str, stored: str | None) -> bool:
        """With no stored hash (an unknown user), as slow as a real check, and False."""
        async with self._slots:
            ok = await asyncio.to_thread(verify_password, password, stored or _DUMMY)
        return ok and stored is not None
