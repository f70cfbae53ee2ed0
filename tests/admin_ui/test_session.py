"""Signed payloads for the UI's cookies: tampering, a wrong key and expiry all read as no session."""

from __future__ import annotations

import base64
import time

import orjson
from pydantic import SecretStr

from admin.ui.session import Signer, same

SECRET = SecretStr("a server secret")


def test_a_signed_payload_reads_back_until_it_expires() -> None:
    signer = Signer(SECRET)
    now = time.time()
    value = signer.sign({"sub": "user:ada", "exp": int(now) + 60})
    assert signer.unsign(value, now) == {"sub": "user:ada", "exp": int(now) + 60}
    assert signer.unsign(value, now + 61) is None


def test_tampered_foreign_or_malformed_values_read_as_nothing() -> None:
    signer = Signer(SECRET)
    value = signer.sign({"sub": "user:vic", "role": "viewer", "exp": int(time.time()) + 60})
    body, mac = value.split(".")
    promoted = base64.urlsafe_b64encode(orjson.dumps({"sub": "user:vic", "role": "admin",
                                                      "exp": int(time.time()) + 60})).decode().rstrip("=")
    assert signer.unsign(f"{promoted}.{mac}") is None
    assert Signer(SecretStr("another secret")).unsign(value) is None
    assert Signer(SECRET, purpose=b"another purpose").unsign(value) is None
    for bad in (None, "", "no-dot", "a.b.c", body + ".", "é.é", "x" * 5000):
        assert signer.unsign(bad) is None
    no_expiry = signer.sign({"sub": "master"})
    assert signer.unsign(no_expiry) is None


def test_fingerprints_are_keyed_and_comparisons_take_any_text() -> None:
    one, other = Signer(SECRET), Signer(SecretStr("another secret"))
    assert one.fingerprint("hash") == one.fingerprint("hash") != other.fingerprint("hash")
    assert len(one.fingerprint("hash")) == 32
    assert same("é", "é") and not same("é", "e")
