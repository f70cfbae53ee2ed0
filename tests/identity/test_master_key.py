"""A master key shorter than 32 characters stops start-up with one line saying why, outside the demo."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr

from gateway.app import create_app
from gateway.config.file import Config, ConfigError
from gateway.config.settings import Settings
from gateway.identity.auth import MIN_MASTER_KEY_LENGTH, check_master_key


def serve(tmp_path: Path, key: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump({"settings": {"data_dir": str(tmp_path / "data")}, "models": []}))
    return subprocess.run([sys.executable, "-m", "gateway", "serve", "--config", str(path), "--port", "0"],
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "GATEWAY_MASTER_KEY": key})  # fmt: skip


def test_a_short_master_key_stops_start_up_with_one_line(tmp_path: Path) -> None:
    key = "sk-" + "x" * (MIN_MASTER_KEY_LENGTH - 4)
    result = serve(tmp_path, key)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("config error: settings.master_key: at least 32 characters, not 31")
    assert key not in result.stderr


def test_the_rule_and_the_demo() -> None:
    with pytest.raises(ConfigError, match="required"):
        check_master_key(None)
    with pytest.raises(ConfigError, match="at least 32"):
        check_master_key(SecretStr("sk-demo-master-key"))
    assert check_master_key(SecretStr("k" * 32)).get_secret_value() == "k" * 32
    # `gateway demo` keeps its printed, well-known key: it listens on loopback only.
    assert check_master_key(SecretStr("sk-demo-master-key"), demo=True)


def test_the_demo_app_starts_with_its_short_key(tmp_path: Path) -> None:
    settings = Settings(master_key=SecretStr("sk-demo-master-key"), data_dir=str(tmp_path))
    assert create_app(Config(), settings, demo=True) is not None
    with pytest.raises(ConfigError):
        create_app(Config(), settings)
