"""Which edge may report a machine (core/rules/assignment.py), and what the batch planner does with the others."""

from __future__ import annotations

import json

from core.ingest.plan import IngestState, Incoming, MachineInfo, parse_batch, plan_batch
from core.rules.assignment import EDGE_NOT_ASSIGNED, data_refusal, status_refusal
from core.rules.counters import CounterPoint
from tests.core.test_ingest_plan import SPEC, at, incoming

COUNTERS = {c: SPEC for c in ("good", "scrap", "energy_wh")}
REGISTRY = {"m1": MachineInfo("s", "a", "l", COUNTERS, "e1"), "m2": MachineInfo("s", "a", "l", COUNTERS, "e2"),
            "old": MachineInfo("s", "a", "l", COUNTERS, None)}


def test_only_the_assigned_edge_may_report_a_machine():
    assert data_refusal("e1", "e1", "m1") is None
    refusal = data_refusal("e1", "e2", "m1")
    assert refusal == f"{EDGE_NOT_ASSIGNED}: machine 'm1' belongs to edge 'e1', not 'e2'"
    assert data_refusal(None, "anyone", "old") is None, "no assignment on record: any edge"


def test_a_status_may_announce_only_the_edges_own_machines():
    edges = {machine: info.edge_id for machine, info in REGISTRY.items()}
    assert status_refusal(edges, "e1", ["m1"]) is None
    assert status_refusal(edges, "e1", []) is None
    assert status_refusal(edges, "e1", ["m1", "old", "unknown"]) is None, "unassigned or unknown machines are no one's"
    assert status_refusal(edges, "e9", ["m2", "m1"]) == f"{EDGE_NOT_ASSIGNED}: edge 'e9' announces machines of other edges: m1, m2"


def test_data_from_an_edge_the_machine_is_not_assigned_to_is_dead_lettered_and_nothing_counted():
    state = IngestState(counters={("m1", "good"): CounterPoint(100, at(0))})
    batch = [incoming(1, [(1, "good", 104)], edge="e2"), incoming(1, [(2, "good", 110)], edge="e1")]
    result = plan_batch(parse_batch(batch, REGISTRY), state, REGISTRY, set())
    assert [row.reason.split(":")[0] for row in result.dead_letters] == [EDGE_NOT_ASSIGNED]
    assert [(row.good, row.edge_id) for row in result.intervals] == [(10, "e1")], "e2's 104 is not a step of m1"
    assert set(result.state.cursors) == {"e1"}, "the foreign edge's sequence never starts"


def test_a_status_announcing_another_edges_machine_is_dead_lettered_and_changes_no_status():
    fake = Incoming("mes/v1/edge/e2/status", b'{"v": 1, "edge_id": "e2", "online": false, "machines": ["m1"]}', at(5))
    own = Incoming("mes/v1/edge/e2/status", b'{"v": 1, "edge_id": "e2", "online": true, "machines": ["m2"]}', at(6))
    parsed = parse_batch([fake, own], REGISTRY)
    assert [row.reason.split(":")[0] for row in parsed.dead_letters] == [EDGE_NOT_ASSIGNED]
    assert [(event.edge_id, event.online) for event in parsed.status_events] == [("e2", True)]


def test_a_machine_the_plant_file_does_not_know_never_holds_up_its_edges_other_machines():
    """A real edge names the message it published before (`prev`). One of a machine the core does not know is
    a dead letter judged in its place in the edge's sequence, so the next message, which follows it, is
    ingested — not set aside for a resend that would only bring the same dead letter again."""
    def message(seq: int, machine: str, value: int):
        body = {"v": 1, "edge_id": "e1", "epoch": 1, "seq": seq, "machine": machine,
                "samples": [{"ts": at(seq).isoformat(), "signal": "good", "value": value}]}
        if seq > 1:
            body["prev"] = {"epoch": 1, "seq": seq - 1}
        return Incoming(f"mes/v1/s/a/l/{machine}/data", json.dumps(body).encode(), at(100 + seq))

    state = plan_batch(parse_batch([message(1, "m1", 10)], REGISTRY), IngestState(), REGISTRY, set()).state
    result = plan_batch(parse_batch([message(2, "ghost", 5), message(3, "m1", 12), message(4, "ghost", 6)], REGISTRY),
                        state, REGISTRY, set())
    assert result.held == {}
    assert [row.reason.split(":")[0] for row in result.dead_letters] == ["unknown machine 'ghost'"] * 2
    assert [(row.seq, row.good) for row in result.intervals] == [(3, 2)]
    assert result.state.cursors["e1"].seq == 3, "a dead letter never moves the cursor"
