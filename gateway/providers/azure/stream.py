"""Azure's stream: OpenAI's, except for the chunk of prompt-filter results it may open with."""

from __future__ import annotations

import orjson

from gateway.core.types import Usage
from gateway.providers.openai.stream import OpenAIStreamTranslator


class AzureStreamTranslator:
    """OpenAI's translator, minus the chunks that carry only content-filter results."""

    __slots__ = ("_inner", "_watching")

    def __init__(self, inner: OpenAIStreamTranslator) -> None:
        self._inner = inner
        # Azure sends the filter-only chunk first; once content flows, bytes pass untouched.
        self._watching = True

    @property
    def usage(self) -> Usage | None:
        return self._inner.usage

    @property
    def done(self) -> bool:
        return self._inner.done

    def feed(self, data: bytes) -> bytes:
        out = self._inner.feed(data)
        return self._drop_filter_only(out) if self._watching and out else out

    def finish(self) -> bytes:
        out = self._inner.finish()
        return self._drop_filter_only(out) if self._watching and out else out

    def _drop_filter_only(self, out: bytes) -> bytes:
        if b"prompt_filter_results" not in out:
            if b'"delta"' in out:
                self._watching = False
            return out
        kept = []
        for event in out.split(b"\n\n"):
            if event and not _filter_only(event):
                kept.append(event)
        if any(b'"delta"' in event for event in kept):
            self._watching = False
        return b"\n\n".join(kept) + b"\n\n" if kept else b""


def _filter_only(event: bytes) -> bool:
    if b"prompt_filter_results" not in event:
        return False
    try:
        chunk = orjson.loads(event.partition(b"data:")[2].strip())
    except orjson.JSONDecodeError:
        return False
    return isinstance(chunk, dict) and not chunk.get("choices") and chunk.get("usage") is None
