"""How to start each thing a benchmark can point the load generator at.

A launcher takes the `Stack` (where the fake upstream listens, where to keep files, which CPU to pin
to) and returns a `Running` target: the OpenAI base URL to load, the headers to call it with, and the
server to stop (and whatever else to clean up) afterwards. Benchmarks put launchers in a name → launcher
table; `gateway_target(...)` makes one per gateway config, from this tree or from another (`tree=`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from procs import REPO, Server, free_port, start, wait_port, wait_ready

HERE = Path(__file__).resolve().parent
MASTER_KEY = "sk-bench-0123456789abcdef0123456789"
MASTER_HEADERS = {"Authorization": f"Bearer {MASTER_KEY}"}
MODEL = "bench-model"
LITELLM_VENV = Path("/tmp/litellm-venv")
LITELLM_INSTALL_TIMEOUT_S = 900.0


class Unavailable(RuntimeError):
    """The target cannot run here (e.g. its install failed); the run goes on without it."""


@dataclass(frozen=True)
class Stack:
    upstream_url: str  # http://127.0.0.1:PORT/v1
    upstream_port: int
    workdir: Path
    cpu: int | None  # where the proxy under test runs


@dataclass
class Running:
    base_url: str  # http://127.0.0.1:PORT/v1
    server: Server | None  # None when nothing was started for it (direct)
    headers: dict[str, str] = field(default_factory=lambda: dict(MASTER_HEADERS))
    # The API the load speaks: "chat" (POST /chat/completions) or "responses" (POST /responses).
    api: str = "chat"
    # Run after the server stops, last added first (a private database to drop, Redis keys to delete).
    cleanups: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    async def close(self) -> None:
        """Stop the server, then clean up after it; every cleanup runs even if one fails."""
        self.stop()
        errors = []
        for cleanup in reversed(self.cleanups):
            try:
                await cleanup()
            except Exception as exc:  # one failed cleanup must not skip the others
                errors.append(exc)
        self.cleanups.clear()
        if errors:
            raise errors[0]


Launcher = Callable[[Stack], Awaitable[Running]]


async def start_fake_upstream(
    workdir: Path, *, cpu: int | None, tokens: int, inter_token_ms: float = 0, latency_ms: float = 0
) -> tuple[Server, int]:
    """The fake upstream, ready; its OpenAI base URL is http://127.0.0.1:PORT/v1."""
    port = free_port()
    behaviour = f"Behaviour(tokens={tokens}, inter_token_ms={inter_token_ms}, latency_ms={latency_ms})"
    code = f"from gateway.fake.server import run, Behaviour; run('127.0.0.1', {port}, {behaviour})"
    # The repo goes after any PYTHONPATH given, so a stand-in fake can be swapped in from outside.
    pythonpath = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(REPO)) if p)
    server = start(
        "fake-upstream",
        [sys.executable, "-c", code],
        log_dir=workdir,
        cpu=cpu,
        env={"PYTHONPATH": pythonpath},
        cwd=workdir,
    )
    await _ready_or_stop(server, wait_ready(server, f"http://127.0.0.1:{port}/v1/models"))
    return server, port


@contextlib.asynccontextmanager
async def serving(
    launch: Launcher, workdir: Path, *, proxy_cpu: int, load_cpu: int, tokens: int
) -> AsyncIterator[Running]:
    """One target on `proxy_cpu` in front of a fake upstream of its own on `load_cpu` (`tokens` events a
    stream), for benchmarks that drive a single target; both stopped, and the target cleaned up, on exit."""
    upstream, port = await start_fake_upstream(workdir, cpu=load_cpu, tokens=tokens)
    try:
        running = await launch(Stack(f"http://127.0.0.1:{port}/v1", port, workdir, proxy_cpu))
        try:
            yield running
        finally:
            await running.close()
    finally:
        upstream.stop()


async def direct(stack: Stack) -> Running:
    return Running(stack.upstream_url, None)


