"""`gateway admin-user create|password|role|delete|list --config FILE`: the admin UI's users.

The password is read from standard input (`--password-stdin`, for scripts) or asked for twice
on the terminal; it never appears on the command line, where `ps` and shell history would keep it.

Every change says which database it went to. A user written into the embedded SQLite file while the
gateway runs on PostgreSQL cannot sign in, so the command never falls back: a database the config
names that cannot be reached is an error, and so is SQLite while the environment holds a misspelt
GATEWAY_DATABASE_URL.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys

from admin.ui.passwords import PasswordError, check_new_password, hash_password
from gateway.config.environment import unknown_variables
from gateway.config.file import ConfigError, KnownProviders, load_config
from gateway.config.settings import Settings
from gateway.core.errors import GatewayError
from gateway.db.connect import DatabaseUrlError, postgres_dsn
from gateway.identity.store import open_store
from gateway.identity.store.base import StoreError
from gateway.identity.store.users import ROLES, UserStore
from gateway.in_use import database


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("admin-user", help="manage the admin UI's users")
    actions = parser.add_subparsers(dest="user_command", required=True)
    for name, text in (("create", "add a user"), ("password", "set a user's password"),
                       ("role", "change a user's role"), ("delete", "remove a user"), ("list", "list the users")):
        action = actions.add_parser(name, help=text)
        action.add_argument("--config", required=True, help="the YAML file naming the database")
        if name != "list":
            action.add_argument("--username", required=True)
        if name in ("create", "password"):
            action.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
        if name == "create":
            action.add_argument("--role", choices=ROLES, default="admin")
        if name == "role":
            action.add_argument("--role", choices=ROLES, required=True)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not _has_terminal():
        raise PasswordError("no terminal to ask for the password on: pipe it in with --password-stdin")
    try:
        first = getpass.getpass("Password: ")
        again = getpass.getpass("Again: ")
    except EOFError:
        raise PasswordError("no password given (end of input): type it, or use --password-stdin") from None
    if again != first:
        raise PasswordError("password: the two entries differ")
    return first


def _has_terminal() -> bool:
    """Whether getpass can ask without echo: it reads the controlling terminal, not standard input."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return False
    os.close(fd)
    return True


def _sqlite_refusal(settings: Settings) -> str | None:
    """Why not to write into the SQLite file: the environment seems to name another database."""
    if postgres_dsn(settings) is not None:
        return None
    for variable, close in unknown_variables(os.environ).items():
        if close == "GATEWAY_DATABASE_URL":
            return (f"not writing into {database(settings)}: {variable} is not a setting (did you mean "
                    f"GATEWAY_DATABASE_URL?); correct its name, or unset it to use SQLite")
    return None


def admin_user_command(args: argparse.Namespace, known_providers: KnownProviders) -> int:
    try:
        _, settings = load_config(args.config, known_providers)
        where = database(settings)
        refusal = _sqlite_refusal(settings) if args.user_command != "list" else None
        if refusal is not None:
            raise ConfigError(refusal)
        password = _password(args.password_stdin) if args.user_command in ("create", "password") else ""
        if password:
            check_new_password(password)
    except (ConfigError, PasswordError, DatabaseUrlError) as exc:
        print(f"gateway admin-user: {exc}", file=sys.stderr)
        return 2

    async def run() -> int:
        store = await open_store(settings)
        try:
            users = UserStore.of(store)
            if args.user_command == "list":
                print(f"users in {where}:", file=sys.stderr)
                for user in await users.list():
                    print(f"{user.username}\t{user.role}\t{user.created_at.isoformat()}")
                return 0
            if args.user_command == "create":
                user = await users.create(args.username, hash_password(password), args.role)
                print(f"created {user.username} ({user.role}) in {where}")
                return 0
            if args.user_command == "password":
                found = await users.update(args.username, password_hash=hash_password(password)) is not None
            elif args.user_command == "role":
                found = await users.update(args.username, role=args.role) is not None
            else:
                found = await users.delete(args.username)
            if not found:
                print(f"gateway admin-user: no user named {args.username!r}", file=sys.stderr)
                return 1
            print(f"{args.user_command}: {args.username} done in {where}")
            return 0
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except (StoreError, GatewayError) as exc:  # a taken name; the database is unreachable
        print(f"gateway admin-user: {exc.message} ({where}; nothing written)", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"gateway admin-user: {exc}", file=sys.stderr)
        return 1
