"""The machine alert engine on a real PostgreSQL: rules per plant / line / machine, rounds of machine_down,
offline, scrap_rate and low_rate from the rows the core writes, the notification outbox and its sender.

The demo plant: press-01 and press-02 on line-1 (ideal cycle 0.25 s), welder-01 and packer-01 on line-2,
all served by edge-1. Rows are inserted as the ingest writes them; each round is run at a chosen `now`.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest
from sqlalchemy.orm import Session

from kernel.db.models import make_engine
from kernel.signals import MachineState
from mes.services import alert_engine
from mes.rules.webhooks import networks
from mes.services.notifications import NotificationSender
from tests.support.http import ok, refused
from tests.support.auth import by

NOW = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)
LOOPBACK = networks(["127.0.0.0/8", "::1/128"])
MIN, SECOND = timedelta(minutes=1), timedelta(seconds=1)
FAULT, RUNNING = MachineState.FAULT, MachineState.RUNNING


@pytest.fixture
def db(api, database_url):
    """A psycopg connection for the rows the core would write (autocommit)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


def round_at(database_url: str, now: datetime, **options) -> list[tuple[str, str, str]]:
    """One engine round; (event, kind, subject) of each transition."""
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            return [(t.event.value, t.alert.kind.value, t.alert.subject) for t in alert_engine.evaluate_machines(session, now, **options)]
    finally:
        engine.dispose()


_seq = iter(range(1, 1_000_000))


def report_state(db, machine: str, code: int, since: datetime, *, confirmed: datetime | None = None, seen: datetime | None = None):
    """The machine changed to `code` at `since`; a heartbeat restated it at `confirmed`; last message at `seen`."""
    db.execute("INSERT INTO machine_states VALUES (%s, %s, %s, 0, 'edge-1', 1, %s)", (machine, since, code, next(_seq)))
    db.execute("""INSERT INTO machine_live (machine_id, state_code, state_ts, fault_code, fault_ts, last_seen)
                  VALUES (%s, %s, %s, 0, %s, %s)
                  ON CONFLICT (machine_id) DO UPDATE SET state_code = EXCLUDED.state_code, state_ts = EXCLUDED.state_ts,
                      last_seen = EXCLUDED.last_seen""",
               (machine, code, confirmed or since, since, seen or confirmed or since))


def put_rule(api, rule_id: str, **body) -> dict:
    return ok(api.put(f"/alert-rules/{rule_id}", json=body))


def open_alerts(api) -> dict[tuple[str, str], dict]:
    return {(a["kind"], a["subject"]): a for a in ok(api.get("/alerts", params={"status": "open"}))}


def test_machine_down_follows_the_most_specific_rule_and_the_start_of_the_state_not_its_heartbeat(api, db, database_url):
    put_rule(api, "down-plant", kind="machine_down", severity="warning", minutes=10)
    put_rule(api, "down-line-1", kind="machine_down", severity="critical", scope="line=line-1", minutes=5)
    put_rule(api, "down-press-02", kind="machine_down", severity="critical", scope="machine=press-02", minutes=1, enabled=False)
    put_rule(api, "down-packer", kind="machine_down", severity="info", scope="machine=packer-01", minutes=10,
             down_states=["blocked"])
    for machine in ("press-01", "press-02", "welder-01", "packer-01"):
        report_state(db, machine, RUNNING, NOW - 60 * MIN)
        # the fault began 7 min ago; the heartbeat 5 s ago restated it (machine_live.state_ts moves with it)
        report_state(db, machine, FAULT, NOW - 7 * MIN, confirmed=NOW - timedelta(seconds=5))

    # press-01: line-1's 5 min < 7 min. press-02: its own rule is disabled, which exempts it from line-1's.
    # welder-01: the plant's 10 min > 7 min. packer-01: its rule counts blocked only.
    assert round_at(database_url, NOW) == [("raised", "machine_down", "press-01")]
    raised = open_alerts(api)[("machine_down", "press-01")]
    assert (raised["rule_id"], raised["severity"], raised["value"]) == ("down-line-1", "critical", "7.00")
    assert raised["detail"] == "press-01 has been fault for 7.00 min (limit 5 min)"
    assert round_at(database_url, NOW) == [], "a repeated round changes nothing"

    later = NOW + 4 * MIN  # 11 min down: over the plant's 10
    db.execute("UPDATE machine_live SET last_seen = %s", (later,))  # heartbeats go on: not silent
    assert round_at(database_url, later) == [("raised", "machine_down", "welder-01")]

    report_state(db, "press-01", RUNNING, later + MIN)
    assert api.delete("/alert-rules/down-plant").status_code == 204
    assert round_at(database_url, later + 70 * SECOND) == [("cleared", "machine_down", "press-01"),
                                                        ("cleared", "machine_down", "welder-01")]
    events = ok(api.get(f"/alerts/{raised['alert_id']}/events"))
    assert [(e["event"], e["note"]) for e in events] == [
        ("raised", "press-01 has been fault for 7.00 min (limit 5 min)"), ("cleared", "press-01 is running")]
    welder = ok(api.get("/alerts", params={"subject": "welder-01"}))[0]
    assert welder["status"] == "cleared"
    assert ok(api.get(f"/alerts/{welder['alert_id']}/events"))[-1]["note"] == "no enabled machine_down rule applies to welder-01"


