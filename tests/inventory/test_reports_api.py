"""Inventory reports through the HTTP API on a real PostgreSQL, against a small history worked out by hand.

The history (UTC; every move posted in this order, so valued in this order):
    Jan  2  receipt   bracket 20 @ 12 into wh, no lot                  value +240
    Jan  5  goods receipt steel 100 @ 2.00 into wh, lot C-1 (PO-1, acme) value +200
    Jan 10  transfer  steel 40 of C-1 wh → line-1-side                  legs ±80 (average then 200/100 = 2)
    Jan 15  backflush steel 30 of C-1 out of line-1-side                value −60
    Feb  5  goods receipt steel 100 @ 2.50 into wh, lot C-2 (PO-2, beta) value +250
    Feb  8  shipment  bracket 10 out of wh for SO-1 (1 line: 10 @ 30)   value −120
    Feb 20  shipment  bracket 4 out of wh for SO-2 (lines 1: 2 @ 30, 2: 5 @ 25)  value −48
From Feb 5 on steel holds 170 worth 390: wh C-1 60, line-1-side C-1 10, wh C-2 100.
"""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import text
from sqlalchemy.orm import Session

from kernel.db.migrations import upgrade
from inventory.rules.operations import PlannedMove
from app.api import create_app
from kernel.embedded.postgres import create_database, drop_database
from inventory.models import Customer, Item, Location, PurchaseOrder, PurchaseOrderLine, SalesOrder, SalesOrderLine, Supplier
from kernel.db.models import make_engine
from inventory.services import stock
from tests.support.http import ok
from tests.support.auth import as_admin

D = Decimal


def at(month: int, day: int) -> datetime:
    return datetime(2026, month, day, tzinfo=UTC)


def seed(database_url: str) -> None:
    engine = make_engine(database_url)
    with Session(engine) as session:
        session.add_all([
            Item(item_id="steel", name="Steel coil", kind="buy", uom="kg"),
            Item(item_id="bracket", name="Bracket", kind="make", uom="pcs"),
            Location(location_id="wh", name="Main store", kind="warehouse"),
            Location(location_id="line-1-side", name="Line 1", kind="line_side", line="line-1"),
            Supplier(supplier_id="acme", name="Acme Steel"), Supplier(supplier_id="beta", name="Beta Metals"),
            Customer(customer_id="c1", name="Customer One"),
        ])
        session.flush()
        for po, supplier, cost in (("PO-1", "acme", D("2.00")), ("PO-2", "beta", D("2.50"))):
            session.add(PurchaseOrder(po_id=po, supplier_id=supplier, status="received", created_by="anna"))
            session.flush()
            session.add(PurchaseOrderLine(po_id=po, line="1", item_id="steel", quantity=D(100), unit_cost=cost, received=D(100)))
        for so, lines in (("SO-1", [("1", D(10), D(30))]), ("SO-2", [("1", D(2), D(30)), ("2", D(5), D(25))])):
            session.add(SalesOrder(so_id=so, customer_id="c1", due=at(3, 1)))
            session.flush()
            session.add_all(SalesOrderLine(so_id=so, line=line, item_id="bracket", quantity=quantity, unit_price=price)
                            for line, quantity, price in lines)
        session.flush()
        history = [
            (at(1, 2), "manual:1", PlannedMove("bracket", None, None, "wh", D(20), "receipt", D(12))),
            (at(1, 5), "po:PO-1/receipt:1", PlannedMove("steel", "C-1", None, "wh", D(100), "goods receipt", D("2.00"))),
            (at(1, 10), "transfer:T-1", PlannedMove("steel", "C-1", "wh", "line-1-side", D(40), "transfer")),
            (at(1, 15), "wo:WO-1", PlannedMove("steel", "C-1", "line-1-side", None, D(30), "backflush")),
            (at(2, 5), "po:PO-2/receipt:1", PlannedMove("steel", "C-2", None, "wh", D(100), "goods receipt", D("2.50"))),
            (at(2, 8), "so:SO-1/shipment:1", PlannedMove("bracket", None, "wh", None, D(10), "shipment")),
            (at(2, 20), "so:SO-2/shipment:1", PlannedMove("bracket", None, "wh", None, D(4), "shipment")),
        ]
        for ts, source_ref, move in history:
            stock.post_moves(session, [move], source_ref=source_ref, ts=ts)
        session.execute(text("UPDATE lots SET received_at = :ts WHERE lot = :lot"), [
            {"ts": at(1, 5), "lot": "C-1"}, {"ts": at(2, 5), "lot": "C-2"}])
        session.commit()
    engine.dispose()


@pytest.fixture(scope="module")
def seeded(postgres_server_url):
    """One seeded database for the read-only tests (the first report values the queued moves)."""
    name = f"t_reports_api_{uuid.uuid4().hex[:8]}"
    url = create_database(postgres_server_url, name)
    upgrade(url)
    seed(url)
    with TestClient(create_app(url)) as client:
        as_admin(client, url)
        yield client
    drop_database(postgres_server_url, name)


