"""The maintained live plan on a real PostgreSQL: marks left by the changes' own transactions, the planner job
bringing them in by net change, and reads of `live` serving it, always equal to a full regeneration."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import psycopg
from sqlalchemy.orm import Session

from core.ingest.service import IngestService
from inventory.models import Item
from inventory.services import masterdata, sales, stock
from inventory.services.sales import SalesLine
from kernel.db.models import make_engine
from kernel.jobs import Jobs
from mes.services import workorders
from planning.rules.lot_sizing import LotSizing
from planning.services import live, plans
from tests.core.test_ingest_plan import T0
from tests.core.test_ingest_service import batch, prepared
from tests.support.http import ok, refused

D = Decimal


def live_rows(database_url: str, item: str) -> list[tuple]:
    """The maintained plan's rows of the item as the planner committed them (read without bringing it up to date)."""
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            """SELECT gross_requirements, scheduled_receipts, projected_on_hand, net_requirements, planned_receipts,
                      planned_releases
               FROM planning_records JOIN planning_runs USING (run_id) WHERE live AND item_id = %s
               ORDER BY bucket_start""", (item,)).fetchall()


def regenerated(session: Session, item: str) -> list[tuple]:
    """The same rows from a full regeneration of what is stored now."""
    now = datetime.now(UTC)
    plan = plans.live_plan(session, now.date(), live.LIVE_BUCKET, live.LIVE_BUCKETS, now).plan
    return [tuple(bucket[1:]) for bucket in plan.records[item].buckets]


def regenerated_and_changed(database_url: str) -> tuple[datetime, datetime]:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT regenerated_at, changed_at FROM planning_runs WHERE live").fetchone()


def wait_for(condition, timeout_s: float = 60) -> None:
    import time as clock

    deadline = clock.monotonic() + timeout_s
    while not condition():
        assert clock.monotonic() < deadline, "the live plan did not follow within the timeout"
        clock.sleep(0.05)