def test_offline_from_the_last_will_and_from_silence_and_an_offline_machine_is_not_down(api, db, database_url):
    put_rule(api, "offline", kind="offline", severity="critical", minutes=5)
    put_rule(api, "down", kind="machine_down", severity="warning", minutes=1)
    db.execute("INSERT INTO edge_status VALUES ('edge-1', false, 3, ARRAY['press-01', 'press-02'], %s)", (NOW - 2 * MIN,))
    db.execute("INSERT INTO edge_status VALUES ('edge-2', true, 1, ARRAY['welder-01', 'packer-01'], %s)", (NOW - 60 * MIN,))
    for edge, online, at in (("edge-1", True, NOW - 60 * MIN), ("edge-1", False, NOW - 10 * MIN),
                             ("edge-1", False, NOW - 2 * MIN),  # the retained Last Will again, to a reconnecting core
                             ("edge-2", True, NOW - 60 * MIN)):
        db.execute("INSERT INTO edge_status_events (edge_id, online, epoch, received_at) VALUES (%s, %s, 1, %s)", (edge, online, at))
    report_state(db, "press-01", FAULT, NOW - 30 * MIN, seen=NOW - 10 * MIN - timedelta(seconds=1))
    report_state(db, "press-02", RUNNING, NOW - 30 * MIN, seen=NOW - 10 * SECOND)  # heard after the Last Will: back
    report_state(db, "welder-01", RUNNING, NOW - 30 * MIN, seen=NOW - 8 * MIN)  # silent: offline from 7.5 min ago
    report_state(db, "packer-01", RUNNING, NOW - 30 * MIN, seen=NOW - timedelta(seconds=10))

    core_started = NOW - 2 * MIN  # silence before the core listened is not counted
    assert round_at(database_url, NOW, offline_after_s=30, listening_since=core_started) == [("raised", "offline", "press-01")]
    assert round_at(database_url, NOW, offline_after_s=30) == [("raised", "offline", "welder-01")]
    alerts = open_alerts(api)
    assert alerts[("offline", "press-01")]["value"] == "10.00", "offline since the first Last Will, not the re-sent one"
    assert alerts[("offline", "welder-01")]["value"] == "7.50"
    assert ("machine_down", "press-01") not in alerts, "an offline machine is not down: its last state is stale"

    db.execute("UPDATE edge_status SET online = true, changed_at = %s WHERE edge_id = 'edge-1'", (NOW,))
    db.execute("INSERT INTO edge_status_events (edge_id, online, epoch, received_at) VALUES ('edge-1', true, 4, %s)", (NOW,))
    db.execute("UPDATE machine_live SET last_seen = %s WHERE machine_id IN ('press-01', 'welder-01')", (NOW,))
    assert round_at(database_url, NOW + timedelta(seconds=1), offline_after_s=30) == [
        ("raised", "machine_down", "press-01"), ("cleared", "offline", "press-01"), ("cleared", "offline", "welder-01")]


