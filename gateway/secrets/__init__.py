"""Provider keys at rest: AES-256-GCM under a key from the environment, with rotation.

    GATEWAY_ENCRYPTION_KEY        base64 of 32 random bytes: every new encryption uses it
    GATEWAY_ENCRYPTION_OLD_KEYS   comma-separated base64 keys that still decrypt (rotation)

A ciphertext is `gwenc1.<key id>.<base64url(nonce | ciphertext | tag)>`. The key id (a hash
of the key, not the key) says which key decrypts it, so old ciphertexts keep working after a
rotation until they are re-encrypted (`rotate`). The prefix and key id are authenticated too.

Rotation: generate a key (`python -m gateway.secrets genkey`), move the current key to
GATEWAY_ENCRYPTION_OLD_KEYS, set the new one as GATEWAY_ENCRYPTION_KEY, restart; then
re-encrypt stored values (`python -m gateway.secrets rotate`, one per line on stdin) and, once
none uses the old key, drop it from GATEWAY_ENCRYPTION_OLD_KEYS.

No error message here ever contains a key or a plaintext.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import sys
from collections.abc import Mapping, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_ENV = "GATEWAY_ENCRYPTION_KEY"
OLD_KEYS_ENV = "GATEWAY_ENCRYPTION_OLD_KEYS"
PREFIX = "gwenc1"
_NONCE_BYTES = 12


class SecretsError(Exception):
    """A key or ciphertext is unusable; the message names which, never its value."""


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"llm-gateway key id\x00" + key).hexdigest()[:12]


def generate_key() -> str:
    return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()


def _decode_key(value: str, name: str) -> bytes:
    try:
        key = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SecretsError(f"{name} is not valid base64") from None
    if len(key) != 32:
        raise SecretsError(f"{name} must be 32 bytes (AES-256) once base64-decoded, not {len(key)}")
    return key


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


class KeyRing:
    """The current key, which encrypts, and the old ones, which only decrypt."""

    def __init__(self, current: bytes, old: Sequence[bytes] = ()) -> None:
        for key in (current, *old):
            if len(key) != 32:
                raise SecretsError("encryption keys must be 32 bytes (AES-256)")
        self.current_id = key_id(current)
        self._ciphers = {key_id(key): AESGCM(key) for key in old}
        self._ciphers[self.current_id] = AESGCM(current)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> KeyRing:
        current = environ.get(KEY_ENV)
        if not current:
            raise SecretsError(f"{KEY_ENV} is not set; it must hold base64 of 32 random bytes")
        old = [_decode_key(value, f"{OLD_KEYS_ENV}[{i}]")
               for i, value in enumerate(environ.get(OLD_KEYS_ENV, "").split(",")) if value.strip()]
        return cls(_decode_key(current, KEY_ENV), old)

    def encrypt(self, plaintext: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        header = f"{PREFIX}.{self.current_id}"
        sealed = self._ciphers[self.current_id].encrypt(nonce, plaintext.encode(), header.encode())
        return f"{header}.{_b64url(nonce + sealed)}"

    def decrypt(self, token: str) -> str:
        prefix, kid, payload = _split(token)
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise SecretsError(f"no configured key has id {kid}; add that key to {OLD_KEYS_ENV}")
        try:
            raw = _unb64url(payload)
            plaintext = cipher.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], f"{prefix}.{kid}".encode())
        except (InvalidTag, ValueError, binascii.Error):
            raise SecretsError("the ciphertext is corrupt or was not made with this key") from None
        return plaintext.decode()

    def needs_rotation(self, token: str) -> bool:
        return _split(token)[1] != self.current_id

    def rotate(self, token: str) -> str:
        """The same secret under the current key (unchanged if it already is)."""
        return self.encrypt(self.decrypt(token)) if self.needs_rotation(token) else token


def _split(token: str) -> tuple[str, str, str]:
    parts = token.strip().split(".")
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        raise SecretsError(f"not a gateway ciphertext (expected {PREFIX}.<key id>.<data>)")
    return parts[0], parts[1], parts[2]


def is_ciphertext(value: str) -> bool:
    return value.startswith(PREFIX + ".")


def encrypt(plaintext: str) -> str:
    """Encrypt under GATEWAY_ENCRYPTION_KEY."""
    return KeyRing.from_env().encrypt(plaintext)


def decrypt(token: str) -> str:
    """Decrypt with GATEWAY_ENCRYPTION_KEY or any of GATEWAY_ENCRYPTION_OLD_KEYS."""
    return KeyRing.from_env().decrypt(token)


def main(argv: Sequence[str]) -> int:
    """`python -m gateway.secrets genkey | encrypt | rotate` (values on stdin, one per line)."""
    command = argv[0] if argv else ""
    if command == "genkey":
        print(generate_key())
        return 0
    if command not in ("encrypt", "rotate"):
        print("usage: python -m gateway.secrets genkey | encrypt | rotate  (values on stdin)", file=sys.stderr)
        return 2
    try:
        ring = KeyRing.from_env()
        for line in sys.stdin:
            value = line.rstrip("\n")
            if value:
                print(ring.encrypt(value) if command == "encrypt" else ring.rotate(value))
    except SecretsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0

