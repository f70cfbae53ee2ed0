"""Responses request -> neutral chat request, for `POST /v1/responses`. Pure.

`parse` checks the body's shape; `read` builds the chat request from it and from the items of
the conversation so far (`history`: what a `previous_response_id` stands for, fetched by the
caller). Fields of the Responses API that mean nothing to Chat Completions (`store`, `include`,
`truncation`, ...) are kept for the answer's echo and not sent; fields that are not the Responses
API's at all are the client's (`extra_body`) and pass through, as on `/v1/messages`.

Built-in tools (web search, file search, code interpreter, ...) run inside OpenAI's Responses
API; a model reached through Chat Completions cannot run them, so they are refused with a 400
that names the tool. Namespaced function tools (Codex sends one) are flattened to
`<namespace>__<name>` for chat and told apart again in the answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.core.errors import InvalidRequest
from gateway.dialects.responses.items import to_messages
from gateway.dialects.responses.prompt import TemplateUse
from gateway.edge.body import load_json

JSON = dict[str, Any]

RESPONSES_FIELDS = frozenset({
    "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "max_output_tokens",
    "max_tool_calls", "temperature", "top_p", "top_logprobs", "text", "reasoning", "metadata", "store",
    "previous_response_id", "include", "truncation", "user", "safety_identifier", "stream", "stream_options",
    "prompt_cache_key", "prompt_cache_retention", "prompt_cache_options", "service_tier", "background",
    "conversation", "prompt", "context_management", "moderation", "image", "access_programs",
    "background_options",
    # Codex sends it (docs/clients.md); it is not in the public reference.
    "client_metadata",
})
NAMESPACE_SEPARATOR = "__"
TOOL_CHOICES = frozenset({"auto", "none", "required"})
EFFORTS = frozenset({"none", "minimal", "low", "medium", "high", "xhigh"})
# Features of OpenAI's own service that a gateway in front of other models cannot offer.
REFUSED_FIELDS = {
    "background": "background mode is not supported by this gateway; send the request without it",
    "conversation": "conversations are not supported by this gateway; use previous_response_id",
}


@dataclass(frozen=True, slots=True)
class ResponsesRequest:
    """A read Responses request: the neutral chat body and what the answer needs from the request."""

    chat: JSON
    model: str
    stream: bool
    store: bool
    previous_response_id: str | None
    # This turn's input items, each with a type, as stored for `input_items` and the next turn.
    input_items: list[JSON]
    # The request fields a `response` object repeats (instructions, tools, temperature, ...).
    echo: JSON
    # A flattened chat function name -> (namespace, name) of the namespaced tool it stands for.
    namespaced: dict[str, tuple[str, str]] = field(default_factory=dict)
    # Built-in tools (`web_search`, ...) by their place in `tools`: only a native upstream runs them.
    builtin_tools: tuple[tuple[int, str], ...] = ()
    # The stored template a `prompt` named, rendered (prompt.py).
    template: TemplateUse | None = None

    def refuse_builtin_tools(self) -> None:
        """For a model served through Chat Completions: a 400 naming the first built-in tool."""
        if self.builtin_tools:
            i, kind = self.builtin_tools[0]
            raise builtin_tool_error(i, kind)


def builtin_tool_error(i: int, kind: str) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid value for 'tools[{i}].type': the tool {kind!r} runs only inside OpenAI's Responses API, and "
        f"this model is served through Chat Completions; remove the tool (Codex: web_search = \"disabled\").",
        param=f"tools[{i}].type")


def parse(raw: bytes) -> JSON:
    """The body as a JSON object whose top-level fields have the right types.

    A body that names a stored `prompt` may leave out `model` and `input` (the template can give
    both): `required` checks them once the template is rendered in.
    """
    if not raw:
        raise InvalidRequest("The request body is empty; send a JSON object.")
    body = load_json(raw)  # refused (400) when it nests deeper than the gateway's limit
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    if body.get("model") is not None and not isinstance(body["model"], str):
        raise InvalidRequest("Invalid type for 'model': expected a string.", param="model")
    for name, kinds, expected in _TOP_LEVEL:
        value = body.get(name)
        if value is not None and (not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds)):
            raise InvalidRequest(f"Invalid type for '{name}': expected {expected}.", param=name)
    for name, reason in REFUSED_FIELDS.items():
        if body.get(name):
            raise InvalidRequest(f"'{name}': {reason}.", param=name)
    return body if body.get("prompt") is not None else required(body)


def required(body: JSON, *, templated: bool = False) -> JSON:
    if not body.get("model"):
        raise InvalidRequest("Missing required parameter: 'model'.", param="model")
    if body.get("input") is None and not templated:
        raise InvalidRequest("Missing required parameter: 'input'.", param="input")
    return body


_TOP_LEVEL: tuple[tuple[str, tuple[type, ...], str], ...] = (
    ("input", (str, list), "a string or an array of input items"),
    ("prompt", (dict,), "an object"),
    ("instructions", (str,), "a string"),
    ("tools", (list,), "an array of tools"),
    ("tool_choice", (str, dict), "a string or an object"),
    ("parallel_tool_calls", (bool,), "a boolean"),
    ("max_output_tokens", (int,), "an integer"),
    ("temperature", (int, float), "a number"),
    ("top_p", (int, float), "a number"),
    ("text", (dict,), "an object"),
    ("reasoning", (dict,), "an object"),
    ("metadata", (dict,), "an object"),
    ("store", (bool,), "a boolean"),
    ("stream", (bool,), "a boolean"),
    ("previous_response_id", (str,), "a string"),
    ("include", (list,), "an array of strings"),
    ("truncation", (str,), "'auto' or 'disabled'"),
    ("user", (str,), "a string"),
    ("safety_identifier", (str,), "a string"),
    ("prompt_cache_key", (str,), "a string"),
)


def input_items(body: JSON) -> list[JSON]:
    """The request's `input` as items: a string is one user message (none: a template gives them all)."""
    value = body.get("input")
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}]
    items = []
    for item in value:
        # An "easy" message without a type is stored and listed as the message it is.
        items.append({"type": "message", **item} if isinstance(item, dict) and "type" not in item else item)
    return items


