"""A request that names a template: `prompt: {id, version, variables}`.

Chat Completions (`apply`, below) and the Responses API (gateway/dialects/responses/prompt.py) both
resolve and render through `PromptTemplates.rendered`; each puts the messages where its API reads them.

    {"prompt": {"id": "tmpl_…", "version": "3" | "production" | omitted, "variables": {"name": "Ada"}},
     "messages": [...optional, appended after the template's...], "model": "...optional if the version pins one"}

`version` is a number, or a label; left out, the `production` label (or, with none, the newest
version). The rendered messages come first, then the request's own; the version's model serves when
the request names none, and its params fill in what the request does not set. This runs before the
body is checked and before routing, so a templated request is an ordinary one from there on. Versions
never change, so they are kept in memory once read; where a label points is re-read after
`LABEL_TTL_S`, so a moved label reaches every worker within that.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import orjson

from gateway.core.errors import InvalidRequest, NotFound
from gateway.prompts.render import render
from gateway.prompts.store import DEFAULT_LABEL, PromptStore, Version

LABEL_TTL_S = 5.0
MAX_CACHED = 10_000


class PromptTemplates:
    def __init__(self, store: Callable[[], PromptStore], clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.clock = clock
        self._versions: OrderedDict[tuple[str, int], Version] = OrderedDict()
        self._labels: dict[tuple[str, str], tuple[int, float]] = {}

    async def apply(self, raw: bytes) -> tuple[bytes, Version | None]:
        """The body with the template rendered in, and the template version it was rendered from;
        unchanged (and None) when it names none (or is not JSON: the ordinary checks then say
        what is wrong with it)."""
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw, None
        if not isinstance(body, dict) or "prompt" not in body:
            return raw, None
        version, rendered = await self.rendered(body.pop("prompt"))
        messages = body.get("messages", [])
        if not isinstance(messages, list):
            raise InvalidRequest("Invalid value for 'messages'.", param="messages")
        body["messages"] = [*rendered, *messages]
        if not body.get("model") and version.model:
            body["model"] = version.model
        for name, value in version.params.items():
            body.setdefault(name, value)
        return orjson.dumps(body), version

    async def rendered(self, ref: Any) -> tuple[Version, list[dict[str, str]]]:
        """The version a `prompt: {id, version, variables}` reference names, and its messages rendered."""
        if not isinstance(ref, dict) or not isinstance(ref.get("id"), str) or set(ref) - {"id", "version", "variables"}:
            raise InvalidRequest("'prompt' must be {id, version, variables}.", param="prompt")
        version = await self.resolve(ref["id"], ref.get("version"))
        return version, render(version.messages, version.variables, ref.get("variables"))

    async def resolve(self, template_id: str, ref: Any) -> Version:
        if ref is None:
            number = await self._label(template_id, DEFAULT_LABEL)
        elif (isinstance(ref, int) and not isinstance(ref, bool)) or (isinstance(ref, str) and ref.isdigit()):
            number = int(ref)
        elif isinstance(ref, str) and ref:
            number = await self._label(template_id, ref)
        else:
            raise InvalidRequest("'prompt.version' must be a version number or a label.", param="prompt.version")
        key = (template_id, number)
        found = self._versions.get(key)
        if found is None:
            try:
                found = await self.store().version(template_id, number)
            except NotFound:
                raise InvalidRequest(f"Prompt template '{template_id}' has no version {number}.",
                                     param="prompt.version") from None
            self._versions[key] = found
            if len(self._versions) > MAX_CACHED:
                self._versions.popitem(last=False)
        return found

    async def _label(self, template_id: str, label: str) -> int:
        now = self.clock()
        cached = self._labels.get((template_id, label))
        if cached is not None and cached[1] > now:
            return cached[0]
        number = await self.store().label_version(template_id, label)
        if number is None:
            raise InvalidRequest(f"Prompt template '{template_id}' has no label '{label}' (or does not exist).",
                                 param="prompt.version" if label != DEFAULT_LABEL else "prompt.id")
        if len(self._labels) > MAX_CACHED:
            self._labels.clear()
        self._labels[(template_id, label)] = (number, now + LABEL_TTL_S)
        return number
