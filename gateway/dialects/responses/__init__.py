"""OpenAI's Responses API as a dialect: a reader and writers around the neutral (chat-shaped) request.

    request.py   Responses request -> neutral chat request (`read`), with what the answer echoes back
    items.py     input items (messages, function calls and outputs, reasoning) -> chat messages
    response.py  neutral chat completion -> Responses `response` object; the object's envelope and usage
    stream.py    neutral chat chunks -> the Responses event stream, with `sequence_number`
    backend/     the reverse, for deployments that speak only the Responses API
    store.py     stored responses for `previous_response_id`, retrieve, delete and input items
    turn.py      one create call as the endpoint read it, a value the adapters and writers share
    adapters.py  which adapter serves a request on a deployment: native relay, or chat via Responses
    endpoint.py  the HTTP endpoints: create through the proxy (the dialect: its reader and writers),
                 retrieve, delete, input_items

Everything but the store and the endpoint is pure: values in, values out, no I/O.
"""
