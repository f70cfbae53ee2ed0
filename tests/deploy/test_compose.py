"""The compose stack, checked without a Docker engine: parsed by the Compose Specification's
model, its names and paths held against the gateway's code, and its gateway and fake upstream
run here with their own commands and health checks."""

from __future__ import annotations

import fnmatch
import re
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from compose_spec import parse_duration

from tests.deploy.code import REPO, app, default_setting, env_prefix, gateway_env_names, serves
from tests.deploy.compose import COMPOSE_DIR, InterpolationError, Stack, interpolate, load_stack, read_env_file
from tests.deploy.images import stages
from tests.deploy.running import Running, check, clean_env, entrypoint_argv, healthcheck_argv
from tests.procs import free_port

# What the third-party images read from their environment (their documentation, not our code).
IMAGE_ENV = {
    "postgres": {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "POSTGRES_INITDB_ARGS", "PGDATA"},
    "grafana/grafana": {"GF_SECURITY_ADMIN_USER", "GF_SECURITY_ADMIN_PASSWORD", "GF_USERS_ALLOW_SIGN_UP",
                        "GF_AUTH_ANONYMOUS_ENABLED", "GF_INSTALL_PLUGINS", "GF_SERVER_ROOT_URL"},
    "redis": set(),
    "prom/prometheus": set(),
}
SECRET_NAME = re.compile(r"KEY|PASSWORD|SECRET|TOKEN")
URL_IN_TEST = re.compile(r"https?://(?P<host>[\w.-]+):(?P<port>\d+)(?P<path>/[\w/.-]*)")


@pytest.fixture(scope="module")
def stack() -> Stack:
    return load_stack()


def gateway_services(stack: Stack) -> list[str]:
    """Services that run the gateway's image, built from the repository's Dockerfile."""
    return [name for name, service in stack.services.items() if "build" in service]


def image_of(service: dict[str, object]) -> str:
    image = str(service.get("image", ""))
    return image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image


def healthcheck_url(service: dict[str, object]) -> re.Match[str]:
    test = service["healthcheck"]["test"]  # type: ignore[index]
    match = URL_IN_TEST.search(" ".join(test) if isinstance(test, list) else str(test))
    assert match, f"no URL in the health check {test}"
    return match


def test_every_service_has_a_health_check_and_waits_for_healthy_dependencies(stack: Stack) -> None:
    for name, service in stack.services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in stack.services, f"{name} depends on unknown {dependency}"
            assert condition.get("condition") == "service_healthy", f"{name} -> {dependency}"


def test_the_stack_has_every_part(stack: Stack) -> None:
    images = {image_of(service) for service in stack.services.values()}
    assert {"redis", "postgres", "prom/prometheus", "grafana/grafana"} <= images
    commands = {tuple(s.get("command") or ())[:1] for n, s in stack.services.items() if n in gateway_services(stack)}
    assert ("fake-upstream",) in commands and () in commands, "the gateway (image's CMD) and the fake upstream"
    volumes = stack.mounts("postgres")
    assert volumes.get("/var/lib/postgresql/data") in stack.data["volumes"], "Postgres keeps its data in a volume"


def test_environment_names_are_real_settings(stack: Stack) -> None:
    prefix = env_prefix()
    for name, service in stack.services.items():
        environment = set(stack.environment(name))
        if name in gateway_services(stack):
            unknown = environment - gateway_env_names()
        else:
            unknown = environment - IMAGE_ENV[image_of(service)]
        assert not unknown, f"{name}: unknown variables {unknown}"
    example = read_env_file(COMPOSE_DIR / ".env.example")
    unknown = {n for n in example if n.startswith(prefix)} - gateway_env_names()
    assert not unknown, f".env.example: not settings of the gateway: {unknown}"


def test_env_example_defines_what_compose_needs_and_holds_no_secret(stack: Stack) -> None:
    example = read_env_file(COMPOSE_DIR / ".env.example")
    with pytest.raises(InterpolationError):  # a required secret left out of .env stops `up` at once
        interpolate(stack.raw, {k: v for k, v in example.items() if k != f"{env_prefix()}MASTER_KEY"})
    gateway_config = yaml.safe_load((COMPOSE_DIR / "gateway.yaml").read_text())
    api_key_envs = {d.get("api_key_env") for m in gateway_config["models"] for d in m["deployments"]}
    for name, value in example.items():
        used = name in stack.referenced or name in api_key_envs or name in gateway_env_names()
        assert used, f".env.example defines {name}, which nothing reads"
        if SECRET_NAME.search(name):
            assert value == "" or "change-me" in value, f".env.example: {name} must be a placeholder"
    ignored = subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q", str(COMPOSE_DIR / ".env")])
    assert ignored.returncode == 0, "deploy/compose/.env must be git-ignored"


