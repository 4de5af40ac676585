"""Inventory alerts as records on a real PostgreSQL: raised while their condition holds, cleared after,
acknowledged with who and when, never re-opened."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import psycopg

from tests.support.http import ok
from tests.support.auth import by


def open_alerts(api) -> dict[tuple[str, str], dict]:
    return {(a["kind"], a["subject"]): a for a in ok(api.get("/alerts", params={"status": "open"}))}


def test_inventory_alerts_are_raised_while_their_condition_holds_and_cleared_after(api, database_url):
    ok(api.post("/items", json={"item_id": "flour", "name": "Flour", "kind": "buy", "uom": "kg"}), 201)
    ok(api.post("/locations", json={"location_id": "wh", "name": "Warehouse", "kind": "warehouse"}), 201)
    soon = (date.today() + timedelta(days=5)).isoformat()
    ok(api.post("/stock/receipts", json={"item_id": "flour", "lot": "F1", "to_location": "wh", "quantity": "40",
                                         "expires": soon, "unit_cost": "1.00", "source_ref": "GR-1"}), 201)
    with psycopg.connect(database_url) as conn:  # settings the inventory issue's API sets; an overdue sales order
        conn.execute("UPDATE items SET safety_stock = 100, reorder_quantity = 50, order_multiple = 25 WHERE item_id = 'flour'")
        conn.execute("INSERT INTO customers VALUES ('acme', 'ACME', NULL)")
        conn.execute("INSERT INTO sales_orders (so_id, customer_id, due) VALUES ('SO-1', 'acme', %s)",
                     (datetime.now(UTC) - timedelta(hours=72),))
        conn.execute("INSERT INTO sales_order_lines VALUES ('SO-1', '1', 'flour', 10, 2, 0)")

    raised = ok(api.post("/alerts/evaluate-inventory"))
    assert {(t["event"], t["alert"]["kind"], t["alert"]["subject"]) for t in raised} == {
        ("raised", "safety_stock", "flour"), ("raised", "lot_expiring", "flour/F1@wh"), ("raised", "overdue_sales_order", "SO-1")}
    safety = open_alerts(api)[("safety_stock", "flour")]
    assert "suggest buying 125" in safety["detail"]  # 100 + 50 − 40 = 110, in 25s → 125
    assert ok(api.post("/alerts/evaluate-inventory")) == [], "a repeated round changes nothing"

    acknowledged = ok(by(api, "ana").post(f"/alerts/{safety['alert_id']}/acknowledge", json={"who": "ana", "note": "PO on its way"}))
    assert acknowledged["status"] == "acknowledged" and acknowledged["acknowledged_by"] == "ana"
    again = by(api, "bo").post(f"/alerts/{safety['alert_id']}/acknowledge", json={"who": "bo"})
    assert again.status_code == 409 and "already acknowledged by ana" in again.json()["detail"]
    assert by(api, "ana").post("/alerts/99999/acknowledge", json={"who": "ana"}).status_code == 404

    ok(api.post("/stock/receipts", json={"item_id": "flour", "lot": "F2", "to_location": "wh", "quantity": "200",
                                         "unit_cost": "1.10", "source_ref": "GR-2"}), 201)
    cleared = ok(api.post("/alerts/evaluate-inventory"))
    assert [(t["event"], t["alert"]["kind"]) for t in cleared] == [("cleared", "safety_stock")]
    assert [e["event"] for e in ok(api.get(f"/alerts/{safety['alert_id']}/events"))] == ["raised", "acknowledged", "cleared"]
    cleared_twice = by(api, "ana").post(f"/alerts/{safety['alert_id']}/acknowledge", json={"who": "ana"})
    assert cleared_twice.status_code == 409 and "cleared" in cleared_twice.json()["detail"]

    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE items SET safety_stock = 1000 WHERE item_id = 'flour'")
    (again_raised,) = ok(api.post("/alerts/evaluate-inventory"))
    assert again_raised["event"] == "raised" and again_raised["alert"]["alert_id"] != safety["alert_id"], \
        "a cleared alert never re-opens: a new occurrence is a new alert"
    assert ok(api.get(f"/alerts/{safety['alert_id']}/events"))[-1]["event"] == "cleared"