def read(body: JSON, history: Sequence[JSON] = (), *, builtin_tools: bool = False,
         template: TemplateUse | None = None) -> ResponsesRequest:
    """The neutral chat request for a parsed body; `history` holds the items of earlier turns, and
    `template` the stored prompt the body named, rendered (its messages come before the history).

    Built-in tools are refused unless `builtin_tools`: then they are left out of the chat request
    and listed, for the adapter that knows which upstream serves the request to refuse or relay.
    """
    tools, namespaced, builtins = _tools(body.get("tools"))
    if builtins and not builtin_tools:
        raise builtin_tool_error(*builtins[0])
    flat_names = {pair: flat for flat, pair in namespaced.items()}
    items = input_items(body)
    messages = [*template.messages] if template is not None else []
    if history:
        messages += to_messages(list(history), flat_names, "previous_response_id")
    messages += to_messages(items, flat_names)
    instructions = body.get("instructions")
    if instructions:
        # Instructions are this request's alone: those of an earlier turn are not carried over.
        messages.insert(0, {"role": "system", "content": instructions})
    if not messages:
        raise InvalidRequest("Invalid 'input': at least one input item is required.", param="input")

    chat: JSON = {key: value for key, value in body.items() if key not in RESPONSES_FIELDS}
    chat.update({"model": body["model"], "messages": messages})
    stream = body.get("stream") is True
    if stream:
        # The answer's `response.completed` carries usage: ask every backend for it.
        chat.update({"stream": True, "stream_options": {"include_usage": True}})
    if body.get("max_output_tokens") is not None:
        if body["max_output_tokens"] < 1:
            raise InvalidRequest("Invalid 'max_output_tokens': expected a positive integer.", param="max_output_tokens")
        # It counts reasoning tokens too, as max_completion_tokens does.
        chat["max_completion_tokens"] = body["max_output_tokens"]
    for name in ("temperature", "top_p", "prompt_cache_key", "safety_identifier", "service_tier"):
        if body.get(name) is not None:
            chat[name] = body[name]
    if isinstance(body.get("user"), str):
        chat["user"] = body["user"]
    if tools:
        chat["tools"] = tools
        if body.get("parallel_tool_calls") is not None:
            chat["parallel_tool_calls"] = body["parallel_tool_calls"]
    if body.get("tool_choice") is not None:
        chat.update(_tool_choice(body["tool_choice"], tools, flat_names))
    chat.update(_text(body.get("text")))
    chat.update(_reasoning(body.get("reasoning")))
    if template is not None:
        for name, value in template.chat_params.items():
            chat.setdefault(name, value)
    return ResponsesRequest(
        chat=chat,
        model=body["model"],
        stream=stream,
        store=body.get("store") is not False,
        previous_response_id=body.get("previous_response_id"),
        input_items=items,
        echo=_echo(body, template),
        namespaced=namespaced,
        builtin_tools=tuple(builtins),
        template=template,
    )


def _function(tool: JSON, where: str, name: str | None = None) -> JSON:
    if not isinstance(tool.get("name"), str) or not tool["name"]:
        raise InvalidRequest(f"Missing required parameter: '{where}.name'.", param=f"{where}.name")
    parameters = tool.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise InvalidRequest(f"Invalid type for '{where}.parameters': expected an object.",
                             param=f"{where}.parameters")
    function: JSON = {"name": name or tool["name"],
                      "parameters": parameters if parameters is not None else {"type": "object", "properties": {}}}
    if isinstance(tool.get("description"), str):
        function["description"] = tool["description"]
    if isinstance(tool.get("strict"), bool):
        function["strict"] = tool["strict"]
    return {"type": "function", "function": function}