def test_a_count_committed_by_the_ingest_moves_the_live_plan_of_the_item_and_its_components(database_url, tmp_path):
    """CAP = 0.5 kg RESIN; RESIN is bought in 3 days, 40 kg at line l's side. SO-1 wants 30 caps in 5 days.
    WO-7 makes 20 caps, due in 3 days, released (its snapshot: 0.5 RESIN a cap) and running on m1.

    Before any count: CAP's 20 to come are a scheduled receipt on day 3, and its needs, 10 kg RESIN, today:
    RESIN projected 40 − 10 = 30 from today. The ingest then commits 6 good caps (counter 10 → 16) and
    backflushes 3 kg: the planner (a job as in the core) replans CAP and RESIN from the marks the batch left,
    and the rows follow: CAP 14 to come on day 3, RESIN needs 7 today and holds 37, projected 30 again. At
    every step the maintained rows equal a full regeneration's, and CAP's ATP follows."""
    prepared(database_url, tmp_path)
    engine = make_engine(database_url)
    today = datetime.now(UTC).date()
    with Session(engine) as session:
        masterdata.create(session, Item, "CAP", "item", item_id="CAP", name="Cap", kind="make", uom="pcs")
        masterdata.create(session, Item, "RESIN", "item", item_id="RESIN", name="Resin", kind="buy", uom="kg")
        masterdata.add_bom_line(session, "CAP", "RESIN", D("0.5"))
        plans.set_item_planning(session, "CAP", lead_time_days=1, safety_stock=None, lot_sizing=LotSizing())
        plans.set_item_planning(session, "RESIN", lead_time_days=3, safety_stock=None, lot_sizing=LotSizing())
        masterdata.create_location(session, location_id="l-side", name="Line l", kind="line_side", line="l")
        stock.receive(session, "RESIN", "R1", "l-side", D(40), source_ref="GR-1")
        sales.create_customer(session, "globex", "Globex")
        due = datetime.combine(today + timedelta(days=5), time(12), UTC)
        sales.create_sales_order(session, "SO-1", "globex", due, [SalesLine("1", "CAP", D(30), D(2))])
        workorders.create_work_order(session, "WO-7", "CAP", 20, due=today + timedelta(days=3))
        workorders.act(session, "WO-7", "release")
        workorders.act(session, "WO-7", "start", machine_id="m1", now=T0 - timedelta(minutes=1))

    jobs = Jobs()
    jobs.every("mes-planner", 0.1, live.LivePlanner(database_url, regenerate_every_s=3600))
    jobs.start()
    service = IngestService(database_url)
    try:
        wait_for(lambda: len(live_rows(database_url, "CAP")) == live.LIVE_BUCKETS)
        cap, resin = live_rows(database_url, "CAP"), live_rows(database_url, "RESIN")
        assert cap[3][1] == 20 and resin[0][0] == 10 and resin[0][2] == 30
        with Session(engine) as session:
            assert cap == regenerated(session, "CAP") and resin == regenerated(session, "RESIN")

        regenerated_at, _ = regenerated_and_changed(database_url)
        service.ingest(batch(1, [10, 16]))  # the baseline, then 6 good
        wait_for(lambda: live_rows(database_url, "CAP")[3][1] == 14 and live_rows(database_url, "RESIN")[0][0] == 7)
        cap, resin = live_rows(database_url, "CAP"), live_rows(database_url, "RESIN")
        assert resin[0][2] == 30
        assert regenerated_and_changed(database_url)[0] == regenerated_at, "net change, not a regeneration"
        with psycopg.connect(database_url) as conn:
            assert conn.execute("SELECT count(*) FROM planning_marks").fetchone() == (0,)
        with Session(engine) as session:
            assert cap == regenerated(session, "CAP") and resin == regenerated(session, "RESIN")
            atp = live.atp(session, datetime.now(UTC), "CAP")
            now = datetime.now(UTC)
            assert atp == plans.atp(plans.live_plan(session, now.date(), "day", live.LIVE_BUCKETS, now), "CAP")
    finally:
        service.close()
        jobs.stop()
        engine.dispose()


def test_reads_of_live_serve_the_maintained_plan_brought_up_to_date_without_a_planner(api, database_url):
    """No planner runs: the first read regenerates the live plan, and each later read brings in what the
    requests before it changed (a sales order, a receipt) by net change, equal to a run regenerated then."""
    for item, kind in (("TABLE", "make"), ("SCREW", "buy")):
        ok(api.post("/items", json={"item_id": item, "name": item.title(), "kind": kind, "uom": "pcs"}), 201)
    ok(api.post("/items/TABLE/bom", json={"component_item": "SCREW", "quantity_per": "4"}), 201)
    ok(api.put("/items/TABLE/planning", json={"lead_time_days": 2}))
    ok(api.put("/items/SCREW/planning", json={"lead_time_days": 1}))
    ok(api.post("/locations", json={"location_id": "wh", "name": "Main store", "kind": "warehouse"}), 201)
    ok(api.post("/customers", json={"customer_id": "globex", "name": "Globex"}), 201)
    assert ok(api.get("/planning/runs/live/records/SCREW"))["buckets"][0]["gross_requirements"] == "0"
    regenerated_at, _ = regenerated_and_changed(database_url)

    def same_as_a_regeneration() -> None:
        run = ok(api.post("/planning/runs", json={}), 201)["run_id"]
        for item in ("TABLE", "SCREW"):
            assert ok(api.get(f"/planning/runs/live/records/{item}")) == ok(api.get(f"/planning/runs/{run}/records/{item}"))
        assert ok(api.get("/planning/runs/live/planned-orders")) == ok(api.get(f"/planning/runs/{run}/planned-orders"))
        assert ok(api.get("/planning/runs/live/exceptions")) == ok(api.get(f"/planning/runs/{run}/exceptions"))

    due = datetime.combine(datetime.now(UTC).date() + timedelta(days=6), time(12), UTC)
    ok(api.post("/sales-orders", json={"so_id": "SO-1", "customer_id": "globex", "due": due.isoformat(),
                                       "lines": [{"line": "1", "item_id": "TABLE", "quantity": "5", "unit_price": "9"}]}), 201)
    screw = ok(api.get("/planning/runs/live/records/SCREW"))["buckets"]
    assert screw[4]["gross_requirements"] == "20"  # 5 tables released on day 4 need 20 screws then
    same_as_a_regeneration()
    ok(api.post("/stock/receipts", json={"item_id": "SCREW", "lot": "L1", "to_location": "wh", "quantity": "8",
                                         "source_ref": "GR-1"}), 201)
    screw = ok(api.get("/planning/runs/live/records/SCREW"))["buckets"]
    assert (screw[0]["projected_on_hand"], screw[4]["net_requirements"]) == ("8", "12")
    same_as_a_regeneration()
    assert regenerated_and_changed(database_url)[0] == regenerated_at, "net change, not a regeneration"
    pegs = ok(api.get("/planning/runs/live/pegging/SO-1/1"))
    assert [(step["depth"], step["supply"]) for step in pegs["down"]] == [
        (0, "planned:TABLE:1"), (1, "on_hand:SCREW"), (1, "planned:SCREW:1")]
    assert ok(api.get("/planning/runs/live/pegging/planned:SCREW:1"))["up"][0]["demand"] == "planned:TABLE:1/SCREW"
    assert "neither a demand nor a supply" in refused(api.get("/planning/runs/live/pegging/NOPE"), 404)