def test_scrap_rate_and_low_rate_over_their_windows_with_each_items_ideal_cycle(api, db, database_url):
    put_rule(api, "scrap", kind="scrap_rate", severity="warning", minutes=10, percent=5)
    put_rule(api, "slow-line-1", kind="low_rate", severity="info", scope="line=line-1", minutes=10, percent=80)
    db.execute("INSERT INTO items (item_id, name, kind, uom) VALUES ('bracket', 'Bracket', 'make', 'pcs')")
    db.execute("INSERT INTO work_orders (work_order_id, item_id, quantity, status) VALUES ('WO-1', 'bracket', 5000, 'running')")
    db.execute("INSERT INTO machine_items VALUES ('press-01', 'bracket', 0.5)")
    report_state(db, "press-01", RUNNING, NOW - 15 * MIN, seen=NOW)
    report_state(db, "press-02", RUNNING, NOW - 5 * MIN, seen=NOW)  # running for less than the rate's window

    def made(machine, work_order, good, scrap, last_ts):
        seq = next(_seq)
        db.execute("INSERT INTO production_attributions VALUES ('edge-1', 1, %s, %s, %s, %s, %s, 0, %s, %s)",
                   (seq, machine, work_order, good, scrap, last_ts - timedelta(seconds=1), last_ts))

    made("press-01", "WO-1", 80, 20, NOW - 2 * MIN)
    made("press-01", None, 100, 0, NOW - 3 * MIN)
    made("press-01", "WO-1", 0, 1000, NOW - 10 * MIN)  # on the window's open edge: outside
    made("press-02", None, 10, 5, NOW - MIN)  # 15 units: fewer than the 20 a scrap rate is judged from

    assert round_at(database_url, NOW) == [("raised", "scrap_rate", "press-01"), ("raised", "low_rate", "press-01")]
    alerts = open_alerts(api)
    # press-01's window: 80 + 20 (WO-1) and 100 (unassigned) = 200 units, 20 scrapped = 10 % > 5 %
    assert alerts[("scrap_rate", "press-01")]["value"] == "10.00"
    # ideal time: 100 units of WO-1 × 0.5 s (bracket on press-01) + 100 unassigned × 0.25 s = 75 s of 600 s = 12.5 %
    assert alerts[("low_rate", "press-01")]["value"] == "12.50"
    assert alerts[("low_rate", "press-01")]["detail"] == "press-01 ran at 12.50 % of ideal speed over the last 10 min (limit 80 %)"

    made("press-01", None, 1620, 0, NOW - MIN)  # + 1620 × 0.25 = 405 s: 480 s of 600 = 80 %, not below 80 %
    assert round_at(database_url, NOW) == [("cleared", "scrap_rate", "press-01"), ("cleared", "low_rate", "press-01")]