def test_urls_name_services_of_the_stack_on_their_ports(stack: Stack) -> None:
    fake_ports = {}
    for name in gateway_services(stack):
        command = stack.services[name].get("command") or []
        if command[:1] == ["fake-upstream"]:
            fake_ports[name] = int(command[command.index("--port") + 1])
    known_ports = {**fake_ports, "redis": 6379, "postgres": 5432}
    gateway, _ = the_gateway(stack)
    gateway_config = yaml.safe_load((COMPOSE_DIR / "gateway.yaml").read_text())
    urls = [d["base_url"] for m in gateway_config["models"] for d in m["deployments"]]
    urls += [v for k, v in stack.environment(gateway).items() if k.endswith("_URL")]
    depends = stack.services[gateway].get("depends_on") or {}
    for url in urls:
        parts = urlsplit(url)
        assert parts.hostname in known_ports, f"{url}: not a service of the stack"
        assert parts.port == known_ports[parts.hostname], url
        assert parts.hostname in depends, f"the gateway starts before {parts.hostname} is healthy"


def the_gateway(stack: Stack) -> tuple[str, int]:
    """The service running the image's own command, and the port the gateway listens on there."""
    (gateway,) = [n for n in gateway_services(stack) if not stack.services[n].get("command")]
    env = {**stages()[-1].env(), **stack.environment(gateway)}
    return gateway, int(env.get(f"{env_prefix()}PORT", default_setting("port")))  # type: ignore[call-overload]


def test_gateway_port_health_path_and_prometheus_target_match_the_code(stack: Stack, tmp_path: Path) -> None:
    gateway, port = the_gateway(stack)
    published = [int(str(p).rsplit(":", 1)[-1]) for p in stack.services[gateway]["ports"]]
    assert published == [port]
    health = healthcheck_url(stack.services[gateway])
    assert int(health["port"]) == port and serves(app(str(tmp_path)), "GET", health["path"]), health[0]

    prometheus = next(n for n, s in stack.services.items() if image_of(s) == "prom/prometheus")
    config_path = stack.mounts(prometheus)["/etc/prometheus/prometheus.yml"]
    assert isinstance(config_path, Path)
    scrape = yaml.safe_load(config_path.read_text())
    jobs = [job for job in scrape["scrape_configs"] if any(
        target == f"{gateway}:{port}" for sc in job.get("static_configs", []) for target in sc["targets"])]
    assert jobs, f"Prometheus does not scrape {gateway}:{port}"
    for job in jobs:
        assert serves(app(str(tmp_path)), "GET", job.get("metrics_path", "/metrics")), job
        # /metrics wants the gateway's metrics token: Prometheus reads it from a compose secret
        # filled from the very variable the gateway gets.
        secret = PurePosixPath(job["authorization"]["credentials_file"])
        assert secret.parent == PurePosixPath("/run/secrets") and secret.name in stack.services[prometheus]["secrets"]
        variable = stack.data["secrets"][secret.name]["environment"]
        assert variable == f"{env_prefix()}METRICS_TOKEN" and variable in stack.environment(gateway)


def test_prometheus_loads_the_project_rules_and_nothing_else(stack: Stack) -> None:
    prometheus = next(n for n, s in stack.services.items() if image_of(s) == "prom/prometheus")
    mounts = stack.mounts(prometheus)
    scrape = yaml.safe_load(Path(mounts["/etc/prometheus/prometheus.yml"]).read_text())
    rules_dir = REPO / "deploy" / "prometheus"
    target = next(t for t, source in mounts.items() if source == rules_dir)
    rule_files = 0
    for path in rules_dir.rglob("*.y*ml"):
        in_container = PurePosixPath(target, path.relative_to(rules_dir).as_posix())
        loaded = any(_glob_matches(in_container, glob) for glob in scrape.get("rule_files", []))
        is_rules = "groups" in (yaml.safe_load(path.read_text()) or {})
        assert loaded == is_rules, f"{path}: rules {'not ' if is_rules else ''}loaded by Prometheus"
        rule_files += is_rules
    assert rule_files, "deploy/prometheus holds no rule file"


def _glob_matches(path: PurePosixPath, glob: str) -> bool:
    # Prometheus globs like filepath.Glob: `*` stays within one directory.
    return path.parent == PurePosixPath(glob).parent and fnmatch.fnmatchcase(path.name, PurePosixPath(glob).name)


