"""The live plan over HTTP on a real PostgreSQL: the two-level TABLE example of docs/planning.md, loaded from
the stored items, BOMs, stock and sales orders, then bad input refused with its reason and nothing written.

Dates are relative to today (the live plan starts today): week buckets from today, SO-1 due in 16 days (week 2).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from tests.support.auth import by
from tests.support.http import ok, refused

TODAY = datetime.now(UTC).date()
WEEKS = "bucket=week&buckets=4"


@pytest.fixture(autouse=True)
def today():
    """The live plan starts on the day of the request: read today per test, not once per run, which a suite run
    across midnight would otherwise see a day apart."""
    global TODAY
    TODAY = datetime.now(UTC).date()


@pytest.fixture
def api(api):
    for item, kind in (("TABLE", "make"), ("TOP", "make"), ("SCREW", "buy")):
        ok(api.post("/items", json={"item_id": item, "name": item.title(), "kind": kind, "uom": "pcs"}), 201)
    ok(api.post("/items/TABLE/bom", json={"component_item": "TOP", "quantity_per": "1"}), 201)
    ok(api.post("/items/TABLE/bom", json={"component_item": "SCREW", "quantity_per": "4"}), 201)
    ok(api.post("/items/TOP/bom", json={"component_item": "SCREW", "quantity_per": "6"}), 201)
    ok(api.put("/items/TABLE/planning", json={"lead_time_days": 7}))
    ok(api.put("/items/TOP/planning", json={"lead_time_days": 7, "lot_sizing": {"rule": "min_multiple", "minimum": "12"}}))
    ok(api.put("/items/SCREW/planning", json={"lead_time_days": 0, "lot_sizing": {"rule": "min_multiple", "multiple": "100"}}))
    ok(api.post("/locations", json={"location_id": "wh", "name": "Main store", "kind": "warehouse"}), 201)
    for item, quantity in (("TOP", "2"), ("SCREW", "50")):
        ok(api.post("/stock/receipts", json={"item_id": item, "lot": "L1", "to_location": "wh", "quantity": quantity,
                                             "source_ref": f"opening-{item}"}), 201)
    ok(api.post("/customers", json={"customer_id": "globex", "name": "Globex"}), 201)
    due = datetime.combine(TODAY + timedelta(days=16), datetime.min.time(), UTC) + timedelta(hours=12)
    ok(api.post("/sales-orders", json={"so_id": "SO-1", "customer_id": "globex", "due": due.isoformat(),
                                       "lines": [{"line": "1", "item_id": "TABLE", "quantity": "10", "unit_price": "99"}]}), 201)
    return api


def columns(record) -> list[tuple[int, ...]]:
    names = ("gross_requirements", "scheduled_receipts", "projected_on_hand", "net_requirements", "planned_receipts",
             "planned_releases")
    return [tuple(int(float(bucket[name])) for name in names) for bucket in record["buckets"]]


def test_the_live_plan_nets_the_stored_orders_through_both_levels(api):
    screw = ok(api.get(f"/planning/runs/live/records/SCREW?{WEEKS}"))
    assert screw["low_level_code"] == 2
    assert columns(screw) == [(72, 0, 78, 22, 100, 100), (40, 0, 38, 0, 0, 0), (0, 0, 38, 0, 0, 0), (0, 0, 38, 0, 0, 0)]
    top = ok(api.get(f"/planning/runs/live/records/TOP?{WEEKS}"))
    assert columns(top) == [(0, 0, 2, 0, 0, 12), (10, 0, 4, 8, 12, 0), (0, 0, 4, 0, 0, 0), (0, 0, 4, 0, 0, 0)]
    orders = ok(api.get(f"/planning/runs/live/planned-orders?{WEEKS}"))
    assert [(o["id"], float(o["quantity"]), o["receipt"]) for o in orders] == [
        ("planned:TABLE:1", 10, str(TODAY + timedelta(weeks=2))), ("planned:TOP:1", 12, str(TODAY + timedelta(weeks=1))),
        ("planned:SCREW:1", 100, str(TODAY))]
    assert ok(api.get(f"/planning/runs/live/exceptions?{WEEKS}")) == []
    pegs = ok(api.get(f"/planning/runs/live/pegging/SO-1/1?{WEEKS}"))
    assert [(p["depth"], p["supply"], p["demand"], float(p["quantity"])) for p in pegs["down"]] == [
        (0, "planned:TABLE:1", "SO-1/1", 10), (1, "on_hand:TOP", "planned:TABLE:1/TOP", 2),
        (1, "planned:TOP:1", "planned:TABLE:1/TOP", 8), (1, "planned:SCREW:1", "planned:TABLE:1/SCREW", 40),
        (2, "on_hand:SCREW", "planned:TOP:1/SCREW", 50), (2, "planned:SCREW:1", "planned:TOP:1/SCREW", 22)]
    assert ok(api.get(f"/planning/runs/live/pegging/planned:SCREW:1?{WEEKS}"))["up"][-1]["demand"] == "SO-1/1"


def test_atp_and_a_promise_without_booking(api):
    atp = ok(api.get(f"/planning/atp/TABLE?{WEEKS}"))["buckets"]
    assert [(float(b["supply"]), float(b["booked"]), float(b["cumulative_atp"])) for b in atp] == [
        (0, 0, 0), (0, 0, 0), (10, 10, 0), (0, 0, 0)]
    answer = ok(api.post(f"/planning/promise?{WEEKS}", json={"lines": [
        {"item_id": "SCREW", "quantity": "30", "wanted": str(TODAY + timedelta(weeks=1))},
        {"item_id": "TOP", "quantity": "1", "wanted": str(TODAY)}]}))["lines"]
    assert [(a["source"], a["promise"]) for a in answer] == [("atp", str(TODAY + timedelta(weeks=1))), ("atp", str(TODAY))]
    assert columns(ok(api.get(f"/planning/runs/live/records/SCREW?{WEEKS}")))[0] == (72, 0, 78, 22, 100, 100)


def test_an_approved_purchase_order_is_a_scheduled_receipt(api):
    ok(api.post("/suppliers", json={"supplier_id": "acme", "name": "ACME"}), 201)
    ok(api.post("/purchase-orders", json={"po_id": "PO-1", "supplier_id": "acme", "created_by": "anna",
                                          "due": str(TODAY + timedelta(days=8)),
                                          "lines": [{"line": "1", "item_id": "SCREW", "quantity": "30", "unit_cost": "0.1"}]}), 201)
    ok(api.post("/purchase-orders/PO-1/submit", json={"actor": "anna"}))
    ok(by(api, "bob").post("/purchase-orders/PO-1/approve", json={}))
    """PO-1 brings 30 on day 8. Week 0: 50 − 72 → PO-1 is needed now: expedite, and until it comes SCREW is at −22;
    TOP's 72 (today) and the rest of PO-1 for TABLE's 40 (day 7) both wait for it, to day 8. Week 1: 8 − 40 = −32 → 100."""
    screw = columns(ok(api.get(f"/planning/runs/live/records/SCREW?{WEEKS}")))
    assert screw[:2] == [(72, 0, -22, 0, 0, 0), (40, 30, 68, 32, 100, 100)]
    kinds = [(e["kind"], e["reference"]) for e in ok(api.get(f"/planning/runs/live/exceptions?{WEEKS}"))]
    assert kinds == [("expedite", "PO-1/1"), ("below_safety_stock", "SCREW"), ("demand_late", "planned:TOP:1/SCREW"),
                     ("demand_late", "planned:TABLE:1/SCREW")]


def test_bad_input_is_refused_naming_the_problem_and_writes_nothing(api, database_url):
    refused(api.put("/items/TOP/planning", json={"lot_sizing": {"rule": "fixed"}}), 422, "needs a quantity")
    refused(api.post("/planning/forecasts", json={"item_id": "TABLE", "bucket_start": str(TODAY), "quantity": "-1"}),
            422, "must not be negative")
    refused(api.get("/planning/runs/live/records/TABLE?buckets=367"), 422, "at most 366")
    refused(api.get("/planning/runs/nightly/records/TABLE"), 404, "nightly")
    refused(api.put("/items/NOPE/planning", json={}), 404, "NOPE")
    refused(api.get("/planning/atp/NOPE"), 404, "NOPE")
    refused(api.post("/planning/promise", json={"lines": [{"item_id": "NOPE", "quantity": "1", "wanted": str(TODAY)}]}),
            404, "NOPE")
    refused(api.get("/planning/runs/live/records/TABLE?bucket=month"), 422, "bucket")
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT lot_rule FROM item_planning WHERE item_id = 'TOP'").fetchone() == ("min_multiple",)
        assert conn.execute("SELECT count(*) FROM planning_forecasts").fetchone() == (0,)
        conn.execute("DELETE FROM item_planning WHERE item_id = 'TOP'")
    refused(api.get(f"/planning/runs/live/records/TOP?{WEEKS}"), 409, "item 'TOP' has no lead time")
    order = {"so_id": "SO-3", "customer_id": "globex", "due": "9999-12-31T23:00:00-05:00",
             "lines": [{"line": "1", "item_id": "TABLE", "quantity": "1", "unit_price": "9"}]}
    refused(api.post("/sales-orders", json=order), 422, "beyond the calendar")  # in UTC it is year 10000
    entered = ok(api.post("/sales-orders", json={**order, "due": f"{TODAY}T12:00:00Z"}), 201)
    promise = entered["lines"][0]["promise"]
    assert (promise["demand_id"], promise["date"], promise["source"]) == ("SO-3/1", None, "none"), "entered, promised nothing"
    assert promise["reasons"][0].startswith("item 'TOP' has no lead time")


def test_a_forecast_adds_to_the_independent_demand(api):
    body = ok(api.post("/planning/forecasts", json={"item_id": "TABLE", "bucket_start": str(TODAY + timedelta(weeks=3)),
                                                    "quantity": "5"}), 201)
    assert body["item_id"] == "TABLE"
    table = columns(ok(api.get(f"/planning/runs/live/records/TABLE?{WEEKS}")))
    assert table[3][0] == 5


def test_a_released_work_orders_remaining_good_quantity_and_component_needs_follow_the_counts(api, database_url):
    """WO-1 makes 10 TABLEs, due in 9 days (week 1), released (BOM snapshot: 1 TOP, 4 SCREW a table). With 4 good
    counted, 6 are still to come in week 1, needing 6 TOP and 24 SCREW now; 2 more counted → 4, 4 TOP, 16 SCREW."""
    ok(api.post("/work-orders", json={"work_order_id": "WO-1", "item_id": "TABLE", "quantity": 10,
                                      "due": str(TODAY + timedelta(days=9))}), 201)
    ok(api.post("/work-orders/WO-1/release"))
    machine = ok(api.get("/machines"))[0]["machine_id"]

    def count(seq: int, good: int) -> None:  # what the ingest attributes to the order as the machine counts
        with psycopg.connect(database_url) as conn:
            conn.execute("""INSERT INTO production_attributions (edge_id, epoch, seq, machine_id, work_order_id, good,
                                                                 scrap, energy_wh, first_ts, last_ts)
                            VALUES ('e', 1, %s, %s, 'WO-1', %s, 0, 0, now(), now())""", (seq, machine, good))

    def needs() -> tuple[float, float, float]:
        table, top, screw = (ok(api.get(f"/planning/runs/live/records/{item}?{WEEKS}"))["buckets"]
                             for item in ("TABLE", "TOP", "SCREW"))
        return (float(table[1]["scheduled_receipts"]), float(top[0]["gross_requirements"]),
                float(screw[0]["gross_requirements"]))

    count(1, 4)
    assert needs()[:2] == (6, 6)
    assert needs()[2] >= 24
    count(2, 2)
    assert needs()[:2] == (4, 4)
    pegs = ok(api.get(f"/planning/runs/live/pegging/WO-1?{WEEKS}"))
    assert pegs["up"][0]["demand"] == "SO-1/1"


def test_shortages_of_the_next_days_name_the_orders_they_hit(api):
    """SCREW is bought in 10 days now: TOP's order needs 72 today, only 50 are there → SCREW's planned order comes in
    10 days, so planned:TOP:1/SCREW is a shortage of the next 7 days."""
    ok(api.put("/items/SCREW/planning", json={"lead_time_days": 10, "lot_sizing": {"rule": "min_multiple", "multiple": "100"}}))
    found = ok(api.get("/planning/shortages?days=7"))
    screw = next(entry for entry in found if entry["item_id"] == "SCREW")
    assert [d["demand_id"] for d in screw["late_demands"]] == ["planned:TOP:1/SCREW"]
    late = screw["late_demands"][0]
    assert (late["covered_on"], late["order_id"], late["sales_order_lines"]) == (
        str(TODAY + timedelta(days=10)), "planned:TOP:1", ["SO-1/1"])
    assert screw["orders_hit"] == ["SO-1/1", "planned:TOP:1"]
    assert [(o["id"], o["kind"]) for o in screw["planned_orders"]] == [("planned:SCREW:1", "buy")]


def test_the_plans_shortages_raise_and_clear_planned_shortage_alerts(api, database_url):
    """The shortage above as the core's job sees it: one planned_shortage alert for SCREW naming SO-1/1 and the
    planned buy order; once SCREW comes in time again (bought the same day), the next round clears it."""
    from sqlalchemy.orm import Session

    from kernel.db.models import make_engine
    from planning.services.shortage_alerts import evaluate_shortages

    ok(api.put("/items/SCREW/planning", json={"lead_time_days": 10, "lot_sizing": {"rule": "min_multiple", "multiple": "100"}}))
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            (raised,) = evaluate_shortages(session)
        assert (raised.event.value, raised.alert.kind.value, raised.alert.subject) == ("raised", "planned_shortage", "SCREW")
        assert "SO-1/1" in raised.alert.detail and "suggest buy 100 (planned:SCREW:1" in raised.alert.detail
        assert raised.alert.value == 100
        with Session(engine) as session:
            assert evaluate_shortages(session) == [], "a round repeated is silent"
        ok(api.put("/items/SCREW/planning", json={"lead_time_days": 0, "lot_sizing": {"rule": "min_multiple", "multiple": "100"}}))
        with Session(engine) as session:
            (cleared,) = evaluate_shortages(session)
        assert (cleared.event.value, cleared.alert.subject) == ("cleared", "SCREW")
    finally:
        engine.dispose()


def test_the_plan_command_prints_the_planned_orders_and_exceptions(api, database_url):
    from typer.testing import CliRunner

    from app.cli import app

    result = CliRunner().invoke(app, ["plan", "--bucket", "week", "--buckets", "4", "--database-url", database_url])
    assert result.exit_code == 0, result.output
    assert "planned:TABLE:1: make 10 TABLE" in result.output and "exceptions (0)" in result.output
    refused_run = CliRunner().invoke(app, ["plan", "--buckets", "400", "--database-url", database_url])
    assert refused_run.exit_code == 1 and "at most 366" in refused_run.output


def test_firming_planned_orders_makes_a_released_work_order_and_a_draft_purchase_order_the_plan_then_counts(api, database_url):
    """planned:TABLE:1 → WO-9, released at once with its BOM snapshot (1 TOP, 4 SCREW a table), due week 2: the next
    plan has it as TABLE's receipt, pegged to SO-1, and its components (10 TOP, 40 SCREW) needed when it starts, its
    due date less TABLE's 7 days: week 1, where the planned order released them. planned:SCREW:1 → a draft PO-9 from
    acme, created by the caller."""
    ok(api.post("/suppliers", json={"supplier_id": "acme", "name": "ACME"}), 201)
    firmed = ok(api.post(f"/planning/planned-orders/planned:TABLE:1/firm?{WEEKS}",
                         json={"document_id": "WO-9", "actor": "pat"}), 201)
    assert firmed["work_order_id"] == "WO-9"
    work = ok(api.get("/work-orders/WO-9"))
    assert (work["status"], work["due"], work["released_at"] is not None) == ("released", str(TODAY + timedelta(weeks=2)), True)
    assert [(c["component_item"], float(c["quantity_per_unit"])) for c in work["components"]] == [("SCREW", 4), ("TOP", 1)]
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT action, from_status, to_status, actor FROM work_order_events WHERE work_order_id = 'WO-9'"
                            ).fetchall() == [("release", "planned", "released", "key:test-admin")]
    table = ok(api.get(f"/planning/runs/live/records/TABLE?{WEEKS}"))["buckets"]
    assert [float(b["scheduled_receipts"]) for b in table] == [0, 0, 10, 0]
    assert [p["supply"] for p in ok(api.get(f"/planning/runs/live/pegging/SO-1/1?{WEEKS}"))["down"] if p["depth"] == 0] == ["WO-9"]
    top = ok(api.get(f"/planning/runs/live/records/TOP?{WEEKS}"))["buckets"]
    assert [float(b["gross_requirements"]) for b in top] == [0, 10, 0, 0]
    refused(api.post(f"/planning/planned-orders/planned:SCREW:1/firm?{WEEKS}", json={"document_id": "PO-9"}),
            422, "supplier")
    ok(api.post(f"/planning/planned-orders/planned:SCREW:1/firm?{WEEKS}",
                json={"document_id": "PO-9", "supplier_id": "acme"}), 201)
    purchase = ok(api.get("/purchase-orders/PO-9"))
    assert (purchase["status"], purchase["created_by"]) == ("draft", "key:test-admin")
    screw_orders = [o for o in ok(api.get(f"/planning/runs/live/planned-orders?{WEEKS}")) if o["item_id"] == "SCREW"]
    assert screw_orders == []
    refused(api.post(f"/planning/planned-orders/planned:NOPE:1/firm?{WEEKS}", json={"document_id": "X"}),
            404, "planned:NOPE:1")


def test_entering_a_sales_order_promises_each_line_and_firming_it_in_one_action_releases_every_level(api, database_url):
    """SO-2 wants 5 TABLE in 3 days and 20 SCREW today. Without SO-2 the plan has no TABLE to spare (SO-1 books the 10
    of week 2), so TABLE is promised by CTP: made (7 days) from TOP (made, 7 days) → in 14 days; SCREW's planned 100
    leave 78 after today's 72, 38 after SO-1's other 40: 20 are available to promise on the day wanted. SO-2 then explodes into planned
    orders on both levels, pegged to its line; firming everything pegged to SO-2 in one action releases the work
    orders (BOM snapshots) and drafts the purchase orders, submitted through the approval thresholds, or, when one
    of them cannot be made, writes nothing."""
    due = datetime.combine(TODAY + timedelta(days=3), datetime.min.time(), UTC) + timedelta(hours=12)
    entered = ok(api.post("/sales-orders", json={"so_id": "SO-2", "customer_id": "globex", "due": due.isoformat(), "lines": [
        {"line": "1", "item_id": "TABLE", "quantity": "5", "unit_price": "99"},
        {"line": "2", "item_id": "SCREW", "quantity": "20", "unit_price": "1"}]}), 201)
    promises = {line["line"]: line["promise"] for line in entered["lines"]}
    assert promises["1"]["demand_id"] == "SO-2/1" and promises["2"]["demand_id"] == "SO-2/2"
    assert (promises["1"]["source"], promises["1"]["date"]) == ("make", str(TODAY + timedelta(days=14)))
    assert (promises["2"]["source"], promises["2"]["date"]) == ("atp", str(TODAY + timedelta(days=3)))
    assert ok(api.get("/sales-orders/SO-2"))["lines"][0]["promise"] is None, "a promise is answered at entry"

    down = ok(api.get("/planning/runs/live/pegging/SO-2/1"))["down"]
    assert [(step["depth"], step["supply"], step["demand"], float(step["quantity"])) for step in down] == [
        (0, "planned:TABLE:1", "SO-2/1", 5), (1, "on_hand:TOP", "planned:TABLE:1/TOP", 2),
        (1, "planned:TOP:1", "planned:TABLE:1/TOP", 3), (1, "on_hand:SCREW", "planned:TABLE:1/SCREW", 20),
        (2, "on_hand:SCREW", "planned:TOP:1/SCREW", 30), (2, "planned:SCREW:1", "planned:TOP:1/SCREW", 42)]

    refused(api.post("/planning/planned-orders/firm", json={"sales_order_id": "SO-2", "document_prefix": "F2"}),
            422, "supplier")
    refused(api.post("/planning/planned-orders/firm", json={"document_prefix": "F2"}), 422, "either")
    refused(api.post("/planning/planned-orders/firm", json={"sales_order_id": "SO-404", "document_prefix": "F2"}),
            404, "SO-404")
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM work_orders").fetchone() == (0,), "a refused firm writes nothing"
    ok(api.post("/suppliers", json={"supplier_id": "acme", "name": "ACME"}), 201)
    ok(api.patch("/items/SCREW", json={"standard_cost": "0.1"}))
    with psycopg.connect(database_url) as conn:  # above 5: one approval
        conn.execute("INSERT INTO approval_thresholds VALUES ('purchase_order', 5, 1)")
    firmed = ok(api.post("/planning/planned-orders/firm", json={"sales_order_id": "SO-2", "document_prefix": "F2",
                                                                  "suppliers": {"SCREW": "acme"}, "submit": True}), 201)
    assert [(f["planned_order_id"], f["work_order_id"], f["purchase_order_id"]) for f in firmed] == [
        ("planned:TABLE:1", "F2-1", None), ("planned:TOP:1", "F2-2", None), ("planned:SCREW:1", None, "F2-3"),
        ("planned:SCREW:2", None, "F2-4")], "line 1's three levels, then line 2's SCREW"
    for work_order, components in (("F2-1", ["SCREW", "TOP"]), ("F2-2", ["SCREW"])):
        work = ok(api.get(f"/work-orders/{work_order}"))
        assert (work["status"], [c["component_item"] for c in work["components"]]) == ("released", components)
    bought = [ok(api.get(f"/purchase-orders/{po}")) for po in ("F2-3", "F2-4")]
    assert [(po["status"], Decimal(po["value"]), po["approvals_needed"]) for po in bought] == [("submitted", 10, 1)] * 2, \
        "100 screws at 0.1 are above the threshold of 5: submitted, waiting for one approver"
    assert [step["supply"] for step in ok(api.get("/planning/runs/live/pegging/SO-2/1"))["down"] if step["depth"] == 0] == [
        "F2-1"], "SO-2's line is now met by its firm order"
    refused(api.post("/planning/planned-orders/firm", json={"planned_order_ids": ["planned:NOPE:1"], "document_prefix": "F3"}),
            404, "planned:NOPE:1")


def test_a_stored_run_reads_back_as_it_was_when_the_live_plan_has_moved_on(api, database_url):
    """POST /planning/runs keeps the TABLE plan; a second sales order then changes the live plan, not the run."""
    run = ok(api.post("/planning/runs", json={"bucket": "week", "buckets": 4}), 201)
    assert (run["planned_orders"], run["exceptions"], run["items"]) == (3, 0, 3)
    run_id = run["run_id"]
    due = datetime.combine(TODAY + timedelta(days=16), datetime.min.time(), UTC) + timedelta(hours=12)
    ok(api.post("/sales-orders", json={"so_id": "SO-2", "customer_id": "globex", "due": due.isoformat(),
                                       "lines": [{"line": "1", "item_id": "TABLE", "quantity": "5", "unit_price": "99"}]}), 201)
    stored = ok(api.get(f"/planning/runs/{run_id}/records/SCREW"))
    assert columns(stored) == [(72, 0, 78, 22, 100, 100), (40, 0, 38, 0, 0, 0), (0, 0, 38, 0, 0, 0), (0, 0, 38, 0, 0, 0)]
    assert columns(ok(api.get(f"/planning/runs/live/records/SCREW?{WEEKS}")))[1][0] == 60
    pegs = ok(api.get(f"/planning/runs/{run_id}/pegging/SO-1/1"))["down"]
    assert [(p["depth"], p["supply"]) for p in pegs][:3] == [(0, "planned:TABLE:1"), (1, "on_hand:TOP"), (1, "planned:TOP:1")]
    assert len(ok(api.get(f"/planning/runs/{run_id}/planned-orders"))) == 3
    refused(api.get("/planning/runs/999/exceptions"), 404, "999")
    refused(api.post("/planning/runs", json={"buckets": 400}), 422, "at most 366")
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM planning_runs").fetchone() == (1,)
