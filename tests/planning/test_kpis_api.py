"""The KPI reports and the planner page's data over HTTP on a real PostgreSQL; the supplier score ranks the
suppliers a purchase suggestion names.

Seeded (now = when the test runs; receipts and shipments are stamped now by the database):
  zeta   PO-Z due tomorrow: 100 steel at 1.00 received now (on time); nothing returned → 100 % / 100 % / 100
  acme   PO-A due yesterday: 100 steel at 1.00 received now (late); 50 returned → on time 0 %, quality 50 %, score 0
  SO-1   due yesterday, 10 steel, shipped now: late.  SO-2 due tomorrow, 10 steel, shipped now: on time.
  SO-0   due 12 days ago, 8 steel, never shipped: late; and the actual demand of steel's forecast of 10 for the week
         starting 14 days ago → error 2 of 8: accuracy 75 %, bias +25 %.
  SO-4   due in 1 day, 1000 steel: steel's purchase lead time is 2 days → covered 2 days late: at risk, short.
  SO-5   due in 3 days, 10 widgets (made in 1 day of 2 screws each; screws bought in 5 days, none in stock): the
         planned widget order's screws come late, a shortage that hits the planned order and SO-5 above it.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tests.support.auth import by
from tests.support.http import ok, refused

NOW = datetime.now(UTC)
TODAY = NOW.date()


@pytest.fixture(autouse=True)
def now():
    """Promises and KPIs are judged by the day of the request: read the clock per test, not once per run, which a
    suite run across midnight would otherwise see a day apart."""
    global NOW, TODAY
    NOW = datetime.now(UTC)
    TODAY = NOW.date()


def sales_order(api, so_id: str, due: datetime, item: str, quantity: str) -> None:
    ok(api.post("/sales-orders", json={"so_id": so_id, "customer_id": "globex", "due": due.isoformat(),
                                       "lines": [{"line": "1", "item_id": item, "quantity": quantity, "unit_price": "2"}]}), 201)


def purchase(api, po_id: str, supplier: str, due) -> None:
    ok(api.post("/purchase-orders", json={"po_id": po_id, "supplier_id": supplier, "created_by": "anna", "due": str(due),
                                          "lines": [{"line": "1", "item_id": "steel", "quantity": "100", "unit_cost": "1"}]}), 201)
    ok(by(api, "anna").post(f"/purchase-orders/{po_id}/submit", json={"actor": "anna"}))
    ok(by(api, "bob").post(f"/purchase-orders/{po_id}/approve", json={"approver": "bob"}))
    ok(api.post(f"/purchase-orders/{po_id}/receipts", json={"lines": [{"line": "1", "location_id": "wh", "quantity": "100"}]}), 201)


@pytest.fixture
def api(api):
    seed(api)
    return api


def seed(api) -> None:
    for item, kind in (("steel", "buy"), ("widget", "make"), ("screw", "buy")):
        ok(api.post("/items", json={"item_id": item, "name": item.title(), "kind": kind, "uom": "pcs"}), 201)
    ok(api.post("/items/widget/bom", json={"component_item": "screw", "quantity_per": "2"}), 201)
    for item, days in (("steel", 2), ("widget", 1), ("screw", 5)):
        ok(api.put(f"/items/{item}/planning", json={"lead_time_days": days}))
    ok(api.post("/locations", json={"location_id": "wh", "name": "Main store", "kind": "warehouse"}), 201)
    ok(api.post("/customers", json={"customer_id": "globex", "name": "Globex"}), 201)
    for supplier in ("acme", "zeta"):
        ok(api.post("/suppliers", json={"supplier_id": supplier, "name": supplier.title()}), 201)
    purchase(api, "PO-Z", "zeta", TODAY + timedelta(days=1))
    purchase(api, "PO-A", "acme", TODAY - timedelta(days=1))
    ok(api.post("/purchase-orders/PO-A/returns", json={"item_id": "steel", "location_id": "wh", "quantity": "50",
                                                       "reason": "rusty"}), 201)
    sales_order(api, "SO-0", NOW - timedelta(days=12), "steel", "8")
    for so_id, due in (("SO-1", NOW - timedelta(days=1)), ("SO-2", NOW + timedelta(days=1))):
        sales_order(api, so_id, due, "steel", "10")
        ok(api.post(f"/sales-orders/{so_id}/shipments", json={"lines": [{"line": "1", "location_id": "wh", "quantity": "10"}]}), 201)
    sales_order(api, "SO-4", NOW + timedelta(days=1), "steel", "1000")
    sales_order(api, "SO-5", NOW + timedelta(days=3), "widget", "10")
    ok(api.post("/planning/forecasts", json={"item_id": "steel", "bucket_start": str(TODAY - timedelta(days=14)),
                                             "quantity": "10"}), 201)


def rows(api, name: str, **query) -> list[dict]:
    return ok(api.get(f"/planning/kpis/{name}", params=query))["rows"]


def test_on_time_delivery_against_the_due_instant_and_the_promise_kept_at_entry(api):
    month = NOW.strftime("%Y-%m")
    found = rows(api, "on-time-delivery", start=(NOW - timedelta(days=13)).isoformat(), end=(NOW + timedelta(days=2)).isoformat())
    assert sum(row["lines"] for row in found) == 4  # SO-0, SO-1, SO-2, SO-4 (SO-4 not judged: due tomorrow, not shipped)
    assert sum(row["judged_vs_due"] for row in found) == 3 and sum(row["on_time_vs_due"] for row in found) == 1
    # the promises kept at entry: SO-0 and SO-1 today (ATP: wanted in the past), SO-2 tomorrow, SO-4 in 2 days (bought);
    # SO-1 and SO-2 shipped today are on time against them, SO-0 and SO-4 are not judged until their promised day ends
    promised = {so_id: ok(api.get(f"/sales-orders/{so_id}"))["lines"][0] for so_id in ("SO-0", "SO-1", "SO-2", "SO-4")}
    assert {so_id: (line["promised"], line["promise_source"]) for so_id, line in promised.items()} == {
        "SO-0": (str(TODAY), "atp"), "SO-1": (str(TODAY), "atp"), "SO-2": (str(TODAY + timedelta(days=1)), "atp"),
        "SO-4": (str(TODAY + timedelta(days=2)), "buy")}
    assert sum(row["judged_vs_promise"] for row in found) == 2 and sum(row["on_time_vs_promise"] for row in found) == 2
    if all(row["period"] == month for row in found):  # every due instant in this month: one row
        assert found[0]["on_time_vs_due_pct"] == "33.33"


def test_supplier_scores_and_the_suggestion_names_the_better_supplier_first(api, database_url):
    found = {row["supplier_id"]: row for row in rows(api, "supplier-scores", start=(NOW - timedelta(days=1)).isoformat(),
                                                     end=(NOW + timedelta(hours=1)).isoformat())}
    assert {s: (r["on_time_pct"], r["quality_pct"], r["score"]) for s, r in found.items()} == {
        "acme": ("0.00", "50.00", "0.00"), "zeta": ("100.00", "100.00", "100.00")}
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE items SET safety_stock = 100000 WHERE item_id = 'steel'")
    ok(api.post("/alerts/evaluate-inventory"))
    (alert,) = [a for a in ok(api.get("/alerts?kind=safety_stock")) if a["subject"] == "steel"]
    assert alert["detail"].endswith("from zeta, acme (best score first)"), alert["detail"]


def test_forecast_accuracy_per_item(api):
    (steel,) = rows(api, "forecast-accuracy", start=(NOW - timedelta(days=20)).isoformat())
    assert (steel["item_id"], steel["forecast"], steel["actual"], steel["absolute_error"], steel["accuracy_pct"],
            steel["bias_pct"]) == ("steel", "10", "8", "2", "75.00", "25.00")


def test_every_kpi_downloads_as_csv_and_excel_and_bad_input_is_refused(api):
    for name in ("on-time-delivery", "supplier-scores", "forecast-accuracy"):
        answer = api.get(f"/planning/kpis/{name}?format=csv")
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
        assert next(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))[0] in ("period", "item_id")
        workbook = api.get(f"/planning/kpis/{name}?format=xlsx")
        assert workbook.status_code == 200 and workbook.content[:2] == b"PK"
    refused(api.get("/planning/kpis/on-time-delivery?start=2026-01-01T00:00:00"), 422, "time zone")
    refused(api.get("/planning/kpis/supplier-scores", params={"end": (NOW - timedelta(days=60)).isoformat(),
                                                               "start": NOW.isoformat()}), 422, "before it starts")
    refused(api.get("/planning/kpis/supplier-scores?tz=Mars/Olympus"), 422, "time zone")
    refused(api.get("/planning/kpis/nothing"), 422, "")


def test_the_planner_page_data_for_a_read_only_key(api, api_as):
    viewer = api_as("viewer")
    board = ok(viewer.get("/board/planner/data"))
    at_risk = {r["demand_id"]: (r["due"], r["covered_on"]) for r in board["at_risk"]}
    assert at_risk["SO-4/1"] == (str(TODAY + timedelta(days=1)), str(TODAY + timedelta(days=2)))
    assert set(at_risk) == {"SO-0/1", "SO-4/1"}, at_risk  # SO-0: overdue, nothing shipped yet
    short = {s["item_id"]: s for s in board["shortages"]}
    assert {d["demand_id"]: d["orders_hit"] for d in short["steel"]["late_demands"]}["SO-4/1"] == ["SO-4/1"]
    (screws,) = short["screw"]["late_demands"]
    assert screws["orders_hit"][0].startswith("planned:widget:") and screws["orders_hit"][1:] == ["SO-5/1"]
    assert {o["item_id"] for o in board["to_firm"]} >= {"steel", "screw"}
    kpis = board["kpis"]
    assert (kpis["on_time_vs_due"]["judged"], kpis["on_time_vs_due"]["on_time"]) == (2, 0)  # SO-0, SO-1 (SO-2 not yet due)
    assert [line["so_id"] for line in kpis["late_lines"]] == ["SO-0", "SO-1"]
    assert [s["supplier_id"] for s in kpis["suppliers"]] == ["zeta", "acme"]
    assert [(f["item_id"], f["accuracy_percent"]) for f in kpis["forecasts"]] == [("steel", "75.00")]
    assert api_as().get("/board/planner/data").status_code == 401
    page = api_as().get("/board/planner")
    assert page.status_code == 200 and "Planner" in page.text
    assert api_as().get("/board/planner.js").status_code == 200


def test_an_instant_beyond_the_calendar_in_utc_is_refused(api):
    refused(api.get("/planning/kpis/on-time-delivery", params={"start": "0001-01-01T00:00:00+05:00"}), 422, "years 1 to 9999")
