"""The prompt template forms in, admin API bodies out: a template's messages as numbered rows.

Each message is a pair of fields, `role_<n>` and `content_<n>`; a row whose content is left
empty is dropped, which is how a message is removed. The variables are left out, so the API
takes the `{{name}}` placeholders the messages use. Anything not plainly right is handed on as
it is, for the API to name the field and say why.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.core.errors import InvalidRequest

MAX_ROWS = 40
ROLES = ("system", "developer", "user", "assistant")


def message_rows(form: dict[str, str]) -> list[dict[str, str]]:
    rows = []
    for n in range(MAX_ROWS):
        content = form.get(f"content_{n}")
        if content is None or not content.strip():
            continue
        # Browsers send a textarea's line breaks as CRLF.
        rows.append({"role": form.get(f"role_{n}", "user"), "content": content.replace("\r\n", "\n")})
    return rows


def version_body(form: dict[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = {"messages": message_rows(form)}
    for name in ("model", "note"):
        value = form.get(name, "").strip()
        if value:
            body[name] = value
    params = form.get("params", "").strip()
    if params:
        try:
            body["params"] = orjson.loads(params)
        except orjson.JSONDecodeError:
            raise InvalidRequest('Invalid value for \'params\': a JSON object, like {"temperature": 0.2}.',
                                 param="params") from None
    return body


def template_body(form: dict[str, str]) -> dict[str, Any]:
    return {"name": form.get("name", "").strip(), **version_body(form)}


def version_form(version: dict[str, Any]) -> dict[str, str]:
    """A stored version as the form shows it, to be edited into the next one."""
    form = {f"{field}_{n}": m[field] for n, m in enumerate(version["messages"]) for field in ("role", "content")}
    form["model"] = version.get("model") or ""
    form["params"] = orjson.dumps(version["params"]).decode() if version.get("params") else ""
    return form


def rows_of(form: dict[str, str], spare: int = 1) -> list[tuple[int, str, str]]:
    """(n, role, content) for each row the form holds, then `spare` empty ones to add a message."""
    used = sorted(int(k.split("_", 1)[1]) for k in form if k.startswith("content_") and k[8:].isdigit()
                  and int(k[8:]) < MAX_ROWS)
    rows = [(n, form.get(f"role_{n}", "user"), form[f"content_{n}"]) for n in used]
    after = used[-1] + 1 if used else 0
    return rows + [(n, "user", "") for n in range(after, min(after + spare, MAX_ROWS))]
