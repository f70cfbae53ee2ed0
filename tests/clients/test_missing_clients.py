"""A missing client skips its test on a developer's machine and fails it under scripts/test."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clients.conftest import REQUIRED_ENV, client_binary


def test_missing_is_a_skip_by_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv(REQUIRED_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="scripts/test installs it"):
        client_binary("claude")


def test_missing_is_a_failure_when_required(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv(REQUIRED_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="`codex` is not on PATH"):
        client_binary("codex")


def test_present_is_its_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "codex"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert client_binary("codex") == str(fake)
