"""Consistent hashing with bounded loads."""

from __future__ import annotations

from collections import Counter

from gateway.routing.hashring import HashRing
from gateway.routing.request import stable_hash

NODES = ["a", "b", "c", "d"]
KEYS = [stable_hash(f"key {i}") for i in range(2000)]


def owner(ring: HashRing[str], key: int, nodes: list[str]) -> str:
    chosen = ring.pick(key, lambda n: 0.0, set(nodes), 1.25)
    assert chosen is not None
    return chosen


def test_keys_spread_over_the_nodes() -> None:
    ring = HashRing(NODES, str)
    counts = Counter(owner(ring, k, NODES) for k in KEYS)
    assert set(counts) == set(NODES)
    assert min(counts.values()) > 2000 / 4 * 0.6


def test_removing_a_node_moves_only_its_keys() -> None:
    full = HashRing(NODES, str)
    without_c = HashRing([n for n in NODES if n != "c"], str)
    for key in KEYS:
        before = owner(full, key, NODES)
        after = owner(without_c, key, [n for n in NODES if n != "c"])
        if before != "c":
            assert after == before


def test_a_loaded_owner_spills_to_the_next_node_on_the_ring() -> None:
    ring = HashRing(NODES, str)
    key = KEYS[0]
    home = owner(ring, key, NODES)
    loads = {n: 0.0 for n in NODES}
    loads[home] = 10.0
    spill = ring.pick(key, loads.__getitem__, set(NODES), 1.25)
    assert spill != home
    assert spill == next(n for n in ring.walk(key) if n != home)
    # Within the bound it stays home: one more on 2 stays under ceil(1.25 * (8 + 1) / 4) = 3.
    loads.update({n: 2.0 for n in NODES})
    assert ring.pick(key, loads.__getitem__, set(NODES), 1.25) == home
    loads[home] = 4.0  # one more makes 5, over ceil(1.25 * (10 + 1) / 4) = 4
    assert ring.pick(key, loads.__getitem__, set(NODES), 1.25) != home
