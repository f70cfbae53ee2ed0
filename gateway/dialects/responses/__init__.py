"""OpenAI's Responses API as a dialect: a reader and writers around the neutral (chat-shaped) request.

    request.py   Responses request -> neutral chat request (`read`), with what the answer echoes back
    items.py     input items (messages, function calls and outputs, reasoning) -> chat messages
    response.py  neutral chat completion -> Responses `response` object; the object's envelope and usage
    stream.py    neutral chat chunks -> the Responses event stream, with `sequence_number`
    backend/     the reverse, for deployments that speak only the Responses API
    store.py     stored responses for `previous_response_id`, retrieve, delete and input items

Everything but the store is pure: values in, values out, no I/O.
"""
