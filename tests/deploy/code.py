"""What the gateway really is, read from its code: settings, environment names, routes, CLI.

The deployment files are checked against these, never against names repeated by hand, so
the checks follow the code as settings and routes are added.
"""

from __future__ import annotations

import ast
import re
import tomllib
from functools import cache
from pathlib import Path

from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.routing import Match

from gateway.config.settings import Settings
from gateway.edge.front import Front

REPO = Path(__file__).resolve().parents[2]
_ENV_NAME = re.compile(r"GATEWAY_[A-Z0-9_]*[A-Z0-9]")


def env_prefix() -> str:
    return str(Settings.model_config.get("env_prefix", ""))


def setting_env_names() -> set[str]:
    """`GATEWAY_<FIELD>` for every field of Settings."""
    return {env_prefix() + name.upper() for name in Settings.model_fields}


@cache
def gateway_env_names() -> frozenset[str]:
    """Every GATEWAY_* variable the gateway reads: its settings, plus the names its modules read
    from the environment directly (e.g. the encryption keys in gateway/secrets/__init__.py)."""
    names = set(setting_env_names())
    for path in (REPO / "gateway").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and _ENV_NAME.fullmatch(node.value):
                names.add(node.value)
    return frozenset(names)


def default_setting(name: str) -> object:
    return Settings.model_fields[name].default


@cache
def app(data_dir: str) -> Front:
    """The real app, built by its factory with the embedded defaults (nothing is started)."""
    from gateway.app import create_app
    from gateway.config.file import Config

    master_key = SecretStr("sk-route-listing-0123456789abcdefgh")
    return create_app(Config(), Settings(master_key=master_key, data_dir=data_dir))


def serves(application: Front, method: str, path: str) -> bool:
    """Whether a request `method path` reaches a route (not the 404 or 405 fallback)."""
    if path in application.routes:
        return method == "POST"  # the API endpoints the front door serves itself
    scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}
    starlette = application.app
    assert isinstance(starlette, Starlette)
    for route in starlette.routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return True
    return False


def package_version() -> str:
    return str(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"])


def console_scripts() -> dict[str, str]:
    return dict(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"])