def _tools(tools: Any) -> tuple[list[JSON], dict[str, tuple[str, str]], list[tuple[int, str]]]:
    out: list[JSON] = []
    namespaced: dict[str, tuple[str, str]] = {}
    builtins: list[tuple[int, str]] = []
    for i, tool in enumerate(tools or ()):
        where = f"tools[{i}]"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind == "function":
            out.append(_function(tool, where))
        elif kind == "namespace" and isinstance(tool.get("name"), str) and isinstance(tool.get("tools"), list):
            for j, inner in enumerate(tool["tools"]):
                inner_where = f"{where}.tools[{j}]"
                if not isinstance(inner, dict) or inner.get("type") != "function":
                    raise InvalidRequest(f"Invalid value for '{inner_where}.type': only function tools are "
                                         f"supported inside a namespace here.", param=f"{inner_where}.type")
                function = _function(inner, inner_where)
                flat = f"{tool['name']}{NAMESPACE_SEPARATOR}{function['function']['name']}"
                function["function"]["name"] = flat
                namespaced[flat] = (tool["name"], inner["name"])
                out.append(function)
        elif kind == "namespace":
            raise InvalidRequest(f"Invalid '{where}': a namespace tool needs a name and an array of tools.",
                                 param=where)
        elif isinstance(kind, str):
            builtins.append((i, kind))
        else:
            raise InvalidRequest(f"Missing required parameter: '{where}.type'.", param=f"{where}.type")
    names = [tool["function"]["name"] for tool in out]
    clash = next((name for name in names if names.count(name) > 1), None)
    if clash is not None:
        raise InvalidRequest(f"Invalid 'tools': the function name {clash!r} is used twice.", param="tools")
    return out, namespaced, builtins


def _tool_choice(choice: Any, tools: list[JSON], flat_names: dict[tuple[str, str], str]) -> JSON:
    if isinstance(choice, str):
        if choice not in TOOL_CHOICES:
            raise InvalidRequest("Invalid value for 'tool_choice': expected 'auto', 'none' or 'required'.",
                                 param="tool_choice")
        return {"tool_choice": choice} if tools or choice == "none" else {}
    kind = choice.get("type")
    if kind == "function" and isinstance(choice.get("name"), str):
        name = choice["name"]
        if isinstance(choice.get("namespace"), str):
            name = flat_names.get((choice["namespace"], name), name)
        return {"tool_choice": {"type": "function", "function": {"name": name}}}
    if kind == "allowed_tools" and choice.get("mode") in ("auto", "required") and isinstance(choice.get("tools"),
                                                                                            list):
        # Chat's equivalent is offering only the allowed tools.
        allowed = {t.get("name") for t in choice["tools"] if isinstance(t, dict) and t.get("type") == "function"}
        tools[:] = [tool for tool in tools if tool["function"]["name"] in allowed]
        return {"tool_choice": choice["mode"]}
    raise InvalidRequest("Invalid value for 'tool_choice': only 'auto', 'none', 'required', a function or "
                         "allowed function tools are supported here.", param="tool_choice")


def _text(text: Any) -> JSON:
    if not isinstance(text, dict):
        return {}
    out: JSON = {}
    if isinstance(text.get("verbosity"), str):
        out["verbosity"] = text["verbosity"]
    fmt = text.get("format")
    if fmt is None:
        return out
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "json_object":
        out["response_format"] = {"type": "json_object"}
    elif kind == "json_schema":
        if not isinstance(fmt.get("name"), str) or not isinstance(fmt.get("schema"), dict):
            raise InvalidRequest("Invalid 'text.format': a json_schema format needs a name and a schema.",
                                 param="text.format")
        schema: JSON = {"name": fmt["name"], "schema": fmt["schema"]}
        for name in ("strict", "description"):
            if fmt.get(name) is not None:
                schema[name] = fmt[name]
        out["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif kind != "text":
        raise InvalidRequest("Invalid value for 'text.format.type': expected 'text', 'json_object' or "
                             "'json_schema'.", param="text.format.type")
    return out


def _reasoning(reasoning: Any) -> JSON:
    effort = reasoning.get("effort") if isinstance(reasoning, dict) else None
    if effort is None:
        return {}
    if not isinstance(effort, str) or effort not in EFFORTS:
        raise InvalidRequest("Invalid value for 'reasoning.effort'.", param="reasoning.effort")
    return {"reasoning_effort": effort}


def _echo(body: JSON, template: TemplateUse | None) -> JSON:
    """What the `response` object repeats from the request, with the API's defaults filled in."""
    reasoning = given if isinstance(given := body.get("reasoning"), dict) else {}
    text = shaped if isinstance(shaped := body.get("text"), dict) else {}
    instructions: Any = body.get("instructions")
    if template is not None:
        # As OpenAI echoes a saved prompt: its messages, in order, as the instructions.
        own = [{"type": "message", "role": "system", "content": instructions}] if instructions else []
        instructions = [*own, *template.items]
    return {
        "instructions": instructions,
        "prompt": template.echo if template is not None else None,
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": body.get("metadata") or {},
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "store": body.get("store") is not False,
        "temperature": body.get("temperature", 1.0),
        "text": {"format": text.get("format") or {"type": "text"}, "verbosity": text.get("verbosity", "medium")},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation") or "disabled",
        "user": body.get("user"),
        "safety_identifier": body.get("safety_identifier"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "background": False,
    }