class Receiver:
    """A webhook receiver on a free port: records every POST; answers `statuses` in turn, then 200."""

    def __init__(self, statuses=()):
        self.requests: list[tuple[str, dict]] = []
        self.statuses = list(statuses)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.requests.append((self.headers["Idempotency-Key"], body))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://localhost:{self.server.server_port}/hook"  # a name, resolved by the sender at each attempt
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_every_alert_event_queues_one_delivery_per_target_and_the_sender_retries_in_order(api, db, database_url):
    receiver = Receiver(statuses=[503])
    try:
        ok(api.put("/webhooks/ops", json={"url": receiver.url}))
        ok(api.put("/webhooks/old", json={"url": "http://localhost:9/nowhere"}))
        assert ok(api.delete("/webhooks/old"))["active"] is False
        put_rule(api, "down", kind="machine_down", severity="critical", scope="machine=press-01", minutes=1)
        report_state(db, "press-01", FAULT, NOW - 2 * MIN, seen=NOW)
        assert round_at(database_url, NOW) == [("raised", "machine_down", "press-01")]
        alert = open_alerts(api)[("machine_down", "press-01")]
        ok(by(api, "ana").post(f"/alerts/{alert['alert_id']}/acknowledge", json={"who": "ana", "note": "on it"}))

        pending = ok(api.get("/notifications", params={"status": "pending"}))
        assert sorted((d["key"], d["target"]) for d in pending) == sorted(
            (f"{alert['alert_id']}:{event}", target) for event in ("raised", "acknowledged") for target in ("mqtt", "webhook:ops"))

        sender = NotificationSender(database_url, None, allow_private=LOOPBACK)  # no broker: the mqtt rows wait
        before = datetime.now(UTC)
        assert sender.send_due() == 0, "the receiver answers 503 to the first notification"
        after = datetime.now(UTC)
        failed = ok(api.get("/notifications", params={"target": "webhook:ops", "status": "pending"}))[-1]  # newest first
        assert failed["key"] == f"{alert['alert_id']}:raised" and failed["attempts"] == 1
        assert failed["last_error"] == "HTTP 503 Service Unavailable"
        assert before + SECOND <= datetime.fromisoformat(failed["next_attempt_at"]) <= after + SECOND, "first retry after 1 s"
        assert sender.send_due() == 0, "not due again before its back-off; the acknowledgement waits behind it"
        assert len(receiver.requests) == 1

        db.execute("UPDATE notification_deliveries SET next_attempt_at = now() WHERE id = %s", (failed["id"],))
        assert sender.send_due() == 2, "then it and the acknowledgement behind it go, in order"
        assert [key for key, _ in receiver.requests] == [f"{alert['alert_id']}:{e}" for e in ("raised", "raised", "acknowledged")]
        raised, acknowledged = receiver.requests[1][1], receiver.requests[2][1]
        assert raised["key"] == receiver.requests[1][0] and raised["alert"]["status"] == "active"
        assert raised["alert"]["acknowledged_by"] is None, "the payload is the alert as it was right after the event"
        assert (acknowledged["event"], acknowledged["by"], acknowledged["note"]) == ("acknowledged", "ana", "on it")
        assert acknowledged["alert"]["status"] == "acknowledged"
        delivered = ok(api.get("/notifications", params={"status": "delivered"}))
        assert {(d["target"], d["attempts"]) for d in delivered} == {("webhook:ops", 2), ("webhook:ops", 1)}
        assert {d["target"] for d in ok(api.get("/notifications", params={"status": "pending"}))} == {"mqtt"}
    finally:
        receiver.close()


def test_rules_api_refuses_what_the_rules_refuse_and_writes_nothing(api, database_url):
    before = ok(api.get("/alert-rules"))
    assert {r["kind"] for r in before} >= {"stock_shortage", "lot_expired"}, "the inventory rules are seeded by the migration"
    put_rule(api, "down", kind="machine_down", severity="warning", scope="line=line-1", minutes="2.5")
    rules = {r["rule_id"]: r for r in ok(api.get("/alert-rules"))}
    assert rules["down"] == {"rule_id": "down", "kind": "machine_down", "severity": "warning", "scope": "line=line-1",
                             "minutes": "2.5", "percent": None, "min_units": None,
                             "down_states": ["blocked", "fault", "idle", "starved"], "enabled": True}

    refused(api.put("/alert-rules/x", json={"kind": "flood", "severity": "warning"}), 422, "unknown alert kind 'flood'")
    refused(api.put("/alert-rules/x", json={"kind": "offline", "severity": "loud", "minutes": 1}), 422, "unknown severity 'loud'")
    refused(api.put("/alert-rules/x", json={"kind": "offline", "severity": "info"}), 422, "offline rules need minutes")
    refused(api.put("/alert-rules/x", json={"kind": "offline", "severity": "info", "minutes": 1, "percent": 5}), 422,
            "offline rules take no percent")
    refused(api.put("/alert-rules/x", json={"kind": "scrap_rate", "severity": "info", "minutes": 5, "percent": 100}), 422,
            "scrap limit must be from 0 up to")
    refused(api.put("/alert-rules/x", json={"kind": "machine_down", "severity": "info", "minutes": 5, "down_states": ["lunch"]}),
            422, "not lunch")
    refused(api.put("/alert-rules/x", json={"kind": "safety_stock", "severity": "info", "scope": "machine=press-01"}), 422,
            "its scope must be the plant")
    refused(api.put("/alert-rules/x", json={"kind": "offline", "severity": "info", "scope": "cell=7", "minutes": 1}), 422,
            "unknown scope 'cell'")
    refused(api.put("/alert-rules/x", json={"kind": "offline", "severity": "info", "scope": "machine=press-99", "minutes": 1}),
            404, "machine 'press-99' does not exist")
    refused(api.put("/alert-rules/x", json={"kind": "offline", "severity": "info", "scope": "line=line-9", "minutes": 1}),
            404, "line 'line-9' does not exist")
    refused(api.put("/alert-rules/x", json={"kind": "machine_down", "severity": "info", "scope": "line=line-1", "minutes": 1}),
            409, "rules down and x are both machine_down rules for line=line-1")
    refused(api.put("/alert-rules/bad id", json={"kind": "offline", "severity": "info", "minutes": 1}), 422)
    refused(api.put("/alert-rules/x", json={"kind": "offline", "severity": "info", "minutes": 1, "colour": "red"}), 422)
    refused(api.delete("/alert-rules/nope"), 404, "alert rule 'nope' does not exist")
    assert ok(api.get("/alert-rules")) == sorted([*before, rules["down"]], key=lambda r: r["rule_id"]), \
        "a refused request writes nothing"

    refused(api.put("/webhooks/ops", json={"url": "ftp://example.com/x"}), 422, "must start with http:// or https://")
    refused(api.put("/webhooks/ops", json={"url": "http://host:99999/x"}), 422, "port")
    refused(api.delete("/webhooks/ops"), 404, "webhook 'ops' does not exist")
    refused(api.get("/notifications", params={"status": "lost"}), 422)
    assert ok(api.get("/webhooks")) == []

    added = ok(api.post("/alert-rules/defaults"))
    assert [(r["rule_id"], r["kind"], r["minutes"]) for r in added] == [
        ("machine-down", "machine_down", "10"), ("offline", "offline", "5"), ("scrap-rate", "scrap_rate", "60"),
        ("low-rate", "low_rate", "30"), ("review-waiting", "review_waiting", None)]
    assert ok(api.post("/alert-rules/defaults")) == [], "installed once; a deleted default comes back only when asked again"
    assert Decimal(added[2]["percent"]) == 5 and added[2]["min_units"] == 20


