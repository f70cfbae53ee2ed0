"""The Responses dialect the other way round, for deployments that speak only the Responses API.

    request.py   neutral chat request -> Responses request
    response.py  Responses `response` object -> chat completion
    stream.py    Responses events -> chat chunks

Shaped like a provider adapter (request, response, stream), so that `/v1/chat/completions` and
`/v1/messages` clients reach models OpenAI serves only through `/v1/responses`.
"""
