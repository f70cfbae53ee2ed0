"""`gateway serve | fake-upstream | demo | db | admin-user | privacy`."""

from __future__ import annotations

import argparse
import os
import sys

from admin.ui.users_command import add_parser as add_admin_user_parser
from gateway.config.environment import unknown_variables, warning
from gateway.config.file import ConfigError, load_config
from gateway.privacy.command import add_parser as add_privacy_parser
from gateway.providers.registry import provider_classes


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
    fake.add_argument("--agent", action="store_true", help="call an offered tool, then answer its result "
                                                           "(for Codex, Claude Code, agent SDKs)")

    demo = commands.add_parser("demo", help="the fake upstream plus the gateway, on the embedded default")
    demo.add_argument("--port", type=int, default=4000)

    db = commands.add_parser("db", help="the gateway's database")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    migrate = db_commands.add_parser("migrate", help="apply pending schema migrations and exit")
    migrate.add_argument("--config", required=True, help="the YAML file naming the database")
    maintain = db_commands.add_parser(
        "maintain", help="create the ledger's partitions ahead; apply the ledger's and stored responses' retention")
    maintain.add_argument("--config", required=True, help="the YAML file naming the database")
    add_admin_user_parser(commands)
    add_privacy_parser(commands)

    args = parser.parse_args(argv)
    if args.command != "fake-upstream":
        for name, close in unknown_variables(os.environ).items():
            print(f"gateway: warning: {warning(name, close)}", file=sys.stderr)
    if args.command == "admin-user":
        from admin.ui.users_command import admin_user_command

        return admin_user_command(args, provider_classes())
    if args.command == "privacy":
        from gateway.privacy.command import privacy_command

        return privacy_command(args, provider_classes())
    if args.command == "serve":
        return _serve(args.config, args.host, args.port, args.workers)
    if args.command == "fake-upstream":
        return _fake_upstream(args)
    if args.command == "db" and args.db_command == "maintain":
        from gateway.db.command import maintain_command

        return maintain_command(args.config, provider_classes())
    if args.command == "db":
        from gateway.db.command import migrate_command

        return migrate_command(args.config, provider_classes())
    from gateway.demo.command import demo_command

    return demo_command(args.port)


def _serve(config_path: str, host: str | None, port: int | None, workers: int | None) -> int:
    try:
        config, settings = load_config(config_path, provider_classes())
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    from gateway.serve import serve_config

    return serve_config(config, settings, host, port, workers, config_path=config_path)


def _fake_upstream(args: argparse.Namespace) -> int:
    from gateway.fake.server import Behaviour, run

    behaviour = Behaviour(
        latency_ms=args.latency_ms, ttft_ms=args.ttft_ms, tokens=args.tokens, inter_token_ms=args.inter_token_ms,
        agent=args.agent,
    )
    run(args.host, args.port, behaviour, require_key=args.require_key)
    return 0
