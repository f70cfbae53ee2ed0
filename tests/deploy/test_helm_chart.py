"""The Helm chart, checked without a cluster: rendered and linted by Helm's own engine, its
values held against its templates, its objects against each other and against the gateway's
code; the rendered container then runs here and answers its own probes."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from helm_python import HelmRenderError

from tests.deploy import helm
from tests.deploy.code import REPO, app, env_prefix, gateway_env_names, package_version, serves
from tests.deploy.images import stages
from tests.deploy.running import Running, clean_env, entrypoint_argv
from tests.procs import free_port, wait_http

SCENARIOS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "one replica, no autoscaling": {"autoscaling": {"enabled": False}, "replicaCount": 1},
    "fixed replicas": {"autoscaling": {"enabled": False}, "replicaCount": 3},
    "ingress, ServiceMonitor and PrometheusRule": {
        "ingress": {"enabled": True, "className": "nginx", "tls": [{"secretName": "tls", "hosts": ["a.example"]}]},
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
        "prometheusRule": {"enabled": True, "labels": {"release": "prometheus"}},
        "metricsToken": {"value": "placeholder-metrics-token"},
    },
    "one replica, no Redis or Postgres": {"autoscaling": {"enabled": False}, "replicaCount": 1,
                                           "redis": {"url": ""}, "database": {"url": ""}},
    "existing secrets": {
        "masterKey": {"value": "", "existingSecret": "gw-keys", "secretKey": "master"},
        "encryptionKey": {"value": "", "existingSecret": "gw-keys", "secretKey": "enc"},
        "redis": {"url": "", "existingSecret": "redis-auth"},
        "database": {"url": "", "existingSecret": "pg-auth", "secretKey": "uri"},
        "providerKeys": {"values": {}, "existingSecret": "provider-keys"},
        "config": {"existingConfigMap": "my-models"},
        "metricsToken": {"existingSecret": "metrics-auth"},
        "serviceMonitor": {"enabled": True},
    },
}


def values() -> dict[str, Any]:
    return dict(yaml.safe_load(helm.chart_file("values.yaml").read_text()))


def pod_spec(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return dict(helm.one(objects, "Deployment")["spec"]["template"]["spec"])


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (only,) = pod_spec(objects)["containers"]
    return dict(only)


def literal_env(c: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}


def test_chart_is_versioned_with_the_package() -> None:
    chart = yaml.safe_load(helm.chart_file("Chart.yaml").read_text())
    assert chart["version"] == package_version()
    assert str(chart["appVersion"]) == package_version()


def test_lint_is_clean() -> None:
    report = helm.lint(helm.test_values())
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert not problems, problems


def test_templates_use_only_values_that_exist() -> None:
    defined = values()
    missing = {path: used for path, used in helm.template_value_paths().items() if not helm.resolves(defined, path)}
    assert not missing, f"used by templates, absent from values.yaml: {missing}"


def test_every_value_is_used_and_documented() -> None:
    used = set(helm.template_value_paths())
    bound = helm.bound_value_paths()
    # Used whole (copied into a manifest with toYaml): what is under them is Kubernetes' own schema.
    whole = {p for p in used - bound if not any(u.startswith(p + ".") for u in used)}
    for path, documented in helm.values_keys(helm.chart_file("values.yaml").read_text()):
        if any(path.startswith(w + ".") for w in whole):
            continue
        assert any(u == path or u.startswith(path + ".") or path.startswith(u + ".") for u in used), (
            f"values.yaml: {path} is used by no template"
        )
        assert documented, f"values.yaml: {path} has no comment"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_objects_fit_together_and_fit_the_gateway(scenario: str, tmp_path: Path) -> None:
    objects = helm.render(SCENARIOS[scenario])
    for obj in objects:
        assert {"apiVersion", "kind", "metadata"} <= set(obj), obj
    deployment = helm.one(objects, "Deployment")
    pod = pod_spec(objects)
    c = container(objects)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    env = literal_env(c)
    prefix = env_prefix()

    names = {e["name"] for e in c["env"]}
    assert names <= gateway_env_names(), f"not settings of the gateway: {names - gateway_env_names()}"
    assert int(env[f"{prefix}PORT"]) == ports["http"]

    gateway_app = app(str(tmp_path))
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz"), ("startupProbe", None)):
        get = c[probe]["httpGet"]
        assert get["port"] in ports and serves(gateway_app, "GET", get["path"]), f"{probe}: {get}"
        assert path is None or get["path"] == path

    drain = float(env[f"{prefix}DRAIN_SECONDS"])
    pause = int(c["lifecycle"]["preStop"]["exec"]["command"][-1])
    grace = pod["terminationGracePeriodSeconds"]
    assert grace > pause + drain, "the kubelet would kill a pod still draining"
    margin = values()["gateway"]["terminationMarginSeconds"]
    assert grace == pause + math.ceil(drain) + margin

    service = helm.one(objects, "Service")
    assert service["spec"]["selector"].items() <= labels.items()
    assert all(p["targetPort"] in ports for p in service["spec"]["ports"])

    secrets = {s["metadata"]["name"]: s.get("data", {}) for s in objects if s["kind"] == "Secret"}
    config_maps = {m["metadata"]["name"]: m["data"] for m in objects if m["kind"] == "ConfigMap"}
    existing = {v.get("existingSecret") for v in SCENARIOS[scenario].values() if isinstance(v, dict)}
    for e in c["env"]:
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if ref and ref["name"] in secrets:
            assert ref["key"] in secrets[ref["name"]], f"{e['name']}: key {ref['key']} not in {ref['name']}"
        elif ref:
            assert ref["name"] in existing, f"{e['name']}: secret {ref['name']} is neither rendered nor given"
    for source in c.get("envFrom", []):
        assert source["secretRef"]["name"] in secrets or source["secretRef"]["name"] in existing
    (config_volume,) = [v for v in pod["volumes"] if "configMap" in v]
    expected_config = SCENARIOS[scenario].get("config", {}).get("existingConfigMap")
    assert config_volume["configMap"]["name"] in config_maps or config_volume["configMap"]["name"] == expected_config

    replicas = deployment["spec"].get("replicas")
    hpas = [o for o in objects if o["kind"] == "HorizontalPodAutoscaler"]
    pdbs = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    if hpas:
        assert replicas is None, "the HPA owns the replica count"
        assert hpas[0]["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    most_pods = hpas[0]["spec"]["minReplicas"] if hpas else replicas
    assert bool(pdbs) == (most_pods > 1), "a PDB with a single pod would block every node drain"
    for pdb in pdbs:
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()

    for monitor in (o for o in objects if o["kind"] == "ServiceMonitor"):
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
            assert serves(gateway_app, "GET", endpoint["path"]), endpoint
    for ingress in (o for o in objects if o["kind"] == "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                assert backend["name"] == service["metadata"]["name"]
                assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
                assert not routes(path, "/metrics"), f"the Ingress exposes /metrics: {path}"
                assert serves(gateway_app, "GET", path["path"].rstrip("/") + "/models") or path["path"] == "/admin"


def test_drain_and_grace_period_come_from_one_value() -> None:
    objects = helm.render({"gateway": {"drainSeconds": 120}})
    env = literal_env(container(objects))
    assert float(env[f"{env_prefix()}DRAIN_SECONDS"]) == 120
    assert pod_spec(objects)["terminationGracePeriodSeconds"] > 120


def test_a_master_key_is_required() -> None:
    with pytest.raises(HelmRenderError, match="masterKey"):
        helm.render({"masterKey": {"value": "", "existingSecret": ""}})


def test_notes_warn_when_limits_and_ledger_would_be_per_pod() -> None:
    assert "WARNING" not in helm.notes()
    one_pod = {"autoscaling": {"enabled": False}, "replicaCount": 1, "redis": {"url": ""}, "database": {"url": ""}}
    assert helm.notes(one_pod).count("WARNING") == 2


@pytest.mark.parametrize("pods", [
    {"autoscaling": {"enabled": False}, "replicaCount": 2},
    {"autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 3}},
], ids=["two replicas", "autoscaling up to three"])  # fmt: skip
@pytest.mark.parametrize("missing", ["redis", "database"])
def test_more_than_one_pod_needs_redis_and_postgres(pods: dict[str, Any], missing: str) -> None:
    with pytest.raises(HelmRenderError, match="more than one replica needs Redis"):
        helm.render({**pods, missing: {"url": "", "existingSecret": ""}})
    helm.render({**pods, missing: {"url": "", "existingSecret": f"my-{missing}"}})  # a Secret of one's own does


def routes(path: dict[str, Any], target: str) -> bool:
    """Whether an Ingress path sends `target` to the gateway (Prefix matches whole path elements)."""
    prefix = path["path"].rstrip("/")
    if path["pathType"] == "Exact":
        return bool(path["path"] == target)
    return target == prefix or target.startswith(prefix + "/")


@pytest.mark.parametrize("path", ["/", "/metrics", "/metrics/x"])
def test_the_ingress_refuses_to_route_metrics(path: str) -> None:
    paths = [{"path": "/v1", "pathType": "Prefix"}, {"path": path, "pathType": "Prefix"}]
    hosts = [{"host": "a.example", "paths": paths}]
    with pytest.raises(HelmRenderError, match="/metrics"):
        helm.render({"ingress": {"enabled": True, "hosts": hosts}})


def test_the_service_monitor_presents_the_metrics_token_and_names_the_rules_job() -> None:
    objects = helm.render(SCENARIOS["ingress, ServiceMonitor and PrometheusRule"])
    monitor, service = helm.one(objects, "ServiceMonitor"), helm.one(objects, "Service")
    (endpoint,) = monitor["spec"]["endpoints"]
    credentials = endpoint["authorization"]["credentials"]
    env = {e["name"]: e for e in container(objects)["env"]}
    assert env["GATEWAY_METRICS_TOKEN"]["valueFrom"]["secretKeyRef"] == credentials
    secret = next(o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"] == credentials["name"])
    assert base64.b64decode(secret["data"][credentials["key"]]) == b"placeholder-metrics-token"
    # Prometheus's job label comes from this Service label: the one the alert rules select.
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "llm-gateway"
    assert 'job="llm-gateway"' in helm.chart_file("files/llm-gateway.rules.yml").read_text()
    with pytest.raises(HelmRenderError, match="metricsToken"):
        helm.render({"serviceMonitor": {"enabled": True}})


def test_the_prometheus_rule_and_the_dashboards_are_the_repositorys() -> None:
    objects = helm.render(SCENARIOS["ingress, ServiceMonitor and PrometheusRule"])
    rules = yaml.safe_load((REPO / "deploy" / "prometheus" / "llm-gateway.rules.yml").read_text())
    rule = helm.one(objects, "PrometheusRule")
    assert rule["spec"] == rules and rule["metadata"]["labels"]["release"] == "prometheus"
    (config_map,) = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-dashboards")]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = {p.name: json.loads(p.read_text()) for p in (REPO / "deploy" / "grafana" / "dashboards").glob("*.json")}
    assert {name: json.loads(text) for name, text in config_map["data"].items()} == shipped
    assert not [o for o in helm.render({"grafanaDashboards": {"enabled": False}}) if o["kind"] == "ConfigMap"
                and o["metadata"]["name"].endswith("-dashboards")]  # fmt: skip
    assert not [o for o in helm.render() if o["kind"] == "PrometheusRule"], "off unless asked for (it needs the CRD)"


def test_helm_test_asks_the_service_for_readyz(tmp_path: Path) -> None:
    objects = helm.render()
    (pod,) = [o for o in objects if o["kind"] == "Pod"]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    service = helm.one(objects, "Service")
    url = pod["spec"]["containers"][0]["command"][-1]
    assert url == f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}/readyz"
    assert serves(app(str(tmp_path)), "GET", "/readyz")


def test_values_are_checked_against_the_schema() -> None:
    import jsonschema

    schema = json.loads(helm.chart_file("values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(values(), schema)
    jsonschema.validate(helm.test_values(), schema)
    for bad in ({"replicaCount": "two"}, {"gateway": {"logLevel": "loud"}}, {"redis": {"uri": "x"}}):
        report = helm.lint(helm.merge(helm.test_values(), bad))
        assert report["errors"], bad


def test_rendered_container_serves_its_probes(tmp_path: Path) -> None:
    """The Deployment's container, run here: its args, its ConfigMap, its env and secrets."""
    objects = helm.render()
    c = container(objects)
    pod = pod_spec(objects)
    config_maps = {m["metadata"]["name"]: m["data"] for m in objects if m["kind"] == "ConfigMap"}
    secrets = {s["metadata"]["name"]: s["data"] for s in objects if s["kind"] == "Secret"}
    files: dict[str, Path] = {}
    for mount in c["volumeMounts"]:
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        if "configMap" in volume:
            for key, text in config_maps[volume["configMap"]["name"]].items():
                local = tmp_path / key
                local.write_text(text)
                files[f"{mount['mountPath']}/{key}"] = local
    argv = [str(files.get(arg, arg)) for arg in [*stages()[-1].last("ENTRYPOINT").value, *c["args"]]]
    assert any(arg in files for arg in c["args"]), "the config file comes from the ConfigMap"

    def decoded(name: str, key: str) -> str:
        return base64.b64decode(secrets[name][key]).decode()

    env = literal_env(c)
    for e in c["env"]:
        if ref := e.get("valueFrom", {}).get("secretKeyRef"):
            env[e["name"]] = decoded(ref["name"], ref["key"])
    for source in c.get("envFrom", []):
        name = source["secretRef"]["name"]
        env.update({key: decoded(name, key) for key in secrets[name]})
    prefix = env_prefix()
    # The datastores named in the test values exist only in a cluster.
    env = {k: v for k, v in env.items() if k not in (f"{prefix}REDIS_URL", f"{prefix}DATABASE_URL")}
    port = free_port()
    env.update({f"{prefix}HOST": "127.0.0.1", f"{prefix}PORT": str(port), f"{prefix}DATA_DIR": str(tmp_path)})
    running = Running(entrypoint_argv(argv), clean_env(env), tmp_path / "pod.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", running.proc)  # type: ignore[arg-type]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            path = c[probe]["httpGet"]["path"]
            assert httpx.get(f"http://127.0.0.1:{port}{path}").status_code == 200, probe
    finally:
        running.stop()
