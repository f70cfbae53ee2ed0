"""promtool on the alert rules and the scrape configs: `check rules`, the rules' unit tests
(deploy/prometheus/tests/), `check config`; and each alert's runbook section exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.code import REPO
from tests.deploy.helm import CHART
from tests.deploy.prometheus import as_signal, binary

PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
RULES = PROMETHEUS_DIR / "llm-gateway.rules.yml"
RUNBOOK = REPO / "docs" / "runbook.md"


def promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> str:
    done = subprocess.run([binary("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def alert_rules() -> list[dict[str, object]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def test_the_rules_pass_promtool_check() -> None:
    assert "SUCCESS" in promtool("check", "rules", str(RULES))


def test_the_rules_unit_tests_pass() -> None:
    tests = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
    assert tests
    out = promtool("test", "rules", *map(str, tests))
    assert "SUCCESS" in out and "FAILED" not in out


def test_every_alert_has_a_unit_test() -> None:
    tested = {
        case["alertname"]
        for path in (PROMETHEUS_DIR / "tests").glob("*.yml")
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert {rule["alert"] for rule in alert_rules()} <= tested


SCRAPE_CONFIGS = [REPO / "deploy" / "compose" / "prometheus.yml", PROMETHEUS_DIR / "scrape" / "prometheus.yml"]


@pytest.mark.parametrize("config", SCRAPE_CONFIGS, ids=["compose", "scrape"])
def test_the_scrape_configs_pass_promtool_check(config: Path, tmp_path: Path) -> None:
    # The files they name exist only where they are deployed (the container, /etc/prometheus):
    # check a copy naming the repository's rules and a token file here.
    doc = yaml.safe_load(config.read_text())
    doc["rule_files"] = [str(RULES)]
    token = tmp_path / "token"
    token.write_text("a-token\n")
    for job in doc["scrape_configs"]:
        assert job["authorization"]["credentials_file"], f"{job['job_name']}: /metrics needs its token"
        job["authorization"]["credentials_file"] = str(token)
        assert job["job_name"] == "llm-gateway", "the job the alert rules select"
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(doc))
    promtool("check", "config", str(tmp_path / "prometheus.yml"))


def test_every_alert_has_a_runbook_section() -> None:
    runbook = RUNBOOK.read_text()
    headings = {re.sub(r"[^a-z0-9]", "", line.lstrip("#").strip().lower())
                for line in runbook.splitlines() if line.startswith("## ")}  # fmt: skip
    for rule in alert_rules():
        anchor = str(rule["annotations"]["runbook_url"]).partition("#")[2]  # type: ignore[index]
        assert anchor == str(rule["alert"]).lower(), rule["alert"]
        assert anchor in headings, f"docs/runbook.md has no section for {rule['alert']}"


def test_the_chart_ships_the_same_rules() -> None:
    assert (CHART / "files" / "llm-gateway.rules.yml").read_text() == RULES.read_text(), (
        "run python deploy/grafana/build_dashboards.py"
    )


def test_alert_expressions_turn_into_signals_without_touching_matchers() -> None:
    assert as_signal('up{job="x", a!="1"} == 0') == 'up{job="x", a!="1"} == bool 0'
    assert as_signal("a / b > 0.1\nand c > 0.1") == "a / b > bool 0.1\nand c > bool 0.1"
    assert as_signal("x unless y <= time()") == "x unless y <= time()"  # a filter between vectors stays one
    assert as_signal("a > bool 1") == "a > bool 1"
    assert as_signal("histogram_quantile(0.95, x) >= 2") == "histogram_quantile(0.95, x) >= bool 2"
