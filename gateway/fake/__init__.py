"""A deterministic, fast OpenAI-compatible fake upstream for the demo, the tests and the benchmarks."""

from gateway.fake.behaviour import Behaviour
from gateway.fake.server import FakeUpstream, run, start_server

__all__ = ["Behaviour", "FakeUpstream", "run", "start_server"]
