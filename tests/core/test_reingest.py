"""Re-ingesting dead letters after the plant file was fixed: the rule (core/rules/review.py `reingestable`),
the ingest plan it goes through, and the API on a real PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import psycopg
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from core.ingest.plan import Incoming, IngestState, MachineInfo, parse_batch, plan_batch
from core.rules.review import Counted, DeadLetter, Position, reingestable
from core.rules.sequencing import EdgeCursor, Ingested
from tests.core.test_ingest_plan import REGISTRY, SPEC, T0, at, incoming

KNOWN = {**REGISTRY, "m2": MachineInfo("s", "a", "l", {c: SPEC for c in ("good", "scrap", "energy_wh")})}
M2_TOPIC = "mes/v1/s/a/l/m2/data"


def letter(id_: int, seq: int, *, machine="m2", edge="e1", review="pending", cut=False, refusal=None,
           received: float = 0) -> DeadLetter:
    return DeadLetter(id_, review, at(received), cut, refusal, machine, Position(edge, 1, seq))


def test_a_machines_dead_letters_are_taken_in_in_sequence_order_whatever_their_order_of_arrival():
    taken, refused = reingestable([letter(3, 30), letter(1, 10), letter(2, 20)], set(), {})
    assert [l.id for l in taken] == [1, 2, 3] and refused == {}


def test_what_cannot_be_taken_in_is_refused_with_why():
    letters = [letter(1, 10, review="dismissed"), letter(2, 11, cut=True), letter(3, 12, refusal="unknown machine 'm2'"),
               letter(4, 13), letter(5, 14), letter(6, 14), letter(7, 15, edge="e2")]
    taken, refused = reingestable(letters, {Position("e1", 1, 13)}, {})
    assert [l.id for l in taken] == [5]
    assert "dismissed already" in refused[1]
    assert "only the head of its payload" in refused[2]
    assert "still refused: unknown machine" in refused[3]
    assert "was ingested since" in refused[4]
    assert "same message as dead letter 5" in refused[6]
    assert "take one edge's in at a time" in refused[7]


def test_a_dead_letter_at_or_below_its_edges_key_watermark_is_refused_as_its_key_may_be_gone():
    taken, refused = reingestable([letter(1, 10), letter(2, 11), letter(3, 5, edge="e2", machine="m3")], set(), {},
                                  {"e1": EdgeCursor(1, 10)})
    assert [l.id for l in taken] == [2, 3]
    assert "older than the kept message keys" in refused[1] and "MES_RETENTION_MESSAGES_DAYS" in refused[1]


def test_a_dead_letter_its_machines_count_moved_past_is_refused_as_it_would_count_twice():
    counted = {"m2": [Counted("e1", 1, 20, at(20))]}
    taken, refused = reingestable([letter(1, 10), letter(2, 30)], set(), counted)
    assert [l.id for l in taken] == [2]
    assert "moved past it (edge e1 epoch 1 seq 20" in refused[1] and "twice" in refused[1]
    # from another edge, what was received later moved past it
    taken, refused = reingestable([letter(3, 5, edge="e2", received=10), letter(4, 6, edge="e2", received=30)], set(),
                                  counted)
    assert [l.id for l in taken] == [4] and "moved past" in refused[3]


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(st.integers(0, 12), min_size=2, max_size=14),
    live_before=st.integers(0, 4),
    live_after=st.integers(0, 3),
    arrival=st.randoms(use_true_random=False),
    resent=st.lists(st.integers(0, 13), max_size=4),
)
def test_taken_in_in_any_order_and_with_resends_a_machines_dead_letters_count_every_unit_once(
        steps, live_before, live_after, arrival, resent):
    """A machine counts `steps`; its first `live_before` messages are ingested while the plant file knows it,
    then the plant file loses it (every message a dead letter, some of them twice), then it is fixed: the dead
    letters are taken in (in whatever order the review lists them) and the ingest goes on. Recorded = made."""
    values = [100]
    for step in steps:
        values.append(values[-1] + step)
    messages = [incoming(i + 1, [(i + 1, "good", value)], machine="m2", topic=M2_TOPIC) for i, value in enumerate(values)]
    before, dead = messages[:live_before], messages[live_before:]
    after = [incoming(len(values) + i + 1, [(len(values) + i + 1, "good", values[-1] + 3 * (i + 1))], machine="m2",
                      topic=M2_TOPIC) for i in range(live_after)]

    state, counted, ingested = IngestState(), 0, {}

    def ingest(batch, registry, **how):
        nonlocal state, counted
        plan = plan_batch(parse_batch(batch, registry), state, registry, set(ingested), **how)
        state = plan.state
        counted += sum(row.good for row in plan.intervals)
        ingested.update({(m.edge_id, m.epoch, m.seq): Ingested(m.digest) for m in plan.messages})
        return plan

    ingest(before, KNOWN)
    forgotten = ingest(dead + [dead[i % len(dead)] for i in resent if dead], REGISTRY)  # m2 unknown
    listed = list(enumerate(forgotten.dead_letters))
    arrival.shuffle(listed)
    last = {"m2": [Counted(*max(ingested), T0)]} if ingested else {}
    letters = [DeadLetter(id_, "pending", row.received_at, False, None, "m2",
                          Position("e1", *json_position(row.payload))) for id_, row in listed]
    taken, refused = reingestable(letters, {Position(*key) for key in ingested}, last)
    assert len(taken) == len(dead) and len(refused) == len(letters) - len(dead), "each message once, resends refused"
    ingest([incoming_of(forgotten.dead_letters[l.id]) for l in taken], KNOWN, reingest=True)
    ingest(after, KNOWN)
    made = (values[-1] + 3 * live_after) - values[0]
    assert counted == made


def json_position(payload: bytes) -> tuple[int, int]:
    body = json.loads(payload)
    return body["epoch"], body["seq"]


def incoming_of(row) -> Incoming:
    return Incoming(row.topic, row.payload, row.received_at)


FIXED_PLANT_YAML = """
site: s
edge_id: e1
areas: [{id: a, lines: [{id: l, machines: [{id: m1, protocol: modbus, ideal_cycle_s: 0.025},
                                           {id: m2, protocol: modbus, ideal_cycle_s: 0.025}]}]}]
