"""What SigV4 signing costs a Bedrock request: building the upstream call with and without it.

    python loadtests/bench_bedrock_signing.py [--quick] [--calls 2000] [--rounds 7]

Three ways to build the same chat request's upstream call, side by side in one process, rounds
interleaved so that the machine's load falls on all of them alike:

- `openai`: the OpenAI adapter (the body passed through): the reference;
- `bedrock-bearer`: the Bedrock adapter with a Bedrock API key (the Converse mapping, no signing);
- `bedrock-sigv4`: the Bedrock adapter signing with botocore, credentials from the environment.

The signing cost per request is `bedrock-sigv4` minus `bedrock-bearer` (the median round of each).
Credentials are static here; temporary ones add botocore's refresh check, and a refresh itself
(an STS or metadata call) every few minutes, not per request. No network is used.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.config.file import config_from_dict  # noqa: E402
from gateway.config.settings import Settings  # noqa: E402
from gateway.core.request import ClientRequest  # noqa: E402
from gateway.core.types import Endpoint, Principal  # noqa: E402
from gateway.providers import PROVIDERS  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
CALLER = Principal(key_id="master", key_prefix="sk-master", is_master=True)
BODY: dict[str, Any] = {
    "model": "claude",
    "messages": [{"role": "system", "content": "You are a helpful assistant. Answer briefly."},
                 {"role": "user", "content": "Summarise the plot of Hamlet in three sentences, please. " * 4}],
    "max_tokens": 256,
    "temperature": 0.2,
}


def _calls(args: argparse.Namespace) -> dict[str, Any]:
    """name -> a function building one upstream call."""
    os.environ.update({"AWS_ACCESS_KEY_ID": "AKIDBENCHEXAMPLE0001", "AWS_SECRET_ACCESS_KEY": "bench-secret-0123456789",
                       "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
                       "AWS_EC2_METADATA_DISABLED": "true", "BENCH_KEY": "bench-key-0123456789abcdef"})
    raw = {"models": [
        {"name": "openai", "deployments": [{"provider": "openai", "base_url": "https://api.openai.com/v1",
                                            "model": "gpt-4o-mini", "api_key_env": "BENCH_KEY"}]},
        {"name": "bearer", "deployments": [{"provider": "bedrock", "region": "us-east-1", "api_key_env": "BENCH_KEY",
                                            "model": "anthropic.claude-3-5-haiku-20241022-v1:0"}]},
        {"name": "sigv4", "deployments": [{"provider": "bedrock", "region": "us-east-1",
                                           "model": "anthropic.claude-3-5-haiku-20241022-v1:0"}]},
    ]}
    config, _ = config_from_dict(raw, PROVIDERS)
    deployments = {group.name: group.deployments[0] for group in config.models}
    settings = Settings()
    adapters = {"openai": PROVIDERS["openai"](settings), "bedrock": PROVIDERS["bedrock"](settings)}

    def build(adapter: Any, deployment: Any) -> Any:
        def one(i: int) -> Any:
            request = ClientRequest(f"req-{i}", Endpoint.CHAT, "", CALLER, "claude", BODY)
            return adapter.build_call(request, deployment)
        return one

    return {"openai": build(adapters["openai"], deployments["openai"]),
            "bedrock-bearer": build(adapters["bedrock"], deployments["bearer"]),
            "bedrock-sigv4": build(adapters["bedrock"], deployments["sigv4"])}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    calls = _calls(args)
    for build in calls.values():  # warm up: imports, the credential lookup, caches
        for i in range(50):
            build(i)
    rounds: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(args.rounds):
        for name, build in calls.items():
            start = time.perf_counter_ns()
            for i in range(args.calls):
                build(i)
            rounds[name].append((time.perf_counter_ns() - start) / args.calls / 1000)
    medians = {name: statistics.median(values) for name, values in rounds.items()}
    signing = medians["bedrock-sigv4"] - medians["bedrock-bearer"]
    return {
        "benchmark": "bedrock-signing",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load": os.getloadavg()},
        "plan": {"calls_per_round": args.calls, "rounds": args.rounds},
        "us_per_call_rounds": rounds,
        "us_per_call_median": medians,
        "ratio_to_openai": {name: value / medians["openai"] for name, value in medians.items()},
        "signing_us_per_request": signing,
    }


def markdown(result: dict[str, Any]) -> str:
    medians, ratios = result["us_per_call_median"], result["ratio_to_openai"]
    lines = [f"# Bedrock signing benchmark, {result['when']}", "",
             f"Plan: {result['plan']}; machine: {result['machine']}", "",
             "Building one chat request's upstream call (median of the rounds), side by side in one process:", "",
             "| build | µs per call | ÷ openai |", "|---|--:|--:|"]
    lines += [f"| {name} | {medians[name]:.1f} | {ratios[name]:.2f} |" for name in medians]
    lines += ["", f"SigV4 signing (bedrock-sigv4 minus bedrock-bearer): **{result['signing_us_per_request']:.1f} µs "
                  "per request**, CPU on the request path, once per attempt.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="200 calls x 3 rounds, a smoke test")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.calls, args.rounds = 200, 3
    result = measure(args)
    stem = f"bedrock-signing-{datetime.now(UTC).date().isoformat()}{'-quick' if args.quick else ''}"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