def test_the_live_plan_is_regenerated_on_demand_over_http_and_from_the_command_line(api, api_as, database_url):
    from typer.testing import CliRunner

    from app.cli import app

    ok(api.post("/items", json={"item_id": "BOLT", "name": "Bolt", "kind": "buy", "uom": "pcs"}), 201)
    ok(api.put("/items/BOLT/planning", json={"lead_time_days": 1, "safety_stock": "5"}))
    run = ok(api.post("/planning/runs/live/regenerate"))
    assert (run["run_id"], run["bucket"], run["buckets"], run["planned_orders"]) == ("live", "day", 28, 1)
    first, _ = regenerated_and_changed(database_url)
    assert api_as("viewer").post("/planning/runs/live/regenerate").status_code == 403
    result = CliRunner().invoke(app, ["plan", "--regenerate", "--database-url", database_url])
    assert result.exit_code == 0, result.output
    assert "planned:BOLT:1: buy 5 BOLT" in result.output
    assert regenerated_and_changed(database_url)[0] > first


def test_a_refused_plan_waits_for_the_next_change(api, database_url):
    """BOLT needs an order (safety stock 5) and has no lead time: the planner's round logs the refusal instead
    of failing, and does not try again until something changes; a read answers 409 naming BOLT. Once BOLT has
    a lead time, the next round plans it."""
    ok(api.post("/items", json={"item_id": "BOLT", "name": "Bolt", "kind": "buy", "uom": "pcs"}), 201)
    ok(api.put("/items/BOLT/planning", json={"safety_stock": "5"}))
    planner = live.LivePlanner(database_url, regenerate_every_s=3600)
    try:
        planner.round()
        planner.round()
        assert "BOLT" in refused(api.get("/planning/runs/live/planned-orders"), 409)
        ok(api.put("/items/BOLT/planning", json={"safety_stock": "5", "lead_time_days": 2}))
        planner.round()
        with psycopg.connect(database_url) as conn:
            assert conn.execute("SELECT count(*) FROM planning_marks").fetchone() == (0,)
            assert conn.execute("SELECT planned_order_id FROM planning_planned_orders JOIN planning_runs USING (run_id) "
                                "WHERE live").fetchall() == [("planned:BOLT:1",)]
    finally:
        planner.close()