"""


def test_a_machine_the_plant_file_did_not_know_has_its_dead_letters_taken_in_once_through_the_api(database_url, tmp_path):
    from app.api import create_app
    from core.ingest.service import IngestService
    from core.queries import recorded_totals
    from core.service import prepare_database
    from kernel.db.models import make_engine
    from tests.core.test_ingest_service import prepared
    from tests.e2e.conftest import plant_on_free_ports
    from tests.support.auth import by
    from tests.support.cap_line import cap_order_running
    from tests.support.http import ok, refused

    prepared(database_url, tmp_path)  # the plant file knows m1 only
    core = IngestService(database_url)
    m2 = {2: 100, 4: 110, 6: 125, 8: 140}  # seq -> m2's good counter; m1's messages in between
    core.ingest([incoming(seq, [(seq, "good", m2[seq])], machine="m2", topic=M2_TOPIC) if seq in m2 else
                 incoming(seq, [(seq, "good", 10 + seq)]) for seq in range(1, 9)])
    core.ingest([incoming(5, [(5, "good", 15)], received=101)])  # a redelivery: skipped
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM dead_letters WHERE reason LIKE 'unknown machine%'").fetchone()[0] == 4
        conn.execute("INSERT INTO dead_letters (received_at, topic, payload, reason, size, machine_id) "
                     "VALUES (now(), %s, 'not json', 'not JSON: invalid', 8, 'm2')", (M2_TOPIC,))

    (tmp_path / "fixed.yaml").write_text(FIXED_PLANT_YAML)
    prepare_database(database_url, plant_on_free_ports(tmp_path / "fixed.yaml"))  # the plant file fixed
    engine = make_engine(database_url)
    with Session(engine) as session:
        cap_order_running(session, "WO-2", 1_000, machine_id="m2", started_at=T0 - timedelta(minutes=1),
                          resin_kg=Decimal(1000), resin_unit_cost=Decimal("2"))
    engine.dispose()

    def m2_counted() -> tuple:
        with psycopg.connect(database_url) as conn:
            attributed = conn.execute("SELECT coalesce(sum(good), 0) FROM production_attributions "
                                      "WHERE work_order_id = 'WO-2'").fetchone()[0]
            resin = conn.execute("SELECT coalesce(sum(quantity), 0) FROM stock_moves WHERE reason = 'backflush' "
                                 "AND item_id = 'resin'").fetchone()[0]
            return recorded_totals(conn)["m2"]["good"], int(attributed), resin

    with TestClient(create_app(database_url)) as client:
        api = by(client, "ada-shift-lead", "supervisor")
        letters = ok(api.get("/review/dead-letters", params={"machine_id": "m2"}))
        not_json = next(l for l in letters if l["reason"].startswith("not JSON"))
        refused(by(client, "otto", "operator").post(f"/review/dead-letters/{not_json['id']}/reingest",
                                                     json={"reason": "x"}), 403, "supervisor")
        refused(api.post(f"/review/dead-letters/{not_json['id']}/reingest", json={"reason": "plant file fixed"}), 409,
                "still refused: not JSON")
        refused(api.post("/review/dead-letters/999999/reingest", json={"reason": "plant file fixed"}), 404)

        outcome = ok(api.post("/review/dead-letters/reingest",
                              json={"machine_id": "m2", "reason": "m2 added to the plant file"}))
        assert len(outcome["reingested"]) == 4
        assert [r["id"] for r in outcome["refused"]] == [not_json["id"]]
        assert m2_counted() == (40, 40, Decimal(20)), "140 - 100, attributed to WO-2 and backflushed, once"

        again = refused(api.post(f"/review/dead-letters/{outcome['reingested'][0]}/reingest",
                                 json={"reason": "once more"}), 409, "reingested already")
        assert "a decision is taken once" in again
        assert ok(api.post("/review/dead-letters/reingest", json={"machine_id": "m2", "reason": "again"}))["reingested"] == []
        assert m2_counted() == (40, 40, Decimal(20))
        audited = ok(api.get("/review/dead-letters", params={"review": "reingested"}))
        assert {(l["reviewed_by"], l["review_reason"]) for l in audited} == {("ada-shift-lead", "m2 added to the plant file")}
        assert all(l["reviewed_at"] for l in audited) and len(audited) == 4

    # the core, started before the fix, goes on from the last re-ingested value, not from a first value
    core.ingest([incoming(10, [(10, "good", 150)], machine="m2", topic=M2_TOPIC, received=110)])
    core.ingest([incoming(11, [(11, "good", 21)], received=111)])
    core.close()
    with psycopg.connect(database_url) as conn:
        assert recorded_totals(conn)["m1"]["good"] == 21 - 11
        assert conn.execute("SELECT count(*) FROM dead_letters WHERE review = 'pending'").fetchone()[0] == 1
    assert m2_counted() == (50, 50, Decimal(25))


MOVED_PLANT_YAML = """
site: s
edge_id: e1
areas: [{id: a, lines: [{id: l, machines: [{id: m1, protocol: modbus, ideal_cycle_s: 0.025},
                                           {id: m2, protocol: modbus, ideal_cycle_s: 0.025, edge_id: %s}]}]}]
