"""The SSE reader every non-OpenAI stream translator stands on."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.providers.streaming import SSEEvent, SSEParser

STREAM = (b": comment\n\nevent: message_start\ndata: {\"a\": 1}\n\n"
          b"data: line one\ndata: line two\n\n"
          b"event: ping\r\ndata: {}\r\n\r\n"
          b"retry: 100\nid: 7\n\n"
          b"data:no-space\n\n")
EVENTS = [SSEEvent("message_start", '{"a": 1}'), SSEEvent(None, "line one\nline two"), SSEEvent("ping", "{}"),
          SSEEvent(None, "no-space")]


def test_fields_comments_multiline_data_and_crlf() -> None:
    parser = SSEParser()
    assert parser.feed(STREAM) == EVENTS
    assert parser.flush() == []


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=20))
def test_any_split_of_the_bytes_gives_the_same_events(cuts: list[int]) -> None:
    parser = SSEParser()
    events: list[SSEEvent] = []
    start = 0
    for cut in sorted(cuts):
        events += parser.feed(STREAM[start:cut])
        start = cut
    events += parser.feed(STREAM[start:]) + parser.flush()
    assert events == EVENTS


def test_a_last_event_without_its_blank_line_is_flushed() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: {\"x\": 1}") == []
    assert parser.flush() == [SSEEvent(None, '{"x": 1}')]
    assert SSEEvent(None, "not json").json() is None