# --- webhooks reach public hosts only, checked at each attempt (tests/mes/test_webhook_targets.py: the rule) ---

def test_a_name_resolving_to_loopback_is_refused_at_send_time_unless_allowed(api, db, database_url):
    now = datetime.now(UTC).replace(microsecond=0)
    receiver = Receiver()
    try:
        ok(api.put("/webhooks/ops", json={"url": receiver.url}))  # http://localhost:<port>/hook: a name, accepted
        put_rule(api, "down", kind="machine_down", severity="critical", scope="machine=press-01", minutes=1)
        report_state(db, "press-01", FAULT, now - 2 * MIN, seen=now)
        assert round_at(database_url, now) == [("raised", "machine_down", "press-01")]

        strict = NotificationSender(database_url, None)
        try:
            assert strict.send_due() == 0
        finally:
            strict.close()
        (pending,) = ok(api.get("/notifications", params={"target": "webhook:ops", "status": "pending"}))
        assert pending["last_error"] == "refused: localhost resolves to 127.0.0.1 is loopback: webhooks go to public hosts " \
                                        "only, unless MES_WEBHOOK_ALLOW_PRIVATE names its range"
        assert receiver.requests == []

        db.execute("UPDATE notification_deliveries SET next_attempt_at = now() - interval '1 s'")  # due now, not after the back-off
        allowing = NotificationSender(database_url, None, allow_private=networks(["127.0.0.0/8"]))
        try:
            assert allowing.send_due() == 1
        finally:
            allowing.close()
        assert [key for key, _ in receiver.requests] == [pending["key"]]
    finally:
        receiver.close()


def test_a_name_that_does_not_resolve_is_a_failed_attempt_with_the_reason(api, db, database_url):
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    ok(api.put("/webhooks/ops", json={"url": "http://no-such-host.invalid/hook"}))
    put_rule(api, "down", kind="machine_down", severity="critical", scope="machine=press-01", minutes=1)
    report_state(db, "press-01", FAULT, now - 2 * MIN, seen=now)
    assert round_at(database_url, now) == [("raised", "machine_down", "press-01")]
    sender = NotificationSender(database_url, None)
    try:
        assert sender.send_due() == 0
    finally:
        sender.close()
    (pending,) = ok(api.get("/notifications", params={"target": "webhook:ops", "status": "pending"}))
    assert pending["last_error"].startswith("no-such-host.invalid does not resolve")
