"""The compose stack as `docker compose` would see it: `.env` interpolated, then parsed.

Interpolation follows the Compose specification's rules for `$$`, `${VAR}`, `${VAR:-default}`,
`${VAR-default}`, `${VAR:?error}` and `${VAR?error}`, with `.env.example` standing in for `.env`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from compose_spec import PyOptions

from tests.deploy.code import REPO

COMPOSE_DIR = REPO / "deploy" / "compose"
_REFERENCE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class InterpolationError(ValueError):
    pass


def read_env_file(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"{path.name}:{number}: not NAME=value")
        env[name] = value
    return env


def interpolate(text: str, env: dict[str, str]) -> tuple[str, set[str]]:
    """The text with every reference replaced, and the names it referenced."""
    names: set[str] = set()

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["name"] or match["bare"]
        names.add(name)
        value, op, arg = env.get(name), match["op"], match["arg"] or ""
        missing = value is None or (op is not None and op.startswith(":") and value == "")
        if op in (":-", "-"):
            return arg if missing else str(value)
        if op in (":?", "?") and missing:
            raise InterpolationError(f"{name}: {arg}")
        return value or ""

    return _REFERENCE.sub(replace, text), names


@dataclass(frozen=True)
class Stack:
    raw: str
    text: str  # interpolated
    data: dict[str, Any]
    env: dict[str, str]
    referenced: set[str]

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        return dict(self.data["services"])

    def environment(self, service: str) -> dict[str, str]:
        environment = self.services[service].get("environment") or {}
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) for item in environment)
        return {name: str(value) for name, value in environment.items()}

    def mounts(self, service: str) -> dict[str, Path | str]:
        """Container path -> host path (a bind mount, resolved) or volume name."""
        mounts: dict[str, Path | str] = {}
        for volume in self.services[service].get("volumes") or []:
            source, target = volume.split(":")[:2]
            mounts[target] = (COMPOSE_DIR / source).resolve() if source.startswith(".") else source
        return mounts


def load_stack(env: dict[str, str] | None = None) -> Stack:
    raw = (COMPOSE_DIR / "compose.yaml").read_text()
    env = read_env_file(COMPOSE_DIR / ".env.example") if env is None else env
    text, referenced = interpolate(raw, env)
    # The Compose Specification's own model (the compose_spec crate) validates the file.
    PyOptions(apply_merge=True).from_yaml(text).validate()
    return Stack(raw, text, yaml.safe_load(text), env, referenced)
