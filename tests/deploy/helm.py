"""The Helm chart rendered by Helm's own engine (the Helm SDK through `helm-python-sdk`, no
binary needed), and the `.Values` paths its templates use."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

from tests.deploy.code import REPO

CHART = REPO / "deploy" / "helm" / "llm-gateway"
RELEASE = "gw"
NAMESPACE = "llm"
# `.Values.a.b`, `$.Values.a.b`, `index .Values "a"` is not used by the chart.
VALUES_PATH = re.compile(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")
VARIABLE_BINDING = re.compile(
    r"\$(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*:=\s*\$?\.Values(?P<path>(?:\.[A-Za-z_][A-Za-z0-9_]*)+)"
)


def test_values() -> dict[str, Any]:
    return yaml.safe_load((CHART / "ci" / "test-values.yaml").read_text())


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def render(overrides: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every Kubernetes object the chart renders with the test values plus `overrides`."""
    values = merge(test_values(), overrides or {})
    with helm.Chart.load(str(CHART)) as chart:
        manifests = chart.render(chart.merge_values(values), name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects = []
    for path, text in sorted(manifests.items()):
        if path.endswith(".txt"):
            continue
        objects += [doc for doc in yaml.safe_load_all(text) if doc]
    return objects


def notes(overrides: dict[str, Any] | None = None) -> str:
    values = merge(test_values(), overrides or {})
    with helm.Chart.load(str(CHART)) as chart:
        manifests = chart.render(chart.merge_values(values), name=RELEASE, namespace=NAMESPACE, is_install=True)
    return next(text for path, text in manifests.items() if path.endswith("NOTES.txt"))


def lint(values: dict[str, Any]) -> dict[str, Any]:
    return dict(helm.lint(str(CHART), values, strict=True))


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} objects"
    return found[0]


def kinds(objects: list[dict[str, Any]]) -> list[str]:
    return sorted(o["kind"] for o in objects)


def template_value_paths() -> dict[str, set[str]]:
    """Each `.Values` path a template uses -> the templates that use it, following variables
    bound to a part of the values (`$g := .Values.gateway` ... `$g.port` is `gateway.port`)."""
    paths: dict[str, set[str]] = {}
    for template in sorted((CHART / "templates").iterdir()):
        text = template.read_text()
        for match in VALUES_PATH.finditer(text):
            paths.setdefault(match[1][1:], set()).add(template.name)
        for binding in VARIABLE_BINDING.finditer(text):
            uses = re.finditer(r"\$" + binding["name"] + r"((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", text)
            for use in uses:
                paths.setdefault(binding["path"][1:] + use[1], set()).add(template.name)
    return paths


def bound_value_paths() -> set[str]:
    """Parts of the values bound to a variable: used through the variable, not as a whole."""
    return {m["path"][1:] for t in (CHART / "templates").iterdir() for m in VARIABLE_BINDING.finditer(t.read_text())}


def values_keys(text: str) -> list[tuple[str, bool]]:
    """(dotted path, documented) for every mapping key in values.yaml outside lists; documented
    means a comment line directly above it."""
    keys: list[tuple[str, bool]] = []
    stack: list[tuple[int, str]] = []
    previous = ""
    in_list_at: int | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            previous = ""
            continue
        indent = len(line) - len(line.lstrip())
        if in_list_at is not None and indent > in_list_at:
            previous = stripped
            continue
        in_list_at = None
        key = re.match(r"([A-Za-z_][A-Za-z0-9_]*):(\s|$)", stripped)
        if stripped.startswith("- "):
            in_list_at = indent - 1
        elif key and not stripped.startswith("#"):
            while stack and stack[-1][0] >= indent:
                stack.pop()
            path = ".".join([name for _, name in stack] + [key[1]])
            keys.append((path, previous.startswith("#")))
            stack.append((indent, key[1]))
        previous = stripped
    return keys


def resolves(values: dict[str, Any], path: str) -> bool:
    node: Any = values
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def chart_file(name: str) -> Path:
    return CHART / name
