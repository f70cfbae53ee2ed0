"""Templates, their immutable versions and their labels, on the key store's `Database`.

A version is never changed after it is written: a change is a new version. A label points at one
version and moves in one statement, remembering where it pointed before, which is what a rollback
returns it to. Every change is written with its audit row in one transaction.
"""

from __future__ import annotations

import difflib
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.core.errors import Conflict, InvalidRequest, NotFound
from gateway.identity.store.sql import Database, Tx
from gateway.prompts.render import check_messages, placeholders

# What a version may pin besides the model: the request's own value wins where it sends one.
PARAMS = frozenset({"temperature", "top_p", "max_tokens", "max_completion_tokens", "presence_penalty",
                    "frequency_penalty", "seed", "stop", "response_format", "reasoning_effort"})
DEFAULT_LABEL = "production"
MAX_VERSION = 1_000_000
# Letters, digits, '-' and '_', not only digits (a number names a version); in a dialect
# ECMA-262 and Python share, for the admin API's OpenAPI document.
LABEL_PATTERN = r"^[A-Za-z0-9_\-]*[A-Za-z_\-][A-Za-z0-9_\-]*$"
_LABEL = re.compile(LABEL_PATTERN)


@dataclass(frozen=True, slots=True)
class Version:
    template_id: str
    version: int
    messages: list[dict[str, str]]
    variables: list[str]
    model: str | None
    params: dict[str, Any]
    note: str | None
    created_at: datetime
    created_by: str

    def record(self) -> dict[str, Any]:
        return {"object": "prompt_version", "template_id": self.template_id, "version": self.version,
                "messages": self.messages, "variables": self.variables, "model": self.model, "params": self.params,
                "note": self.note, "created_at": self.created_at.isoformat(), "created_by": self.created_by}


@dataclass(frozen=True, slots=True)
class Template:
    id: str
    name: str
    created_at: datetime
    created_by: str
    labels: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: list[Version] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        return {"object": "prompt_template", "id": self.id, "name": self.name,
                "created_at": self.created_at.isoformat(), "created_by": self.created_by, "labels": self.labels,
                "versions": [v.record() for v in self.versions]}


@dataclass(frozen=True, slots=True)
class Draft:
    """What a new version is made of, checked: the placeholders are exactly the declared variables."""

    messages: list[dict[str, str]]
    variables: list[str]
    model: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    note: str | None = None

    @classmethod
    def of(cls, body: dict[str, Any]) -> Draft:
        messages = check_messages(body.get("messages"))
        variables = body.get("variables", sorted(placeholders(messages)))
        if not isinstance(variables, list) or not all(isinstance(v, str) for v in variables):
            raise InvalidRequest("'variables' must be a list of names.", param="variables")
        used = placeholders(messages)
        for name in variables:
            if name not in used:
                raise InvalidRequest(f"Variable '{name}' is declared but no message uses it.", param="variables")
        for name in sorted(used):
            if name not in variables:
                raise InvalidRequest(f"Messages use '{{{{{name}}}}}' but 'variables' does not declare it.",
                                     param="variables")
        model, params, note = body.get("model"), body.get("params", {}), body.get("note")
        if model is not None and (not isinstance(model, str) or not model):
            raise InvalidRequest("'model' must be a model name.", param="model")
        if not isinstance(params, dict) or set(params) - PARAMS:
            raise InvalidRequest(f"'params' may set only {', '.join(sorted(PARAMS))}.", param="params")
        if note is not None and (not isinstance(note, str) or len(note) > 1000):
            raise InvalidRequest("'note' must be text of at most 1000 characters.", param="note")
        return cls(messages, sorted(set(variables)), model, params, note)


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def _version(row: dict[str, Any]) -> Version:
    return Version(row["template_id"], int(row["version"]), _json(row["messages"]), _json(row["variables"]),
                   row["model"], _json(row["params"]), row["note"], row["created_at"], row["created_by"])


def check_label(label: Any) -> str:
    if not isinstance(label, str) or not 1 <= len(label) <= 64 or not label.isascii():
        raise InvalidRequest("A label is 1-64 letters, digits, '-' or '_'.", param="label")
    if not _LABEL.fullmatch(label):
        raise InvalidRequest("A label is 1-64 letters, digits, '-' or '_', and not a number: numbers name "
                             "versions.", param="label")
    return label


class PromptStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, name: str, draft: Draft, actor: str) -> Template:
        if not isinstance(name, str) or not 1 <= len(name) <= 128:
            raise InvalidRequest("'name' must be 1-128 characters.", param="name")
        template_id = "tmpl_" + secrets.token_hex(8)
        now = datetime.now(UTC)
        async with self.db.transaction() as tx:
            if await tx.fetchrow("SELECT id FROM prompt_templates WHERE name = $1", name):
                raise Conflict(f"A template named '{name}' exists already.", param="name")
            await tx.execute("INSERT INTO prompt_templates (id, name, created_at, created_by) VALUES ($1, $2, $3, $4)",
                             template_id, name, now, actor)
            await self._insert(tx, template_id, 1, draft, now, actor)
            await _audit(tx, now, actor, "prompt.create", template_id, {"name": name, "version": 1})
        return await self.get(template_id)

    async def add_version(self, template_id: str, draft: Draft, actor: str) -> Version:
        now = datetime.now(UTC)
        async with self.db.transaction() as tx:
            await self._template_row(tx, template_id, lock=True)
            row = await tx.fetchrow("SELECT max(version) AS v FROM prompt_template_versions WHERE template_id = $1",
                                    template_id)
            number = int(row["v"] or 0) + 1 if row else 1
            await self._insert(tx, template_id, number, draft, now, actor)
            await _audit(tx, now, actor, "prompt.version", template_id, {"version": number, "note": draft.note})
        return await self.version(template_id, number)

    async def list(self) -> list[Template]:
        async with self.db.reader() as tx:
            rows = await tx.fetch("SELECT id, name, created_at, created_by FROM prompt_templates ORDER BY name")
        return [Template(r["id"], r["name"], r["created_at"], r["created_by"]) for r in rows]

    async def get(self, template_id: str) -> Template:
        async with self.db.reader() as tx:
            row = await self._template_row(tx, template_id)
            versions = await tx.fetch("SELECT * FROM prompt_template_versions WHERE template_id = $1 ORDER BY version",
                                      template_id)
            labels = await tx.fetch("SELECT label, version, previous_version, updated_at, updated_by "
                                    "FROM prompt_template_labels WHERE template_id = $1 ORDER BY label", template_id)
        return Template(row["id"], row["name"], row["created_at"], row["created_by"],
                        {r["label"]: {"version": r["version"], "previous_version": r["previous_version"],
                                      "updated_at": r["updated_at"].isoformat(), "updated_by": r["updated_by"]}
                         for r in labels},
                        [_version(v) for v in versions])

    async def version(self, template_id: str, number: int) -> Version:
        async with self.db.reader() as tx:
            row = await tx.fetchrow("SELECT * FROM prompt_template_versions WHERE template_id = $1 AND version = $2",
                                    template_id, number)
        if row is None:
            raise NotFound(f"Template '{template_id}' has no version {number}.", param="version")
        return _version(row)

    async def label_version(self, template_id: str, label: str) -> int | None:
        async with self.db.reader() as tx:
            row = await tx.fetchrow("SELECT version FROM prompt_template_labels WHERE template_id = $1 AND label = $2",
                                    template_id, label)
            if row is None and label == DEFAULT_LABEL:
                # No production label yet: the newest version serves.
                row = await tx.fetchrow("SELECT max(version) AS version FROM prompt_template_versions "
                                        "WHERE template_id = $1", template_id)
        return None if row is None or row["version"] is None else int(row["version"])

    async def set_label(self, template_id: str, label: str, number: int | None, actor: str) -> dict[str, Any]:
        """The label moves to version `number`; None moves it back to where it pointed before its
        last move (a rollback), read under the same lock, so concurrent rollbacks go back and forth."""
        label = check_label(label)
        now = datetime.now(UTC)
        async with self.db.transaction() as tx:
            await self._template_row(tx, template_id, lock=True)
            old = await tx.fetchrow("SELECT version, previous_version FROM prompt_template_labels "
                                    "WHERE template_id = $1 AND label = $2", template_id, label)
            action = "prompt.label" if number is not None else "prompt.rollback"
            if number is None:
                if old is None or old["previous_version"] is None:
                    raise Conflict(f"Label '{label}' has not been moved: there is nothing to roll back to.",
                                   param="label")
                number = int(old["previous_version"])
            if not await tx.fetchrow("SELECT 1 AS x FROM prompt_template_versions WHERE template_id = $1 "
                                     "AND version = $2", template_id, number):
                raise NotFound(f"Template '{template_id}' has no version {number}.", param="version")
            previous = None if old is None else int(old["version"])
            await tx.execute(
                "INSERT INTO prompt_template_labels (template_id, label, version, previous_version, updated_at, "
                "updated_by) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (template_id, label) DO UPDATE SET "
                "version = excluded.version, previous_version = excluded.previous_version, "
                "updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                template_id, label, number, previous, now, actor)
            await _audit(tx, now, actor, action, template_id, {"label": label, "from": previous, "to": number})
        return {"object": "prompt_label", "template_id": template_id, "label": label, "version": number,
                "previous_version": previous}

    async def rollback(self, template_id: str, label: str, actor: str) -> dict[str, Any]:
        return await self.set_label(template_id, label, None, actor)

    async def diff(self, template_id: str, a: int, b: int) -> str:
        old, new = await self.version(template_id, a), await self.version(template_id, b)
        return "".join(difflib.unified_diff(_lines(old), _lines(new), f"v{a}", f"v{b}"))

    @staticmethod
    async def _template_row(tx: Tx, template_id: str, *, lock: bool = False) -> dict[str, Any]:
        row = await tx.fetchrow("SELECT id, name, created_at, created_by FROM prompt_templates WHERE id = $1"
                                + (" FOR UPDATE" if lock else ""), template_id)
        if row is None:
            raise NotFound(f"No prompt template '{template_id}'.", param="id")
        return row

    @staticmethod
    async def _insert(tx: Tx, template_id: str, number: int, draft: Draft, now: datetime, actor: str) -> None:
        await tx.execute(
            "INSERT INTO prompt_template_versions (template_id, version, messages, variables, model, params, note, "
            "created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            template_id, number, draft.messages, draft.variables, draft.model, draft.params, draft.note, now, actor)


def _lines(v: Version) -> list[str]:
    head = [f"model: {v.model}\n", f"params: {orjson.dumps(v.params, option=orjson.OPT_SORT_KEYS).decode()}\n",
            f"variables: {', '.join(v.variables)}\n"]
    body = [f"[{m['role']}] {line}\n" for m in v.messages for line in m["content"].splitlines() or [""]]
    return head + body


async def _audit(tx: Tx, at: datetime, actor: str, action: str, template_id: str, details: dict[str, Any]) -> None:
    await tx.execute("INSERT INTO audit_log (at, actor, action, target_type, target_id, details) "
                     "VALUES ($1, $2, $3, 'prompt', $4, $5)", at, actor, action, template_id, details)
