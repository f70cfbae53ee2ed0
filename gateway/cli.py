"""`gateway serve | fake-upstream | demo`."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from admin.ui.users_command import add_parser as add_admin_user_parser
from gateway.config.file import Config, ConfigError, load_config
from gateway.config.settings import Settings
from gateway.providers.registry import provider_classes

DEMO_CONFIG = Path(__file__).parent / "demo" / "config.yaml"
DEMO_UPSTREAM_PORT = 9911
DEMO_BANNER = """
Gateway: {base}
Key:     {key}

Try it:
  curl {base}/chat/completions -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\
    -d '{{"model": "demo-model", "messages": [{{"role": "user", "content": "hello there"}}]}}'

  python -c "import openai; c = openai.OpenAI(base_url='{base}', api_key='{key}'); \\
    print(c.chat.completions.create(model='demo-model', messages=[{{'role': 'user', 'content': 'hi'}}]))"
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gateway", description="A self-hosted OpenAI-compatible LLM gateway.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the gateway")
    serve.add_argument("--config", required=True, help="the YAML file of models and settings")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, help="worker processes sharing the port")

    fake = commands.add_parser("fake-upstream", help="serve a deterministic fake OpenAI-compatible upstream")
    fake.add_argument("--host", default="127.0.0.1")
    fake.add_argument("--port", type=int, default=9911)
    fake.add_argument("--latency-ms", type=float, default=0)
    fake.add_argument("--ttft-ms", type=float, default=0)
    fake.add_argument("--tokens", type=int, default=16)
    fake.add_argument("--inter-token-ms", type=float, default=0)
    fake.add_argument("--require-key", help="answer 401 unless this bearer key is sent")

    demo = commands.add_parser("demo", help="the fake upstream plus the gateway, on the embedded default")
    demo.add_argument("--port", type=int, default=4000)

    db = commands.add_parser("db", help="the gateway's database")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    migrate = db_commands.add_parser("migrate", help="apply pending schema migrations and exit")
    migrate.add_argument("--config", required=True, help="the YAML file naming the database")
    maintain = db_commands.add_parser("maintain", help="create the ledger's partitions ahead, apply retention")
    maintain.add_argument("--config", required=True, help="the YAML file naming the database")
    add_admin_user_parser(commands)

    args = parser.parse_args(argv)
    if args.command == "admin-user":
        from admin.ui.users_command import admin_user_command

        return admin_user_command(args, set(provider_classes()))
    if args.command == "serve":
        return _serve(args.config, args.host, args.port, args.workers)
    if args.command == "fake-upstream":
        return _fake_upstream(args)
    if args.command == "db" and args.db_command == "maintain":
        from gateway.accounting.ledger.command import maintain_command

        return maintain_command(args.config, set(provider_classes()))
    if args.command == "db":
        from gateway.db.command import migrate_command

        return migrate_command(args.config, set(provider_classes()))
    return _demo(args.port)


def _serve(config_path: str, host: str | None, port: int | None, workers: int | None, demo: bool = False) -> int:
    from gateway.observability import multiproc

    try:
        config, settings = load_config(config_path, set(provider_classes()))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    # Before any metric exists and before the workers start, which inherit the directory
    # (gateway/observability/multiproc.py).
    cleanup_metrics = multiproc.prepare(workers or settings.workers, settings.metrics_enabled)
    try:
        return _run(config_path, config, settings, host, port, workers, demo)
    finally:
        cleanup_metrics()


def _run(
    config_path: str, config: Config, settings: Settings, host: str | None, port: int | None, workers: int | None,
    demo: bool = False,
) -> int:
    import uvicorn

    from gateway.app import CONFIG_FILE_ENV, create_app

    try:
        app = create_app(config, settings, demo=demo)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    options = {
        "host": host or settings.host,
        "port": port if port is not None else settings.port,
        "loop": "uvloop",
        "http": "httptools",
        "access_log": False,
        "server_header": False,
        "log_level": settings.log_level,
        "timeout_graceful_shutdown": settings.drain_seconds,
    }
    workers = workers or settings.workers
    if workers == 1:
        uvicorn.run(app, **options)  # type: ignore[arg-type]
    else:
        os.environ[CONFIG_FILE_ENV] = str(Path(config_path).resolve())
        # The workers read their settings anew; they must know how many they are (per-worker caps).
        os.environ["GATEWAY_WORKERS"] = str(workers)
        uvicorn.run("gateway.app:app_from_env", factory=True, workers=workers, **options)  # type: ignore[arg-type]
    return 0


def _fake_upstream(args: argparse.Namespace) -> int:
    from gateway.fake.server import Behaviour, run

    behaviour = Behaviour(
        latency_ms=args.latency_ms, ttft_ms=args.ttft_ms, tokens=args.tokens, inter_token_ms=args.inter_token_ms
    )
    run(args.host, args.port, behaviour, require_key=args.require_key)
    return 0


def _demo(port: int) -> int:
    key = os.environ.setdefault("GATEWAY_MASTER_KEY", "sk-demo-master-key")
    fake = subprocess.Popen(
        [sys.executable, "-m", "gateway", "fake-upstream", "--port", str(DEMO_UPSTREAM_PORT),
         "--inter-token-ms", "30"],
    )
    try:
        _wait_ready(f"http://127.0.0.1:{DEMO_UPSTREAM_PORT}/v1/models")
        base = f"http://127.0.0.1:{port}/v1"
        print(DEMO_BANNER.format(base=base, key=key), flush=True)
        return _serve(str(DEMO_CONFIG), "127.0.0.1", port, 1, demo=True)
    finally:
        fake.terminate()
        fake.wait(timeout=10)


def _wait_ready(url: str, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
