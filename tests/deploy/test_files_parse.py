"""Every deployment file parses: YAML and JSON under deploy/ (the chart's Go templates are
checked by rendering them, in test_helm_chart.py), the load test's YAML, and the env example."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.deploy.code import REPO
from tests.deploy.compose import read_env_file

TEMPLATES = REPO / "deploy" / "helm" / "llm-gateway" / "templates"


def data_files() -> list[Path]:
    found = [p for p in (REPO / "deploy").rglob("*") if p.suffix in (".yaml", ".yml", ".json")]
    found += [p for p in (REPO / "loadtests").glob("*.y*ml")]
    return sorted(p for p in found if TEMPLATES not in p.parents)


def test_the_deployment_files_are_there() -> None:
    names = {p.relative_to(REPO).as_posix() for p in data_files()}
    assert {"deploy/compose/compose.yaml", "deploy/helm/llm-gateway/Chart.yaml",
            "deploy/helm/llm-gateway/values.yaml", "loadtests/gateway.yaml"} <= names


@pytest.mark.parametrize("path", data_files(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_parses(path: Path) -> None:
    text = path.read_text()
    if path.suffix == ".json":
        assert isinstance(json.loads(text), dict | list)
    else:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
        assert documents and all(isinstance(d, dict | list) for d in documents), path


def test_env_example_is_name_value_lines() -> None:
    assert read_env_file(REPO / "deploy" / "compose" / ".env.example")
