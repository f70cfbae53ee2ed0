"""The Dockerfile read with Docker's own parser (BuildKit's, through the `dockerfile` package),
and `.dockerignore` evaluated with Docker's rules."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import dockerfile

from tests.deploy.code import REPO


@dataclass(frozen=True)
class Stage:
    base: str
    name: str | None
    commands: tuple[dockerfile.Command, ...]

    def all(self, instruction: str) -> list[dockerfile.Command]:
        return [c for c in self.commands if c.cmd == instruction]

    def last(self, instruction: str) -> dockerfile.Command:
        found = self.all(instruction)
        assert found, f"the stage from {self.base} has no {instruction}"
        return found[-1]

    def env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for command in self.all("ENV"):
            pairs = command.value
            env.update(zip(pairs[::2], pairs[1::2], strict=True))
        return env


@cache
def stages(path: Path = REPO / "Dockerfile") -> tuple[Stage, ...]:
    found: list[Stage] = []
    current: list[dockerfile.Command] = []
    head: dockerfile.Command | None = None
    for command in dockerfile.parse_file(str(path)):
        if command.cmd == "FROM":
            if head is not None:
                found.append(_stage(head, current))
            head, current = command, []
        elif head is not None:
            current.append(command)
    assert head is not None, "the Dockerfile has no FROM"
    found.append(_stage(head, current))
    return tuple(found)


def _stage(head: dockerfile.Command, commands: list[dockerfile.Command]) -> Stage:
    value = head.value
    name = value[2] if len(value) == 3 and value[1].upper() == "AS" else None
    return Stage(value[0], name, tuple(commands))


@cache
def build_args(path: Path = REPO / "Dockerfile") -> dict[str, str]:
    args: dict[str, str] = {}
    for command in dockerfile.parse_file(str(path)):
        if command.cmd == "ARG":
            name, _, default = command.value[0].partition("=")
            args[name] = default
    return args


def resolve_args(text: str) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: build_args().get(m[1] or m[2], m[0]), text)


class DockerIgnore:
    """Docker's matching: patterns in order, the last one that matches a path or any of its
    parent directories decides; `!` re-includes; `**` spans directories."""

    def __init__(self, text: str) -> None:
        self.rules: list[tuple[bool, re.Pattern[str]]] = []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            negated = line.startswith("!")
            pattern = line[1:] if negated else line
            self.rules.append((negated, re.compile(_glob_to_regex(pattern.strip("/")))))

    def excluded(self, path: str) -> bool:
        parts = path.strip("/").split("/")
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        excluded = False
        for negated, rule in self.rules:
            if any(rule.fullmatch(candidate) for candidate in candidates):
                excluded = not negated
        return excluded


def _glob_to_regex(pattern: str) -> str:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return out