"""


def test_a_machine_moved_to_another_edge_goes_on_from_its_re_ingested_count_in_a_core_that_counted_it_before(
        database_url, tmp_path):
    """m2 was read by e2, then by e1 while the plant file still gave it to e2 (e1's messages: "edge not
    assigned"). After the fix and the re-ingest, the core — which holds m2's count from e2's time in memory —
    counts e1's next message from the re-ingested value: its cache never counts the dead letters' units again."""
    from core.ingest import store
    from core.ingest.service import IngestService
    from core.queries import recorded_totals
    from core.service import prepare_database
    from core.services import review
    from kernel.db.models import make_engine
    from tests.e2e.conftest import plant_on_free_ports

    def plant(edge: str) -> None:
        (tmp_path / f"{edge}.yaml").write_text(MOVED_PLANT_YAML % edge)
        prepare_database(database_url, plant_on_free_ports(tmp_path / f"{edge}.yaml"))

    def m2(seq: int, value: int, edge: str, received: float):
        return incoming(seq, [(received, "good", value)], machine="m2", topic=M2_TOPIC, edge=edge, received=received)

    plant("e2")
    core = IngestService(database_url)
    core.ingest([m2(1, 100, "e2", 100), m2(2, 105, "e2", 101)])
    core.ingest([m2(1, 112, "e1", 102), m2(2, 120, "e1", 103)])  # edge not assigned
    plant("e1")
    engine = make_engine(database_url)
    with Session(engine) as session:
        outcome = review.reingest(session, machine_id="m2", by="ada", reason="m2 now hangs on e1")
    engine.dispose()
    assert len(outcome["reingested"]) == 2 and outcome["refused"] == {}
    with core.engine.connect() as connection:  # the core learns the new assignment, and keeps its own count of m2
        core.registry = store.load_registry(connection)
    assert core.state.counters["m2", "good"].value == 105
    core.ingest([m2(3, 130, "e1", 104)])
    core.close()
    with psycopg.connect(database_url) as conn:
        assert recorded_totals(conn)["m2"]["good"] == 30, "100 → 130, each unit once"