def floor(module: str) -> Launcher:
    """A bare pass-through app from loadtests/floors, served by uvicorn."""

    async def launch(stack: Stack) -> Running:
        port = free_port()
        argv = [
            *_uvicorn(f"{module}:create_app", port),
            "--factory",
            "--app-dir",
            str(HERE / "floors"),
        ]
        env = {"FLOOR_UPSTREAM": stack.upstream_url}
        server = start(module, argv, log_dir=stack.workdir, cpu=stack.cpu, env=env)
        await _ready_or_stop(server, wait_port(server, port))
        return Running(f"http://127.0.0.1:{port}/v1", server)

    return launch


def gateway_target(
    extra_config: Mapping[str, Any] | None = None, env: Mapping[str, str | None] | None = None,
    *, tree: Path | None = None,
) -> Launcher:
    """The gateway with one worker, one model routed to the fake upstream, plus `extra_config`;
    from the source tree `tree` instead of this one when given."""

    async def launch(stack: Stack) -> Running:
        return await start_gateway(stack, extra_config, env, tree=tree)

    return launch


async def start_gateway(
    stack: Stack,
    extra_config: Mapping[str, Any] | None = None,
    env: Mapping[str, str | None] | None = None,
    *,
    tree: Path | None = None,
    price: Mapping[str, str] | None = None,
    name: str = "gateway",
    deployment_extra: Mapping[str, Any] | None = None,
) -> Running:
    """`gateway serve --workers 1`, ready, with its files under the stack's workdir.

    Settings come from `extra_config["settings"]` and `env`; the benchmark's own GATEWAY_DATABASE_URL
    and GATEWAY_REDIS_URL never leak in. `price` prices the model (budgets need a cost).
    """
    port = free_port()
    deployment: dict[str, Any] = {"provider": "openai", "base_url": stack.upstream_url, "model": MODEL,
                                  **(deployment_extra or {})}
    if price is not None:
        deployment["price"] = dict(price)
    extra = dict(extra_config or {})
    settings = {"data_dir": str(stack.workdir / f"data-{port}"), **extra.pop("settings", {})}
    config: dict[str, Any] = {"settings": settings, "models": [{"name": MODEL, "deployments": [deployment]}], **extra}
    config_path = stack.workdir / f"{name}-{port}.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    argv = [sys.executable, "-m", "gateway", "serve", "--config", str(config_path)]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    server_env: dict[str, str | None] = {
        "GATEWAY_MASTER_KEY": MASTER_KEY, "GATEWAY_DATABASE_URL": None, "GATEWAY_REDIS_URL": None,
        **tree_env(tree), **(env or {}),
    }  # fmt: skip
    # Run from the workdir: `python -m` puts the working directory first on sys.path, which would
    # shadow PYTHONPATH's tree with whatever `gateway` package sits there.
    server = start(name, argv, log_dir=stack.workdir, cpu=stack.cpu, env=server_env, cwd=stack.workdir)
    await _ready_or_stop(server, wait_ready(server, f"http://127.0.0.1:{port}/healthz"))
    return Running(f"http://127.0.0.1:{port}/v1", server)


def responses_target(*, native: bool, tree: Path | None = None) -> Launcher:
    """The `gateway` target driven through POST /v1/responses: translated to the fake's chat API, or
    (`native`) relayed to its native Responses API."""

    async def launch(stack: Stack) -> Running:
        extra = {"responses_api": "native"} if native else None
        running = await start_gateway(stack, tree=tree, deployment_extra=extra,
                                      name="gateway-responses-native" if native else "gateway-responses")
        running.api = "responses"
        return running

    return launch


def tree_env(tree: Path | None) -> dict[str, str]:
    """The environment that makes `python -m gateway` import the gateway from `tree` (this checkout
    when None: never whichever copy happens to be installed, which may be another clone's)."""
    tree = (tree or REPO).resolve()
    check = [sys.executable, "-c", "import gateway, admin; print(gateway.__file__); print(admin.__file__)"]
    found = subprocess.run(check, env={**os.environ, "PYTHONPATH": str(tree)}, cwd="/", capture_output=True,
                           text=True, timeout=60)  # fmt: skip
    paths = found.stdout.split()
    if found.returncode != 0 or len(paths) != 2 or not all(Path(p).is_relative_to(tree) for p in paths):
        raise Unavailable(f"PYTHONPATH={tree} does not import gateway and admin from there: "
                          f"{found.stdout.strip()} {found.stderr.strip()[-300:]}")  # fmt: skip
    return {"PYTHONPATH": str(tree)}


