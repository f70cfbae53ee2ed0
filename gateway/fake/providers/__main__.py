"""`python -m gateway.fake.providers NAME --port P [--require-key K]`; NAME: anthropic, azure, gemini, vllm
or a preset's service (groq, mistral, deepseek, together, fireworks, openrouter, xai, ollama, llamacpp)."""

from __future__ import annotations

import argparse

import uvloop

from gateway.fake.behaviour import Behaviour
from gateway.fake.providers import FAKES, start_fake
from gateway.fake.server import serve_until_signalled


async def _serve(name: str, host: str, port: int, behaviour: Behaviour, require_key: str | None) -> None:
    fake = await start_fake(name, host, port, behaviour, require_key)
    await serve_until_signalled(fake, f"fake {name} listening on http://{host}:{fake.port}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m gateway.fake.providers")
    parser.add_argument("provider", choices=sorted(FAKES))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--require-key", help="refuse requests without this key, in the provider's auth header")
    parser.add_argument("--agent", action="store_true", help="call an offered tool, then answer its result")
    parser.add_argument("--context-words", type=int, default=4096, help="longer prompts get a context-length error")
    args = parser.parse_args()
    behaviour = Behaviour(tokens=args.tokens, agent=args.agent, context_words=args.context_words)
    uvloop.run(_serve(args.provider, args.host, args.port, behaviour, args.require_key))


if __name__ == "__main__":
    main()