def report(api, name, **params):
    body = ok(api.get(f"/reports/{name}", params=params))
    assert body["report"] == name
    return [{column: _exact(value) for column, value in row.items()} for row in body["rows"]]


def _exact(value):
    """JSON money and quantities arrive as strings: compare them as Decimals (2.5 == 2.500000)."""
    if isinstance(value, str):
        try:
            return D(value)
        except ArithmeticError:
            return value
    return value


def refused(api, name, status=422, **params) -> str:
    response = api.get(f"/reports/{name}", params=params)
    assert response.status_code == status, response.text
    return str(response.json()["detail"])


JANUARY = {"start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z"}


def test_turnover_per_item(seeded):
    # steel: 200 from Jan 5 to Jan 15 (10 days), then 140 for 17 days: 4380 value-days / 31 = 141.290323;
    # issued 60: turnover 60 × 31 / 4380 = 0.4247. The transfer's legs cancel at item level.
    # bracket: 240 for 30 of the 31 days: 7200 / 31 = 232.258065; nothing issued.
    assert report(seeded, "turnover", **JANUARY) == [
        {"item_id": "bracket", "opening_value": 0, "closing_value": 240, "average_value": D("232.258065"),
         "issued_value": 0, "turnover": 0},
        {"item_id": "steel", "opening_value": 0, "closing_value": 140, "average_value": D("141.290323"),
         "issued_value": 60, "turnover": D("0.4247")},
    ]


def test_turnover_per_location_values_the_transfer_at_the_average_then(seeded):
    # line-1-side: +80 (40 × 2.00) on Jan 10, −60 on Jan 15: 80 × 5 + 20 × 17 = 740 value-days → 23.870968;
    # turnover 60 × 31 / 740 = 2.5135. wh: 240 × 3 + 440 × 5 + 360 × 22 = 10840 → 349.677419, nothing issued.
    assert report(seeded, "turnover", by="location_id", **JANUARY) == [
        {"location_id": "line-1-side", "opening_value": 0, "closing_value": 20, "average_value": D("23.870968"),
         "issued_value": 60, "turnover": D("2.5135")},
        {"location_id": "wh", "opening_value": 0, "closing_value": 360, "average_value": D("349.677419"),
         "issued_value": 0, "turnover": 0},
    ]
    plant = report(seeded, "turnover", by="plant", **JANUARY)
    assert [(row["closing_value"], row["issued_value"]) for row in plant] == [(380, 60)]


def test_days_of_supply(seeded):
    # window [Jan 11, Feb 10): steel issued 30 (1 a day) with 170 on hand; bracket 10 (1/3 a day) with 10 left
    assert report(seeded, "days-of-supply", as_of="2026-02-10T00:00:00Z", days=30) == [
        {"item_id": "bracket", "on_hand_quantity": 10, "issued_quantity": 10, "average_daily_issue": D("0.333333"),
         "days_of_supply": 30},
        {"item_id": "steel", "on_hand_quantity": 170, "issued_quantity": 30, "average_daily_issue": 1,
         "days_of_supply": 170},
    ]


def test_value_by_location_spreads_the_items_value_exactly(seeded):
    # steel 390 / 170: line-1-side C-1 10 → 22.941176, wh C-1 60 → 137.647059, wh C-2 (last) takes the rest
    # 229.411765; bracket 10 left worth 120 (the Feb 20 shipment is after as_of).
    assert report(seeded, "value-by-location", as_of="2026-02-10T00:00:00Z") == [
        {"location_id": "line-1-side", "item_count": 1, "value": D("22.941176")},
        {"location_id": "wh", "item_count": 2, "value": D("487.058824")},
    ]


def test_aging_buckets(seeded):
    # on Mar 10: C-1 (Jan 5) is 64 days old, C-2 (Feb 5) 33; the bracket has no lot, so no known receipt
    rows = report(seeded, "aging", as_of="2026-03-10T00:00:00Z")
    assert [(row["item_id"], row["bucket"], row["quantity"], row["value"]) for row in rows if row["quantity"]] == [
        ("bracket", "unknown", 6, 72), ("steel", "31-60", 100, D("229.411765")), ("steel", "61-90", 70, D("160.588235"))]
    assert len(rows) == 11  # 5 buckets per item, and the bracket's "unknown"
    coarse = report(seeded, "aging", as_of="2026-03-10T00:00:00Z", bounds="40")
    assert [(row["item_id"], row["bucket"], row["quantity"]) for row in coarse if row["item_id"] == "steel"] == [
        ("steel", "0-40", 100), ("steel", ">40", 70)]