async def nginx(stack: Stack) -> Running:
    nginx_bin = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if nginx_bin is None:
        raise Unavailable("nginx is not installed")
    port = free_port()
    prefix = stack.workdir / f"nginx-{port}"
    prefix.mkdir()
    conf = (HERE / "nginx.conf.template").read_text()
    for name, value in {"PREFIX": prefix, "LISTEN_PORT": port, "UPSTREAM_PORT": stack.upstream_port}.items():
        conf = conf.replace(f"@{name}@", str(value))
    (prefix / "nginx.conf").write_text(conf)
    argv = [nginx_bin, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "error.log")]
    argv += ["-g", "daemon off; worker_processes 1;"]
    server = start("nginx", argv, log_dir=stack.workdir, cpu=stack.cpu)
    await _ready_or_stop(server, wait_ready(server, f"http://127.0.0.1:{port}/healthz"))
    return Running(f"http://127.0.0.1:{port}/v1", server)


async def litellm(stack: Stack) -> Running:
    """The LiteLLM proxy from PyPI, in a throwaway venv, without a database."""
    litellm_bin = await _install_litellm()
    port = free_port()
    config = {
        "model_list": [
            {
                "model_name": MODEL,
                "litellm_params": {
                    "model": f"openai/{MODEL}",
                    "api_base": stack.upstream_url,
                    "api_key": "sk-dummy",
                },
            }
        ],
        "general_settings": {"master_key": MASTER_KEY},
        "litellm_settings": {"telemetry": False, "drop_params": True},
    }
    config_path = stack.workdir / f"litellm-{port}.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    argv = [str(litellm_bin), "--config", str(config_path), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--num_workers", "1"]
    env: dict[str, str | None] = {
        # Use the cost map shipped in the package instead of fetching it: traffic stays on this machine.
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "DATABASE_URL": None,
    }
    server = start("litellm", argv, log_dir=stack.workdir, cpu=stack.cpu, env=env)
    ready = wait_ready(server, f"http://127.0.0.1:{port}/health/liveliness", timeout_s=120.0)
    await _ready_or_stop(server, ready)
    return Running(f"http://127.0.0.1:{port}/v1", server)


async def _install_litellm() -> Path:
    litellm_bin = LITELLM_VENV / "bin" / "litellm"
    if litellm_bin.exists():
        return litellm_bin
    log = LITELLM_VENV.with_suffix(".install.log")
    steps = [
        [sys.executable, "-m", "venv", str(LITELLM_VENV)],
        [str(LITELLM_VENV / "bin" / "pip"), "install", "--quiet", "litellm[proxy]"],
    ]
    print(f"installing litellm[proxy] into {LITELLM_VENV} (log: {log})", file=sys.stderr)
    with log.open("wb") as out:
        for argv in steps:
            process = await asyncio.create_subprocess_exec(*argv, stdout=out, stderr=out)
            try:
                code = await asyncio.wait_for(process.wait(), LITELLM_INSTALL_TIMEOUT_S)
            except (TimeoutError, asyncio.CancelledError):
                process.kill()
                await process.wait()
                raise
            if code != 0:
                tail = log.read_text(errors="replace").splitlines()[-5:]
                raise Unavailable(f"{' '.join(argv[:3])} failed ({code}): " + " | ".join(tail))
    if not litellm_bin.exists():
        raise Unavailable(f"litellm installed but {litellm_bin} is missing")
    return litellm_bin


def _uvicorn(app: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", app,
        "--host", "127.0.0.1", "--port", str(port),
        "--loop", "uvloop", "--http", "httptools",
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip


async def _ready_or_stop(server: Server, ready: Awaitable[None]) -> None:
    try:
        await ready
    except BaseException:
        server.stop()
        raise
