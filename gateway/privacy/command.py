"""`gateway privacy export | erase --config FILE (--user ID | --key KEY_ID)`.

The same service as the admin API, on the database and Redis the config names; the audit log
names the actor `cli`. An export goes to stdout or `--output FILE` (JSON Lines, manifest first).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import IO, Any

import orjson

from gateway.config.file import ConfigError, KnownProviders, load_config
from gateway.config.settings import Settings
from gateway.core.errors import GatewayError
from gateway.privacy.subject import Subject, subject_of

ACTOR = "cli"


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    privacy = commands.add_parser("privacy", help="export or erase one end user's or key's data")
    actions = privacy.add_subparsers(dest="privacy_command", required=True)
    for name, text in (("export", "write everything held about the subject as JSON Lines"),
                       ("erase", "erase the subject from the ledger, stored responses and the cache")):
        action = actions.add_parser(name, help=text)
        action.add_argument("--config", required=True, help="the YAML file naming the database")
        who = action.add_mutually_exclusive_group(required=True)
        who.add_argument("--user", help="the end user's id (the `user` / `safety_identifier` clients send)")
        who.add_argument("--key", help="a virtual key's id")
        if name == "export":
            action.add_argument("--output", help="a file to write (default: stdout)")
        else:
            action.add_argument("--yes", action="store_true", help="erase without asking (it cannot be undone)")


def privacy_command(args: argparse.Namespace, known_providers: KnownProviders) -> int:
    try:
        _, settings = load_config(args.config, known_providers)
        subject = subject_of(args.user, args.key)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except GatewayError as exc:
        print(f"gateway privacy: {exc.message}", file=sys.stderr)
        return 2
    if args.privacy_command == "erase" and not args.yes:
        print("gateway privacy erase: this cannot be undone; add --yes to go ahead", file=sys.stderr)
        return 2
    from gateway.identity.store.base import StoreUnavailable

    try:
        if args.privacy_command == "export":
            if args.output:
                with open(args.output, "wb") as out:
                    asyncio.run(_export(settings, subject, out))
            else:
                asyncio.run(_export(settings, subject, sys.stdout.buffer))
            return 0
        erasure = asyncio.run(_erase(settings, subject))
    except (StoreUnavailable, ValueError, OSError) as exc:
        print(f"gateway privacy: {exc}", file=sys.stderr)
        return 1
    print(orjson.dumps(erasure, option=orjson.OPT_INDENT_2).decode())
    return 0


async def _export(settings: Settings, subject: Subject, out: IO[bytes]) -> None:
    from gateway.identity.store import open_store
    from gateway.privacy.service import build_privacy

    store = await open_store(settings)
    try:
        async for line in build_privacy(settings, store.db).export(subject, ACTOR):
            out.write(line)
    finally:
        await store.close()


async def _erase(settings: Settings, subject: Subject) -> dict[str, Any]:
    from gateway.identity.store import open_store
    from gateway.privacy.service import build_privacy

    store = await open_store(settings)
    try:
        return (await build_privacy(settings, store.db).erase(subject, ACTOR)).record()
    finally:
        await store.close()
