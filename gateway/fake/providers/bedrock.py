"""A fake of Bedrock Runtime's Converse and ConverseStream APIs, with SigV4 checked.

`POST /model/{modelId}/converse` answers JSON; `/converse-stream` answers AWS event-stream frames
(gateway/fake/eventstream.py). `require_key` is `ACCESS_KEY_ID:SECRET`: each request's SigV4
signature is verified here from the AWS documentation's algorithm, written independently of
botocore (the gateway signs with botocore). The fake is also STS for web identity (`POST /` with
`Action=AssumeRoleWithWebIdentity`, as Kubernetes service accounts use it): it hands out
temporary credentials, which it then accepts with their `X-Amz-Security-Token`. Like the real
API it refuses unknown fields, conversations that do not alternate or start with the user, tool
blocks without a toolConfig, and tool results that answer no earlier tool use. Directives
(`fake`) ride in `additionalModelRequestFields.fake`, where the gateway puts fields that are not
OpenAI's.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from typing import Any
from urllib.parse import parse_qs, quote

import orjson

from gateway.fake.app import Answer, Request, json_answer
from gateway.fake.behaviour import DEFAULT_BEHAVIOUR, Behaviour, DirectiveError, resolve
from gateway.fake.eventstream import event, exception
from gateway.fake.providers.base import ProviderApp, ProviderStream, words_of
from gateway.fake.replies import JSON, WireError, fragments, reply_pieces

EXCEPTIONS = {400: "ValidationException", 403: "AccessDeniedException", 404: "ResourceNotFoundException",
              408: "ModelTimeoutException", 424: "ModelErrorException", 429: "ThrottlingException",
              500: "InternalServerException", 503: "ServiceUnavailableException"}
MESSAGES = {429: "Too many requests, please wait before trying again.", 500: "The server encountered an error.",
            503: "Bedrock is unable to process your request."}
REQUEST_FIELDS = frozenset({"messages", "system", "inferenceConfig", "toolConfig", "guardrailConfig",
                            "additionalModelRequestFields", "promptVariables", "additionalModelResponseFieldPaths",
                            "requestMetadata", "performanceConfig"})
INFERENCE_FIELDS = frozenset({"maxTokens", "temperature", "topP", "stopSequences"})
BLOCK_KINDS = frozenset({"text", "image", "document", "video", "toolUse", "toolResult", "guardContent",
                         "cachePoint", "reasoningContent"})
PADDING = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"  # Bedrock pads stream events with a `p` field
STREAM_TYPE = (("content-type", "application/vnd.amazon.eventstream"),)
_AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<scope>[^,]+), ?SignedHeaders=(?P<signed>[^,]+), "
                   r"?Signature=(?P<signature>[0-9a-f]{64})")


class BedrockFake(ProviderApp):
    def __init__(self, behaviour: Behaviour = DEFAULT_BEHAVIOUR, require_key: str | None = None) -> None:
        super().__init__(behaviour, require_key)
        self.routes = [("POST", re.compile(r"/model/(?P<model>[^/]+)/converse(?P<stream>-stream)?"), self._converse)]
        # access key id -> (secret, session token or None)
        self.keys: dict[str, tuple[str, str | None]] = {}
        if require_key is not None:
            key_id, _, secret = require_key.partition(":")
            self.keys[key_id] = (secret, None)
        self.roles_assumed = 0
        self._control[("GET", "/_fake/sts")] = lambda req: json_answer(200, {"roles_assumed": self.roles_assumed})

    def handle(self, req: Request) -> Answer:
        if req.method == "POST" and req.path == "/":
            return self._assume_role(req)
        return super().handle(req)

    def _assume_role(self, req: Request) -> Answer:
        form = {k: v[0] for k, v in parse_qs(req.body.decode("latin-1")).items()}
        if form.get("Action") != "AssumeRoleWithWebIdentity" or not form.get("RoleArn") \
                or not form.get("WebIdentityToken"):
            return Answer(400, b"<ErrorResponse><Error><Code>InvalidParameterValue</Code></Error></ErrorResponse>",
                          headers=(("content-type", "text/xml"),))
        key_id = "ASIAFAKE" + secrets.token_hex(6).upper()
        secret, session = secrets.token_urlsafe(30), secrets.token_urlsafe(60)
        self.keys[key_id] = (secret, session)
        self.roles_assumed += 1
        expiration = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        xml = (f'<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
               f"<AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>{key_id}</AccessKeyId>"
               f"<SecretAccessKey>{secret}</SecretAccessKey><SessionToken>{session}</SessionToken>"
               f"<Expiration>{expiration}</Expiration></Credentials>"
               f"<SubjectFromWebIdentityToken>system:serviceaccount:default:gateway</SubjectFromWebIdentityToken>"
               f"<AssumedRoleUser><Arn>{form['RoleArn']}/gateway</Arn><AssumedRoleId>AROAFAKE:gateway"
               f"</AssumedRoleId></AssumedRoleUser></AssumeRoleWithWebIdentityResult>"
               f"<ResponseMetadata><RequestId>{secrets.token_hex(16)}</RequestId></ResponseMetadata>"
               f"</AssumeRoleWithWebIdentityResponse>")
        return Answer(200, xml.encode(), headers=(("content-type", "text/xml"),))

    def authorize(self, req: Request) -> Answer | None:
        if not self.keys:
            return None
        found = _AUTH.fullmatch(req.headers.get("authorization", ""))
        known = self.keys.get(found["key"]) if found is not None else None
        if found is None or known is None or req.headers.get("x-amz-security-token") != known[1]:
            return self.error(403, "The security token included in the request is invalid.",
                              kind="UnrecognizedClientException")
        secret = known[0]
        if not hmac.compare_digest(found["signature"], expected_signature(req, secret, found["scope"],
                                                                          found["signed"])):
            return self.error(403, "The request signature we calculated does not match the signature you "
                                   "provided. Check your AWS Secret Access Key and signing method.",
                              kind="InvalidSignatureException")
        return None

    def error(self, status: int, message: str | None = None, behaviour: Behaviour | None = None,
              kind: str | None = None) -> Answer:
        name = kind or EXCEPTIONS.get(status, "InternalServerException")
        answer = json_answer(status, {"message": message or MESSAGES.get(status, "The request is invalid.")},
                             behaviour)
        answer.headers = (("x-amzn-errortype", f"{name}:http://internal.amazon.com/coral/com.amazon.bedrock/"),)
        return answer

    def _answer(self, req: Request, body: Any, seq: int) -> Answer:
        # ProviderApp's, except that directives come from additionalModelRequestFields.
        denied = self.authorize(req)
        if denied is not None:
            return denied
        routed = self.route(req)
        if routed is None:
            return self.error(404, f"Not found: {req.method} {req.path}", kind="UnknownOperationException")
        handler, match = routed
        try:
            fields = orjson.loads(req.body) if req.body else {}
        except orjson.JSONDecodeError:
            return self.error(400, "The request body is not valid JSON.")
        if not isinstance(fields, dict):
            return self.error(400, "The request body must be a JSON object.")
        extra = fields.get("additionalModelRequestFields")
        try:
            b = resolve(self.behaviour, extra.get("fake") if isinstance(extra, dict) else None, req.headers)
        except DirectiveError as exc:
            return self.error(400, str(exc))
        if b.status != 200:
            return self.error(b.status, None, b)
        try:
            return handler(req, match, fields, b, seq)
        except WireError as exc:
            return self.error(exc.status, str(exc), b)

    def _converse(self, req: Request, match: re.Match[str], body: JSON, b: Behaviour, seq: int) -> Answer:
        check_request(body)
        prompt = _texts(body)
        if len(prompt) > b.context_words:
            raise WireError(400, "Input is too long for requested model.")
        last = body["messages"][-1]
        answered_tool = any("toolResult" in block for block in last["content"])
        pieces = reply_pieces(_block_words(last["content"]), b)
        limit = (body.get("inferenceConfig") or {}).get("maxTokens")
        stop = "end_turn"
        if isinstance(limit, int) and len(pieces) > limit:
            pieces, stop = pieces[:limit], "max_tokens"
        call = None if answered_tool else b.tool_call
        usage = {"inputTokens": len(prompt), "outputTokens": len(pieces), "totalTokens": len(prompt) + len(pieces)}
        if call is not None:
            stop = "tool_use"
            use = {"toolUseId": f"tooluse_fake{seq:010d}", "name": call["name"],
                   "input": orjson.loads(call["arguments"] or "{}")}
        if not match["stream"]:
            content: list[JSON] = [{"toolUse": use}] if call is not None else [{"text": "".join(pieces)}]
            reply = {"output": {"message": {"role": "assistant", "content": content}}, "stopReason": stop,
                     "usage": usage if b.usage else {}, "metrics": {"latencyMs": 1}}
            return json_answer(200, reply, b)
        head = _event("messageStart", {"role": "assistant"})
        if call is not None:
            start = {"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": use["toolUseId"],
                                                                   "name": use["name"]}}}
            events = [_event("contentBlockStart", start)] + [
                _event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"toolUse": {"input": piece}}})
                for piece in fragments(call["arguments"] or "{}")]
        else:
            events = [_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}})
                      for piece in pieces]
        tail = (_event("contentBlockStop", {"contentBlockIndex": 0}) + _event("messageStop", {"stopReason": stop})
                + (_event("metadata", {"usage": usage, "metrics": {"latencyMs": 1}}) if b.usage else b""))
        stream = ProviderStream(head, events, tail, on_error=_error_event)
        return Answer(200, stream=stream, behaviour=b, headers=STREAM_TYPE)


def _event(kind: str, data: JSON) -> bytes:
    return event(kind, orjson.dumps({**data, "p": PADDING[: 4 + len(kind) % 16]}))


def _error_event(after: int) -> bytes:
    return exception("serviceUnavailableException", orjson.dumps({"message": MESSAGES[503]}))


def expected_signature(req: Request, secret: str, scope: str, signed: str) -> str:
    """SigV4 as AWS documents it ("Create a signed AWS API request"): canonical request, string to
    sign, then the HMAC chain date -> region -> service -> aws4_request."""
    names = signed.split(";")
    canonical_headers = "".join(f"{name}:{' '.join(req.headers.get(name, '').split())}\n" for name in names)
    # Every path segment URI-encoded again (services other than S3 sign the doubly-encoded path).
    path = "/".join(quote(segment, safe="-_.~") for segment in req.path.split("/"))
    query = "&".join(sorted(req.query.split("&"))) if req.query else ""
    canonical = "\n".join(["POST", path, query, canonical_headers, signed, hashlib.sha256(req.body).hexdigest()])
    amz_date = req.headers.get("x-amz-date", "")
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    date, region, service, _ = scope.split("/")
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def check_request(body: JSON) -> None:
    for field in body:
        if field not in REQUEST_FIELDS:
            raise WireError(400, f"Malformed input request: extraneous key [{field}] is not permitted")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise WireError(400, "A conversation must start with a user message. Try again with a conversation that "
                             "starts with a user message.")
    tool_ids: set[str] = set()
    uses_tools = False
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant") or (i == 0 and role != "user"):
            raise WireError(400, "A conversation must start with a user message. Try again with a conversation "
                                 "that starts with a user message.")
        if i and messages[i - 1]["role"] == role:
            raise WireError(400, "A conversation must alternate between user and assistant roles. Make sure the "
                                 "conversation alternates between user and assistant roles and try again.")
        content = message.get("content")
        if not isinstance(content, list) or not content:
            raise WireError(400, f"The content field in the Message object at messages.{i} is empty.")
        for j, block in enumerate(content):
            kinds = [k for k in BLOCK_KINDS if isinstance(block, dict) and k in block]
            if len(kinds) != 1 or len(block) != 1:
                raise WireError(400, f"Malformed input request: messages.{i}.content.{j} must have exactly one "
                                     "member")
            if kinds[0] == "toolUse":
                uses_tools = True
                tool_ids.add(str(block["toolUse"].get("toolUseId")))
            elif kinds[0] == "toolResult":
                uses_tools = True
                if block["toolResult"].get("toolUseId") not in tool_ids:
                    raise WireError(400, "The toolUseId in toolResult does not match any toolUse in the previous "
                                         "turn.")
    if uses_tools and not isinstance(body.get("toolConfig"), dict):
        raise WireError(400, "The toolConfig field must be defined when using toolUse and toolResult content "
                             "blocks.")
    config = body.get("inferenceConfig") or {}
    for key, value in config.items():
        if key not in INFERENCE_FIELDS:
            raise WireError(400, f"Malformed input request: extraneous key [{key}] is not permitted")
        if key == "temperature" and not (isinstance(value, int | float) and 0 <= value <= 1):
            raise WireError(400, "temperature: must be between 0 and 1")


def _block_words(content: list[JSON]) -> list[str]:
    words: list[str] = []
    for block in content:
        if "text" in block:
            words += words_of(str(block["text"]))
        elif "toolResult" in block:
            for item in block["toolResult"].get("content") or ():
                words += words_of(str(item.get("text") or ""))
    return words


def _texts(body: JSON) -> list[str]:
    words = [w for s in body.get("system") or () for w in words_of(str(s.get("text") or ""))]
    for message in body["messages"]:
        words += _block_words(message["content"])
    return words
