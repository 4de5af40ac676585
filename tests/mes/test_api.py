"""The HTTP API on a real PostgreSQL: master data, the work-order lifecycle with dispatch, stock."""

from __future__ import annotations

from decimal import Decimal

import psycopg
import pytest

from tests.support.http import ok
from tests.support.auth import by


def seed_bracket(api):
    """A bracket made of a pressed blank (phantom: never stocked) and two screws; the blank is 0.25 kg of steel."""
    for item in (
        {"item_id": "bracket", "name": "Bracket", "kind": "make", "uom": "pcs", "shelf_life_days": 365},
        {"item_id": "blank", "name": "Pressed blank", "kind": "make", "uom": "pcs"},
        {"item_id": "steel", "name": "Steel coil", "kind": "buy", "uom": "kg", "standard_cost": "1.20"},
        {"item_id": "screw", "name": "Screw M6", "kind": "buy", "uom": "pcs"},
    ):
        ok(api.post("/items", json=item), 201)
    ok(api.post("/items/blank/bom", json={"component_item": "steel", "quantity_per": "0.25", "scrap_factor": "0.02"}), 201)
    ok(api.post("/items/bracket/bom", json={"component_item": "blank", "quantity_per": "1", "phantom": True}), 201)
    return ok(api.post("/items/bracket/bom", json={"component_item": "screw", "quantity_per": "2"}), 201)


def test_bom_explodes_through_phantoms_exactly(api):
    bom = seed_bracket(api)
    assert {k: Decimal(v) for k, v in bom["per_unit"].items()} == {"steel": Decimal("0.255"), "screw": Decimal(2)}


def test_a_bom_cycle_is_refused_and_nothing_is_written(api):
    seed_bracket(api)
    response = api.post("/items/steel/bom", json={"component_item": "blank", "quantity_per": "1"})
    assert response.status_code == 409 and "cycle" in response.json()["detail"]
    assert ok(api.get("/items/steel/bom"))["lines"] == []


def test_work_order_lifecycle_with_dispatch_and_a_changeover(api, database_url):
    seed_bracket(api)
    for number in ("WO-1", "WO-2"):
        ok(api.post("/work-orders", json={"work_order_id": number, "item_id": "bracket", "quantity": 500}), 201)
    released = ok(api.post("/work-orders/WO-1/release"))
    assert released["status"] == "released"
    assert {c["component_item"]: Decimal(c["quantity_per_unit"]) for c in released["components"]} == {
        "screw": Decimal(2), "steel": Decimal("0.255")}
    ok(api.post("/work-orders/WO-2/release"))

    assert ok(by(api, "anna").post("/work-orders/WO-1/start", json={"machine_id": "press-01", "actor": "anna"}))["status"] == "running"
    # WO-2 started on the same machine: WO-1 is paused at that instant (a changeover)
    assert ok(api.post("/work-orders/WO-2/start", json={"machine_id": "press-01"}))["status"] == "running"
    assert ok(api.get("/work-orders/WO-1"))["status"] == "paused"
    ok(api.post("/work-orders/WO-2/complete"))
    with psycopg.connect(database_url) as conn:
        windows = conn.execute("SELECT work_order_id, end_ts IS NULL FROM dispatches ORDER BY id").fetchall()
        events = conn.execute("SELECT work_order_id, action, from_status, to_status FROM work_order_events ORDER BY id").fetchall()
    assert windows == [("WO-1", False), ("WO-2", False)]
    assert ("WO-1", "pause", "running", "paused") in events


def test_lifecycle_errors_are_409_or_404_with_a_message_and_change_nothing(api):
    seed_bracket(api)
    ok(api.post("/work-orders", json={"work_order_id": "WO-9", "item_id": "bracket", "quantity": 10}), 201)
    response = api.post("/work-orders/WO-9/start", json={"machine_id": "press-01"})
    assert response.status_code == 409 and "planned" in response.json()["detail"]
    ok(api.post("/work-orders/WO-9/release"))
    response = api.post("/work-orders/WO-9/start")
    assert response.status_code == 409 and "machine_id" in response.json()["detail"]
    response = api.post("/work-orders/WO-9/start", json={"machine_id": "no-such-press"})
    assert response.status_code == 404 and "no-such-press" in response.json()["detail"]
    assert ok(api.get("/work-orders/WO-9"))["status"] == "released"
    assert api.get("/work-orders/WO-404").status_code == 404
    assert api.post("/work-orders", json={"work_order_id": "WO-9", "item_id": "bracket", "quantity": 1}).status_code == 409
    assert api.post("/work-orders", json={"work_order_id": "WO-x", "item_id": "bracket", "quantity": 0}).status_code == 422
    assert api.post("/work-orders", json={"work_order_id": "WO-y", "item_id": "nothing", "quantity": 1}).status_code == 404