def test_purchase_price_trend_and_by_supplier(seeded):
    period = {"start": "2026-01-01T00:00:00Z", "end": "2026-03-01T00:00:00Z"}
    assert report(seeded, "purchase-price-trend", **period) == [
        {"item_id": "steel", "month": "2026-01", "quantity": 100, "weighted_average_cost": 2, "min_unit_cost": 2,
         "max_unit_cost": 2, "previous_month": None, "change": None, "change_pct": None},
        {"item_id": "steel", "month": "2026-02", "quantity": 100, "weighted_average_cost": D("2.5"), "min_unit_cost": D("2.5"),
         "max_unit_cost": D("2.5"), "previous_month": "2026-01", "change": D("0.5"), "change_pct": 25},
    ]
    only_beta = report(seeded, "purchase-price-trend", supplier_id="beta", **period)
    assert [(row["month"], row["previous_month"]) for row in only_beta] == [("2026-02", None)]
    assert "supplier 'nobody' does not exist" in refused(seeded, "purchase-price-trend", 404, supplier_id="nobody", **period)


def test_margins_per_shipped_order(seeded):
    # SO-1: 10 × 30 = 300 for 10 × 12 = 120. SO-2 ships 4 against its lines 1 (2 @ 30) and 2 (5 @ 25), in line
    # order: 2 × 30 + 2 × 25 = 110 for 48; margin 62 = 56.3636 % of 110.
    february = {"start": "2026-02-01T00:00:00Z", "end": "2026-03-01T00:00:00Z"}
    assert report(seeded, "margins", **february) == [
        {"sales_order_id": "SO-1", "revenue": 300, "cost": 120, "margin": 180, "margin_pct": 60},
        {"sales_order_id": "SO-2", "revenue": 110, "cost": 48, "margin": 62, "margin_pct": D("56.3636")},
    ]
    assert report(seeded, "margins", **JANUARY) == []


def test_csv_download_is_exact_and_named(seeded):
    response = seeded.get("/reports/value-by-location", params={"as_of": "2026-02-10T00:00:00Z", "format": "csv"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == 'attachment; filename="value-by-location.csv"'
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows == [["location_id", "item_count", "value"], ["line-1-side", "1", "22.941176"], ["wh", "2", "487.058824"]]


def test_excel_downloads(seeded):
    response = seeded.get("/reports/turnover", params={**JANUARY, "format": "xlsx"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert response.headers["content-disposition"] == 'attachment; filename="turnover.xlsx"'
    sheet = load_workbook(io.BytesIO(response.content))["turnover"]
    assert [cell.value for cell in sheet[1]][:2] == ["item_id", "opening_value"] and sheet["A3"].value == "steel"

    response = seeded.get("/reports/workbook.xlsx", params={**JANUARY, "as_of": "2026-02-10T00:00:00Z"})
    assert response.status_code == 200
    assert response.headers["content-disposition"] == 'attachment; filename="inventory-reports.xlsx"'
    book = load_workbook(io.BytesIO(response.content))
    assert book.sheetnames == ["turnover", "days-of-supply", "aging", "value-by-location", "purchase-price-trend", "margins"]
    assert [row[0].value for row in book["value-by-location"].iter_rows(min_row=2)] == ["line-1-side", "wh"]


def test_bad_parameters_are_422_with_a_message(seeded):
    assert "before it starts" in refused(seeded, "turnover", start="2026-02-01T00:00:00Z", end="2026-01-01T00:00:00Z")
    assert "time zone" in refused(seeded, "margins", start="2026-01-01T00:00:00", end="2026-02-01T00:00:00Z")
    assert "grouped by" in refused(seeded, "turnover", by="warehouse", **JANUARY)
    assert "rise" in refused(seeded, "aging", bounds="60,30")
    assert "whole numbers" in refused(seeded, "aging", bounds="thirty")
    assert "time zone name" in refused(seeded, "purchase-price-trend", tz="Mars/Olympus")
    assert refused(seeded, "days-of-supply", days=0)
    assert refused(seeded, "turnover", format="pdf")
    assert seeded.get("/reports/profit").status_code == 422
    assert seeded.get("/reports/workbook.xlsx", params={"start": "2026-02-01T00:00:00Z",
                                                        "end": "2026-01-01T00:00:00Z"}).status_code == 422


def test_a_failed_report_writes_nothing_and_a_good_one_values_what_was_queued(database_url):
    upgrade(database_url)
    seed(database_url)
    with TestClient(create_app(database_url)) as api, psycopg.connect(database_url) as conn:
        as_admin(api, database_url)
        def counts():
            return conn.execute("SELECT (SELECT count(*) FROM moves_to_value), (SELECT count(*) FROM stock_values)").fetchone()
        assert counts() == (6, 0)  # the transfer is not valued
        # valued first, then refused by the report rules: the valuation is rolled back with the request
        refused(api, "turnover", start="2026-02-01T00:00:00Z", end="2026-01-01T00:00:00Z")
        assert counts() == (6, 0)
        ok(api.get("/reports/value-by-location"))
        assert counts() == (0, 6)
        assert conn.execute("SELECT quantity, value FROM item_valuations WHERE item_id = 'steel'").fetchone() == (170, 390)


def test_stock_of_today_is_reported_by_default(seeded):
    # no as_of: now, after every move of the history
    assert {row["location_id"]: row["value"] for row in report(seeded, "value-by-location")} == {
        "line-1-side": D("22.941176"), "wh": D("367.058824") + 72}
