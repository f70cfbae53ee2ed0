"""Provider keys encrypted at rest: AES-256-GCM, key ids, rotation, and no secret in any error."""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import pytest

from gateway.config.file import ConfigError, config_from_dict
from gateway.providers import PROVIDERS
from gateway.secrets import KEY_ENV, OLD_KEYS_ENV, KeyRing, SecretsError, decrypt, encrypt, generate_key

PLAINTEXT = "sk-live-provider-key-0123456789"


def _key() -> bytes:
    return base64.b64decode(generate_key())


def test_round_trip_and_fresh_nonces() -> None:
    ring = KeyRing(_key())
    first, second = ring.encrypt(PLAINTEXT), ring.encrypt(PLAINTEXT)
    assert first != second
    assert ring.decrypt(first) == ring.decrypt(second) == PLAINTEXT
    assert PLAINTEXT not in first and first.startswith(f"gwenc1.{ring.current_id}.")


def test_rotation_old_keys_decrypt_new_writes_use_the_new_key() -> None:
    old, new = _key(), _key()
    token = KeyRing(old).encrypt(PLAINTEXT)
    rotated_ring = KeyRing(new, [old])
    assert rotated_ring.decrypt(token) == PLAINTEXT
    assert rotated_ring.needs_rotation(token)
    fresh = rotated_ring.rotate(token)
    assert not rotated_ring.needs_rotation(fresh) and rotated_ring.rotate(fresh) == fresh
    assert KeyRing(new).decrypt(fresh) == PLAINTEXT
    with pytest.raises(SecretsError, match="no configured key"):
        KeyRing(new).decrypt(token)


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-2] + ("A" if t[-2] != "A" else "B") + t[-1],  # a flipped ciphertext byte
    lambda t: t.replace("gwenc1.", "gwenc2."),
    lambda t: "gwenc1." + t.split(".")[1],
    lambda t: t + "!!!",
])
def test_tampering_is_detected_without_leaking(mangle: object) -> None:
    key = _key()
    token = KeyRing(key).encrypt(PLAINTEXT)
    with pytest.raises(SecretsError) as caught:
        KeyRing(key).decrypt(mangle(token))  # type: ignore[operator]
    assert PLAINTEXT not in str(caught.value) and base64.b64encode(key).decode() not in str(caught.value)


def test_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = generate_key(), generate_key()
    monkeypatch.setenv(KEY_ENV, old)
    token = encrypt(PLAINTEXT)
    monkeypatch.setenv(KEY_ENV, new)
    monkeypatch.setenv(OLD_KEYS_ENV, f" {old} ,")
    assert decrypt(token) == PLAINTEXT
    monkeypatch.setenv(KEY_ENV, base64.b64encode(b"short").decode())
    with pytest.raises(SecretsError, match="32 bytes"):
        encrypt(PLAINTEXT)
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(SecretsError, match="is not set"):
        encrypt(PLAINTEXT)


def test_a_deployment_key_stored_encrypted_in_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, generate_key())
    stored = {"provider": "anthropic", "base_url": "https://api.anthropic.com/v1",
              "api_key_encrypted": encrypt(PLAINTEXT)}
    raw = {"models": [{"name": "m", "deployments": [stored]}]}
    config, _ = config_from_dict(raw, set(PROVIDERS))
    key = config.models[0].deployments[0].api_key
    assert key is not None and key.get_secret_value() == PLAINTEXT
    assert PLAINTEXT not in repr(config)
    monkeypatch.setenv(KEY_ENV, generate_key())
    where = r"models\[0\].deployments\[0\].api_key_encrypted"
    with pytest.raises(ConfigError, match=where + ": no configured key") as caught:
        config_from_dict(raw, set(PROVIDERS))
    assert PLAINTEXT not in str(caught.value)


def test_command_line_encrypt_then_rotate() -> None:
    old, new = generate_key(), generate_key()
    env = {**os.environ, KEY_ENV: old}
    run = [sys.executable, "-m", "gateway.secrets"]
    token = subprocess.run([*run, "encrypt"], input=PLAINTEXT + "\n", env=env, capture_output=True, text=True,
                           check=True).stdout.strip()
    env.update({KEY_ENV: new, OLD_KEYS_ENV: old})
    rotated = subprocess.run([*run, "rotate"], input=token + "\n", env=env, capture_output=True, text=True,
                             check=True).stdout.strip()
    assert KeyRing(base64.b64decode(new)).decrypt(rotated) == PLAINTEXT
    failed = subprocess.run([*run, "rotate"], input=token + "\n", env={**os.environ, KEY_ENV: new},
                            capture_output=True, text=True)
    assert failed.returncode == 1 and "no configured key" in failed.stderr and PLAINTEXT not in failed.stderr
