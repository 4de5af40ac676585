"""Review through the API on a real PostgreSQL: quarantined steps accepted once, dead letters listed and dismissed."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import psycopg
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.api import create_app
from core.ingest.plan import Incoming
from core.ingest.service import IngestService
from core.rules.review import AcceptedUnits, QuarantinedStep, accepted_units, decidable
from kernel.db.models import make_engine
from kernel.rules.refusals import Conflict
from tests.core.test_ingest_plan import T0, TOPIC, at
from tests.core.test_ingest_service import batch, prepared
from tests.support.auth import by
from tests.support.cap_line import cap_order_running
from tests.support.http import ok, refused

DECISION = {"reason": "the counter board was swapped; the climb is real"}
REVIEWER = "ada-shift-lead"


def step(kind="jump", review="pending", counter="good", quarantined=40) -> QuarantinedStep:
    return QuarantinedStep(1, "m1", counter, T0, kind, quarantined, review)


def test_an_accepted_jump_counts_its_climb_on_its_counter_at_its_instant():
    assert accepted_units(step()) == AcceptedUnits("m1", T0, 40, 0, 0)
    assert accepted_units(step(counter="energy_wh", quarantined=7)) == AcceptedUnits("m1", T0, 0, 0, 7)


def test_a_step_is_decided_once_and_an_out_of_range_reading_only_rejected():
    decidable(step(), accept=True)
    decidable(step(kind="out_of_range"), accept=False)
    for refused_step, accept in ((step(review="accepted"), False), (step(review="rejected"), True),
                                 (step(kind="out_of_range"), True)):
        try:
            decidable(refused_step, accept)
        except Conflict:
            continue
        raise AssertionError(f"{refused_step} should be refused")


def test_a_quarantined_jump_accepted_through_the_api_changes_the_order_ledger_and_cost_once(database_url, tmp_path):
    prepared(database_url, tmp_path)
    engine = make_engine(database_url)
    with Session(engine) as session:
        # quantity 1,020: the accepted climb brings it there, which auto-completes it as a counted unit would
        cap_order_running(session, "WO-9", 1_020, machine_id="m1", started_at=T0 - timedelta(minutes=1),
                          resin_kg=Decimal(1000), resin_unit_cost=Decimal("2"), auto_complete=True)
    engine.dispose()
    service = IngestService(database_url)
    service.ingest(batch(1, [0, 10, 1_010, 1_020]))  # 10 good, a climb of 1,000 in a second (quarantined), 10 good
    service.ingest([Incoming(TOPIC, b'{"v": 1, "edge_id": ', at(9))])
    service.close()

    def made() -> tuple:
        with psycopg.connect(database_url) as conn:
            good = conn.execute("SELECT sum(good) FROM production_attributions WHERE work_order_id = 'WO-9'").fetchone()[0]
            resin = conn.execute("SELECT sum(quantity) FROM stock_moves WHERE reason = 'backflush' AND item_id = 'resin'"
                                 ).fetchone()[0]
            caps = conn.execute("SELECT sum(quantity) FROM stock_moves WHERE reason = 'production receipt' "
                                "AND item_id = 'cap'").fetchone()[0]
            (status,) = conn.execute("SELECT status FROM work_orders WHERE work_order_id = 'WO-9'").fetchone()
        return int(good), resin, caps, status

    assert made() == (20, Decimal(10), Decimal(20), "running")
    with TestClient(create_app(database_url)) as client:
        api = by(client, REVIEWER, "supervisor")
        refused(by(client, "otto-operator", "operator").post("/review/quarantine/1/accept", json=DECISION), 403, "supervisor")
        (pending,) = ok(api.get("/review/quarantine"))
        assert (pending["kind"], pending["quarantined"], pending["review"]) == ("jump", 1_000, "pending")
        assert ok(api.get("/review/waiting"))["quarantined_units"] == {"good": 1_000, "scrap": 0, "energy_wh": 0}
        cost_before = ok(api.get("/work-orders/WO-9/cost"))

        decided = ok(api.post(f"/review/quarantine/{pending['id']}/accept", json=DECISION))
        assert (decided["review"], decided["reviewed_by"], decided["review_reason"]) == ("accepted", REVIEWER, DECISION["reason"])
        refused(api.post(f"/review/quarantine/{pending['id']}/accept", json=DECISION), 409, "accepted already")
        refused(api.post(f"/review/quarantine/{pending['id']}/reject", json=DECISION), 409, "accepted already")
        assert made() == (1_020, Decimal(510), Decimal(1_020), "completed"), \
            "counted, attributed, backflushed and received once; the order reached its quantity and completed"
        assert ok(api.get("/review/quarantine")) == []
        assert ok(api.get("/review/quarantine", params={"review": "accepted"}))[0]["id"] == pending["id"]
        cost_after = ok(api.get("/work-orders/WO-9/cost"))
        # the resin is valued at 2 a kg: 10 kg before, 510 kg after, once
        assert (Decimal(cost_before["actual"]["material"]), Decimal(cost_after["actual"]["material"])) == (20, 1_020)
        assert Decimal(cost_after["finished_goods_value"]) == Decimal(cost_after["actual"]["total"]) - Decimal(
            cost_after["not_absorbed"])
        refused(api.post(f"/review/quarantine/{pending['id']}/accept", json=DECISION), 409, "accepted already")
        assert made() == (1_020, Decimal(510), Decimal(1_020), "completed")
        assert ok(api.get("/work-orders/WO-9/cost"))["actual"]["material"] == cost_after["actual"]["material"]
        with psycopg.connect(database_url) as conn:
            assert conn.execute("SELECT actor FROM work_order_events WHERE action = 'complete'").fetchall() == [
                ("auto-complete",)]

        (letter,) = ok(api.get("/review/dead-letters", params={"reason": "not JSON"}))
        assert letter["payload"] == '{"v": 1, "edge_id": ' and letter["size"] == 20 and not letter["payload_cut"]
        assert ok(api.get("/review/dead-letters", params={"machine_id": "m1"}))[0]["id"] == letter["id"]
        assert ok(api.get("/review/dead-letters", params={"before_id": letter["id"]})) == []
        dismissed = ok(api.post(f"/review/dead-letters/{letter['id']}/dismiss", json=DECISION))
        assert dismissed["review"] == "dismissed"
        refused(api.post(f"/review/dead-letters/{letter['id']}/dismiss", json=DECISION), 409, "dismissed already")
        refused(api.post("/review/dead-letters/999999/dismiss", json=DECISION), 404, "no dead letter")
        assert ok(api.get("/review/waiting"))["dead_letters"] == 0


def test_the_review_commands_list_and_decide(database_url, tmp_path):
    import json
    import os
    import subprocess
    import sys

    prepared(database_url, tmp_path)
    service = IngestService(database_url)
    service.ingest(batch(1, [0, 5_000]))  # a climb of 5,000 in a second: quarantined
    service.close()
    env = {**os.environ, "MES_DATABASE_URL": database_url}

    def mes(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "app", "review", *args], capture_output=True, text=True, env=env,
                              timeout=60)

    (step_line,) = mes("quarantine").stdout.splitlines()
    pending = json.loads(step_line)
    assert (pending["kind"], pending["quarantined"]) == ("jump", 5_000)
    assert json.loads(mes("waiting").stdout)["quarantined_steps"] == 1
    rejected = mes("reject", str(pending["id"]), "--by", "Ada", "--reason", "a test pulse")
    assert json.loads(rejected.stdout)["review"] == "rejected"
    again = mes("accept", str(pending["id"]), "--by", "Ada", "--reason", "second thoughts")
    assert again.returncode == 1 and "rejected already" in again.stderr
    missing = mes("reingest", "999999", "--by", "Ada", "--reason", "plant file fixed")
    assert missing.returncode == 1 and "no dead letter 999999" in missing.stderr
    none_waiting = mes("reingest", "--machine", "m1", "--by", "Ada", "--reason", "plant file fixed")
    assert json.loads(none_waiting.stdout) == {"reingested": [], "refused": {}}


def test_the_review_waiting_alert_holds_while_something_waits_too_long_and_the_board_counts_it(database_url, tmp_path):
    from datetime import UTC, datetime

    from dashboards.services.board import snapshot
    from mes.services.alert_engine import install_default_rules
    from mes.services.review_waiting import evaluate_review

    prepared(database_url, tmp_path)
    service = IngestService(database_url)
    received = datetime.now(UTC) - timedelta(hours=2)
    service.ingest([Incoming(TOPIC, b"not json", received)])
    service.close()
    engine = make_engine(database_url)
    with Session(engine) as session:
        install_default_rules(session)
        assert evaluate_review(session, timedelta(hours=3)) == [], "not waited long enough yet"
        (raised,) = evaluate_review(session, timedelta(hours=1))
        assert (raised.event.value, raised.alert.kind.value, raised.alert.subject) == ("raised", "review_waiting", "review")
        assert "1 dead letter(s)" in raised.alert.detail
        board = snapshot(session)
        assert (board.review.dead_letters, board.review.quarantined_steps, board.review.oldest) == (1, 0, received)
    with TestClient(create_app(database_url)) as client:
        api = by(client, REVIEWER, "supervisor")
        (letter,) = ok(api.get("/review/dead-letters"))
        ok(api.post(f"/review/dead-letters/{letter['id']}/dismiss", json=DECISION))
        assert ok(api.get("/board/data"))["review"]["dead_letters"] == 0
    with Session(engine) as session:
        (cleared,) = evaluate_review(session, timedelta(hours=1))
        assert cleared.event.value == "cleared"
    engine.dispose()