def test_grafana_gets_the_project_provisioning_dashboards_and_prometheus(stack: Stack) -> None:
    grafana = next(n for n, s in stack.services.items() if image_of(s) == "grafana/grafana")
    prometheus = next(n for n, s in stack.services.items() if image_of(s) == "prom/prometheus")
    mounts = {target: source for target, source in stack.mounts(grafana).items() if isinstance(source, Path)}
    provisioning = REPO / "deploy" / "grafana" / "provisioning"
    assert mounts.get("/etc/grafana/provisioning") == provisioning

    def host_path(container_path: str) -> Path | None:
        for target, source in mounts.items():
            if container_path == target or container_path.startswith(target + "/"):
                return source / PurePosixPath(container_path).relative_to(target)
        return None

    def provisioned(kind: str, key: str) -> list[dict[str, Any]]:
        return [item for f in (provisioning / kind).glob("*.y*ml") for item in yaml.safe_load(f.read_text())[key]]

    sources = provisioned("datasources", "datasources")
    prometheus_port = int(healthcheck_url(stack.services[prometheus])["port"])
    assert any(urlsplit(d["url"]).hostname == prometheus and urlsplit(d["url"]).port == prometheus_port
               for d in sources if d["type"] == "prometheus"), "no data source points at the stack's Prometheus"
    providers = provisioned("dashboards", "providers")
    assert providers
    for provider in providers:
        folder = host_path(provider["options"]["path"])
        assert folder is not None and list(folder.glob("*.json")), f"{provider['options']['path']}: no dashboards there"


def test_gateway_runs_with_the_stack_config_and_its_health_check_sees_it(stack: Stack, tmp_path: Path) -> None:
    gateway, stack_port = the_gateway(stack)
    final = stages()[-1]
    command = [*final.last("ENTRYPOINT").value, *final.last("CMD").value]
    mounts = stack.mounts(gateway)
    argv = entrypoint_argv([str(mounts[arg]) if arg in mounts else arg for arg in command])
    assert any(str(mounts[arg]).endswith("gateway.yaml") for arg in command if arg in mounts)
    port = free_port()
    prefix = env_prefix()
    service_env = {k: v for k, v in stack.environment(gateway).items()
                   if not k.endswith("_URL")}  # redis://redis… names hosts that exist only in the stack
    env = clean_env(final.env(), read_env_file(COMPOSE_DIR / ".env.example"), service_env, {
        f"{prefix}HOST": "127.0.0.1", f"{prefix}PORT": str(port), f"{prefix}DATA_DIR": str(tmp_path)})
    in_stack = healthcheck_argv(stack.services[gateway]["healthcheck"]["test"])
    health = [arg.replace(f":{stack_port}/", f":{port}/") for arg in in_stack]
    assert health != in_stack, "the check names the gateway's port"
    running = Running(argv, env, tmp_path / "gateway.log")
    try:
        running.wait_healthy(health)
    finally:
        running.stop()
    assert check(health, env) != 0


def test_fake_upstream_runs_with_its_command_and_health_check(stack: Stack, tmp_path: Path) -> None:
    for name in gateway_services(stack):
        command = list(stack.services[name].get("command") or [])
        if command[:1] != ["fake-upstream"]:
            continue
        port = command[command.index("--port") + 1]
        local_port = str(free_port())
        command[command.index("--host") + 1] = "127.0.0.1"
        command[command.index("--port") + 1] = local_port
        argv = entrypoint_argv([*stages()[-1].last("ENTRYPOINT").value, *command])
        env = clean_env()
        in_stack = healthcheck_argv(stack.services[name]["healthcheck"]["test"])
        health = [a.replace(f":{port}/", f":{local_port}/") for a in in_stack]
        assert health != in_stack, "the check names the port"
        running = Running(argv, env, tmp_path / f"{name}.log")
        try:
            running.wait_healthy(health)
        finally:
            running.stop()
        assert check(health, env) != 0


def test_docker_waits_for_the_drain_before_killing_the_gateway(stack: Stack) -> None:
    gateway, _ = the_gateway(stack)
    env = {**stages()[-1].env(), **stack.environment(gateway)}
    drain = float(env.get(f"{env_prefix()}DRAIN_SECONDS", default_setting("drain_seconds")))  # type: ignore[arg-type]
    grace = parse_duration(str(stack.services[gateway].get("stop_grace_period", "10s")))
    assert grace > drain, f"stop_grace_period {grace}s cuts the {drain}s drain short"
