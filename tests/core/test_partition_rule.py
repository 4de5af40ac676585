"""The edge-ownership rule: rounds of every live core acting on the same picture end balanced, every edge
owned by exactly one live core, whatever order the cores act in and whoever died."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from core.rules.partition import Rebalance, rebalance


def round_of(edges: list[str], cores: list[str], owners: dict[str, str]) -> dict[str, str]:
    """Each core, in `cores`' order, acts on the picture as it finds it; a claim is a lock: the first one wins."""
    owners = dict(owners)
    for core in cores:
        decision = rebalance(edges, cores, owners, core)
        for edge in decision.release:
            assert owners[edge] == core
            del owners[edge]
        for edge in decision.claim:
            assert owners.get(edge) not in cores
            owners[edge] = core
    return owners


def settle(edges, cores, owners, rounds: int = 50) -> dict[str, str]:
    for _ in range(rounds):
        after = round_of(edges, cores, owners)
        if after == owners and not any(rebalance(edges, cores, owners, core) for core in cores):
            return owners
        owners = after
    raise AssertionError(f"no fixpoint after {rounds} rounds: {owners}")


def loads(owners: dict[str, str], cores: list[str]) -> dict[str, int]:
    return {core: sum(1 for owner in owners.values() if owner == core) for core in cores}


def test_one_core_takes_every_edge():
    assert rebalance(["e1", "e2", "e3"], ["a"], {}, "a") == Rebalance(claim=("e1", "e2", "e3"))


def test_a_second_core_gets_half_and_the_first_gives_it_up():
    edges = ["e1", "e2", "e3", "e4"]
    owners = dict.fromkeys(edges, "a")
    assert rebalance(edges, ["a", "b"], owners, "a") == Rebalance(release=("e3", "e4"))
    assert rebalance(edges, ["a", "b"], owners, "b") == Rebalance()  # nothing free yet
    owners = settle(edges, ["a", "b"], owners)
    assert loads(owners, ["a", "b"]) == {"a": 2, "b": 2}
    assert {e for e, o in owners.items() if o == "a"} == {"e1", "e2"}, "the first core kept what it had"


def test_a_dead_cores_edges_are_free_for_the_others():
    edges = ["e1", "e2", "e3", "e4"]
    owners = {"e1": "a", "e2": "a", "e3": "b", "e4": "b"}
    assert rebalance(edges, ["a"], owners, "a") == Rebalance(claim=("e3", "e4"))


def test_the_most_loaded_core_gives_one_edge_to_a_starving_one():
    edges = ["e1", "e2", "e3", "e4"]
    owners = {"e1": "a", "e2": "a", "e3": "b", "e4": "b"}  # c just started: ⌊4/3⌋ = 1
    assert rebalance(edges, ["a", "b", "c"], owners, "b") == Rebalance(release=("e4",))
    assert rebalance(edges, ["a", "b", "c"], owners, "a") == Rebalance()
    assert loads(settle(edges, ["a", "b", "c"], owners), ["a", "b", "c"]) in (
        {"a": 2, "b": 1, "c": 1}, {"a": 1, "b": 2, "c": 1}, {"a": 1, "b": 1, "c": 2})


def test_no_edges_no_work():
    assert rebalance([], ["a", "b"], {}, "a") == Rebalance()


core_names = st.lists(st.sampled_from("abcdef"), min_size=1, max_size=6, unique=True)


@settings(max_examples=300, deadline=None)
@given(edge_count=st.integers(0, 25), before=core_names, after=core_names, data=st.data())
def test_whatever_the_start_the_rounds_settle_balanced_with_one_live_owner_per_edge(edge_count, before, after, data):
    """`before`: the cores that owned edges (some may have died since); `after`: the live ones, in the order they act."""
    edges = [f"edge-{i:02d}" for i in range(edge_count)]
    owners = {edge: data.draw(st.sampled_from(before)) for edge in edges
              if data.draw(st.booleans())}
    owners = settle(edges, after, owners)
    assert set(owners) == set(edges), "every edge is owned while a core is alive"
    assert set(owners.values()) <= set(after), "only live cores own edges"
    counts = loads(owners, after).values()
    assert max(counts, default=0) - min(counts, default=0) <= 1, "balanced within one edge"


@given(edge_count=st.integers(1, 25), cores=core_names, data=st.data())
def test_a_decision_never_takes_an_owned_edge_nor_gives_up_anothers(edge_count, cores, data):
    edges = [f"edge-{i:02d}" for i in range(edge_count)]
    owners = {edge: data.draw(st.sampled_from(cores)) for edge in edges if data.draw(st.booleans())}
    me = data.draw(st.sampled_from(cores))
    decision = rebalance(edges, cores, owners, me)
    assert all(edge not in owners for edge in decision.claim)
    assert all(owners[edge] == me for edge in decision.release)
    assert not (decision.claim and decision.release)
