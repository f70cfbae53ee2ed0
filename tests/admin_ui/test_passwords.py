"""Admin users' password hashes: scrypt with the parameters the stored text names."""

from __future__ import annotations

import asyncio

import pytest

from admin.ui.passwords import PasswordChecker, PasswordError, hash_password, verify_password


def test_a_hash_names_its_parameters_and_checks_the_password() -> None:
    stored = hash_password("correct horse battery")
    scheme, log2_n, r, p, salt, digest = stored.split("$")
    assert (scheme, log2_n, r, p) == ("scrypt", "15", "8", "3")
    assert len(salt) == 22 and len(digest) == 43  # 16 and 32 bytes, base64url without padding
    assert verify_password("correct horse battery", stored)
    assert not verify_password("correct horse batterY", stored)
    assert hash_password("correct horse battery") != stored  # a new salt each time


def test_older_parameters_stay_valid() -> None:
    # What a later release does when it raises the cost: hashes made before still check.
    cheaper = hash_password("an older password", log2_n=10, p=1)
    assert cheaper.startswith("scrypt$10$8$1$")
    assert verify_password("an older password", cheaper)


@pytest.mark.parametrize("stored", ["", "plain", "bcrypt$2b$12$x", "scrypt$15$8$3$%%%$%%%", "scrypt$x$8$3$a$b"])
def test_malformed_stored_hashes_never_match(stored: str) -> None:
    assert not verify_password("whatever it is", stored)


def test_new_passwords_must_be_long_enough() -> None:
    with pytest.raises(PasswordError, match="at least 12"):
        hash_password("short")
    with pytest.raises(PasswordError, match="at most"):
        hash_password("x" * 2000)


async def test_the_checker_refuses_unknown_users_after_the_same_work() -> None:
    checker = PasswordChecker(concurrent=1)
    stored = hash_password("a right password")
    results = await asyncio.gather(checker.verify("a right password", stored), checker.verify("a wrong one!", stored),
                                   checker.verify("a right password", None))
    assert results == [True, False, False]