def test_receipts_on_hand_and_an_immutable_ledger(api, database_url):
    seed_bracket(api)
    ok(api.post("/locations", json={"location_id": "wh", "name": "Main store", "kind": "warehouse"}), 201)
    ok(api.post("/locations", json={"location_id": "line-1-side", "name": "Line 1", "kind": "line_side", "line": "line-1"}), 201)
    for lot, quantity, expires in (("C-17", "120.5", "2027-03-01"), ("C-18", "80", "2027-01-15")):
        ok(api.post("/stock/receipts", json={"item_id": "steel", "lot": lot, "to_location": "line-1-side", "quantity": quantity,
                                             "expires": expires, "unit_cost": "1.18", "source_ref": f"GR-{lot}"}), 201)
    on_hand = ok(api.get("/stock/on-hand", params={"item_id": "steel"}))
    assert [(row["lot"], Decimal(row["quantity"])) for row in on_hand] == [("C-18", Decimal(80)), ("C-17", Decimal("120.5"))]
    assert len(ok(api.get("/stock/moves", params={"source_ref": "GR-C-17"}))) == 1
    conflicting = api.post("/stock/receipts", json={"item_id": "steel", "lot": "C-17", "to_location": "wh", "quantity": "1",
                                                    "expires": "2030-01-01", "source_ref": "GR-x"})
    assert conflicting.status_code == 409 and "expires" in conflicting.json()["detail"]
    with psycopg.connect(database_url) as conn, pytest.raises(psycopg.errors.RaiseException, match="immutable"):
        conn.execute("UPDATE stock_moves SET quantity = 1")


def test_openapi_is_served(api):
    paths = ok(api.get("/openapi.json"))["paths"]
    assert {"/items", "/work-orders/{work_order_id}/{action}", "/stock/on-hand"} <= set(paths)


def test_work_centres_machines_and_ideal_cycle_times_per_item(api):
    seed_bracket(api)
    ok(api.post("/work-centres", json={"work_centre_id": "presses", "name": "Press shop", "hourly_rate": "85.50"}), 201)
    machine = ok(api.patch("/machines/press-01", json={"work_centre_id": "presses"}))
    assert machine["work_centre_id"] == "presses" and machine["line"] == "line-1"
    assert api.patch("/machines/press-01", json={"work_centre_id": "nowhere"}).status_code == 404
    ok(api.put("/machines/press-01/items/bracket", json={"ideal_cycle_s": "0.25"}))
    ok(api.put("/machines/press-01/items/bracket", json={"ideal_cycle_s": "0.3"}))  # a second PUT replaces
    assert [(r["item_id"], Decimal(r["ideal_cycle_s"])) for r in ok(api.get("/machines/press-01/items"))] == [("bracket", Decimal("0.3"))]
    assert api.put("/machines/press-01/items/bracket", json={"ideal_cycle_s": "0"}).status_code == 422


def test_an_item_can_be_renamed_but_not_re_kinded(api):
    seed_bracket(api)
    assert ok(api.patch("/items/steel", json={"name": "Steel coil DC04", "standard_cost": "1.25"}))["name"] == "Steel coil DC04"
    assert api.patch("/items/steel", json={"kind": "make"}).status_code == 422
    assert api.patch("/items/nothing", json={"name": "x"}).status_code == 404


def test_scrap_counted_by_the_machine_is_classified_by_reason_and_never_changed(api, database_url):
    seed_bracket(api)
    ok(api.post("/work-orders", json={"work_order_id": "WO-S", "item_id": "bracket", "quantity": 100}), 201)
    ok(api.post("/work-orders/WO-S/release"))
    machine = ok(api.get("/machines"))[0]["machine_id"]
    with psycopg.connect(database_url) as conn:  # what the ingest would have attributed: 7 scrapped units
        conn.execute("""INSERT INTO production_attributions (edge_id, epoch, seq, machine_id, work_order_id, good, scrap,
                                                             energy_wh, first_ts, last_ts)
                        VALUES ('e', 1, 1, %s, 'WO-S', 50, 7, 0, now(), now())""", (machine,))
    assert ok(api.get("/work-orders/WO-S/scrap")) == {"unclassified": 7}
    ok(api.post("/scrap-reasons", json={"code": "burr", "description": "Burr on the edge"}), 201)
    ok(api.post("/scrap-reasons", json={"code": "crack", "description": "Cracked"}), 201)
    assert ok(by(api, "ana").post("/work-orders/WO-S/scrap", json={"reason_code": "burr", "quantity": 5, "actor": "ana"})) == {
        "burr": 5, "unclassified": 2}
    ok(api.post("/work-orders/WO-S/scrap", json={"reason_code": "burr", "quantity": -1, "comment": "was a crack"}))
    assert ok(api.post("/work-orders/WO-S/scrap", json={"reason_code": "crack", "quantity": 1})) == {
        "burr": 4, "crack": 1, "unclassified": 2}
    refused = api.post("/work-orders/WO-S/scrap", json={"reason_code": "crack", "quantity": 3})
    assert refused.status_code == 409 and "only 2 scrapped units are unclassified" in refused.json()["detail"]
    assert api.post("/work-orders/WO-S/scrap", json={"reason_code": "dust", "quantity": 1}).status_code == 404
    assert api.post("/scrap-reasons", json={"code": "burr", "description": "again"}).status_code == 409
    assert [r["code"] for r in ok(api.get("/scrap-reasons"))] == ["burr", "crack"]
    assert ok(api.get("/work-orders/WO-S/scrap")) == {"burr": 4, "crack": 1, "unclassified": 2}
