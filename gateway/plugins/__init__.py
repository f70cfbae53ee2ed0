"""Plugins: hooks on the request path, the built-in guardrails and the response cache.

    base.py        the hook interface (`Plugin`, `Answer`, `ChunkHook`) and what plugins are given
    config.py      the config file's `plugins:` section
    registry.py    names -> classes: the built-ins plus the `llm_gateway.plugins` entry points
    runner.py      which plugins apply to a request, each hook in order, failures contained
    stream.py      chunk hooks on a stream; a stream assembled into an answer and replayed from one
    patterns.py    masking patterns in text, whole or streaming (held back across chunks)
    text.py        the text of a request or an answer, to scan or rewrite
    guardrails/    pii, injection, content, request_limits
    cache/         the exact cache (Redis or in-process) and the semantic cache
"""
