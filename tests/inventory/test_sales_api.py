"""Sales through the HTTP API on a real PostgreSQL: customers, sales orders, shipments with lot picking, returns.

Stock at 'wh' (negative stock allowed), received in this order:
    B-1  10 brackets, expires 2027-03-01
    B-2   5 brackets, expires 2027-01-15
    B-3   8 brackets, never expires
    B-4   4 brackets, expires 2027-03-01 (same day as B-1, received later)
FEFO then FIFO gives the pick order B-2, B-1, B-4, B-3. 'wh-b' blocks negative stock.
"""

from __future__ import annotations

from decimal import Decimal

import psycopg
import pytest

from tests.support.http import ok, refused
from tests.support.auth import by

BRACKET_LOTS = (("B-1", "10", "2027-03-01"), ("B-2", "5", "2027-01-15"), ("B-3", "8", None), ("B-4", "4", "2027-03-01"))


@pytest.fixture
def api(api):
    seed(api)
    return api


def seed(api) -> None:
    for item in ({"item_id": "bracket", "name": "Bracket", "kind": "make", "uom": "pcs"},
                 {"item_id": "screw", "name": "Screw M6", "kind": "buy", "uom": "pcs"}):
        ok(api.post("/items", json=item), 201)
    ok(api.post("/locations", json={"location_id": "wh", "name": "Main store", "kind": "warehouse"}), 201)
    ok(api.post("/locations", json={"location_id": "wh-b", "name": "Blocked store", "kind": "warehouse",
                                    "negative_stock": "block"}), 201)
    for lot, quantity, expires in BRACKET_LOTS:
        ok(api.post("/stock/receipts", json={"item_id": "bracket", "lot": lot, "to_location": "wh", "quantity": quantity,
                                             "expires": expires, "source_ref": f"prod-{lot}"}), 201)
    ok(api.post("/customers", json={"customer_id": "globex", "name": "Globex", "email": "buy@globex.example"}), 201)
    ok(api.post("/customers", json={"customer_id": "initech", "name": "Initech"}), 201)


def sales_order(api, so_id="SO-1", lines=None, who="sam", **fields):
    body = {"so_id": so_id, "customer_id": "globex", "due": "2026-06-01T12:00:00+02:00",
            "lines": lines if lines is not None else [
                {"line": "1", "item_id": "bracket", "quantity": "30", "unit_price": "12.5"},
                {"line": "2", "item_id": "screw", "quantity": "100", "unit_price": "0.07"}], **fields}
    return by(api, who).post("/sales-orders", json=body)


def ship(api, so_id="SO-1", *lines: tuple):
    body = {"lines": [dict(zip(("line", "location_id", "quantity", "lot"), line, strict=False)) for line in lines]}
    return api.post(f"/sales-orders/{so_id}/shipments", json=body)


def moved(step: dict) -> list[tuple]:
    return [(m["item_id"], m["lot"], m["from_location"], m["to_location"], Decimal(m["quantity"]), m["reason"])
            for m in step["moves"]]


def on_hand(api, item="bracket", location="wh") -> dict[str | None, Decimal]:
    return {row["lot"]: Decimal(row["quantity"])
            for row in ok(api.get("/stock/on-hand", params={"item_id": item, "location_id": location}))}


def shipped(so: dict) -> dict[str, tuple[Decimal, Decimal]]:
    return {line["line"]: (Decimal(line["shipped"]), Decimal(line["outstanding"])) for line in so["lines"]}


def events(api, so_id="SO-1") -> list[tuple]:
    return [(e["action"], e["from_status"], e["to_status"]) for e in ok(api.get(f"/sales-orders/{so_id}/events"))]


def snapshot(database_url) -> tuple:
    """Everything a sales step writes."""
    with psycopg.connect(database_url) as conn:
        return tuple(conn.execute(query).fetchall() for query in (
            "SELECT * FROM customers ORDER BY customer_id",
            "SELECT * FROM sales_orders ORDER BY so_id",
            "SELECT * FROM sales_order_lines ORDER BY so_id, line",
            "SELECT id FROM stock_moves ORDER BY id",
            "SELECT id FROM document_events ORDER BY id",
            "SELECT item_id, lot FROM lots ORDER BY item_id, lot"))


def receive_screws_without_a_lot(api, location: str, quantity: str) -> None:
    """Untracked stock (lot None), as a purchase receipt without a lot brings it: a free order needs no approval."""
    ok(api.post("/suppliers", json={"supplier_id": "bolt", "name": "Bolt & Co"}), 201)
    ok(by(api, "anna").post("/purchase-orders", json={"po_id": "PO-1", "supplier_id": "bolt", "created_by": "anna", "lines": [
        {"line": "1", "item_id": "screw", "quantity": quantity, "unit_cost": "0"}]}), 201)
    ok(api.post("/purchase-orders/PO-1/submit"))
    ok(api.post("/purchase-orders/PO-1/receipts", json={"lines": [{"line": "1", "location_id": location, "quantity": quantity}]}),
       201)


# --- customers and orders ----------------------------------------------------------------------

def test_customers_are_created_listed_and_fetched_once(api):
    assert [c["customer_id"] for c in ok(api.get("/customers"))] == ["globex", "initech"]
    assert ok(api.get("/customers/initech")) == {"customer_id": "initech", "name": "Initech", "email": None}
    refused(api.post("/customers", json={"customer_id": "globex", "name": "Other"}), 409, "customer 'globex' already exists")
    refused(api.get("/customers/nope"), 404, "customer 'nope' does not exist")
    for malformed in ({"customer_id": "x"}, {"customer_id": "", "name": "X"}, {"customer_id": "x", "name": "X", "email": "@"}):
        refused(api.post("/customers", json=malformed), 422)


def test_an_order_is_created_with_its_exact_value_and_listed_by_due_time(api, database_url):
    created = ok(sales_order(api, actor="sam"), 201)
    # 30 × 12.5 + 100 × 0.07 = 375 + 7
    assert (created["status"], Decimal(created["value"])) == ("open", Decimal("382"))
    assert shipped(created) == {"1": (0, 30), "2": (0, 100)}
    ok(sales_order(api, "SO-2", customer_id="initech", due="2026-05-01T08:00:00Z"), 201)
    assert [so["so_id"] for so in ok(api.get("/sales-orders"))] == ["SO-2", "SO-1"]
    assert [so["so_id"] for so in ok(api.get("/sales-orders", params={"customer_id": "globex"}))] == ["SO-1"]
    assert [so["so_id"] for so in ok(api.get("/sales-orders", params={"status": "open"}))] == ["SO-2", "SO-1"]
    assert ok(api.get("/sales-orders", params={"status": "shipped"})) == []
    # entering it answered a promise per line (the planning API's tests check its dates); a read does not
    assert [line["promise"]["demand_id"] for line in created["lines"]] == ["SO-1/1", "SO-1/2"]
    assert ok(api.get("/sales-orders/SO-1")) == {**created, "lines": [{**line, "promise": None} for line in created["lines"]]}
    assert [(e["action"], e["to_status"], e["actor"], e["note"]) for e in ok(api.get("/sales-orders/SO-1/events"))] == [
        ("create", "open", "sam", "value 382.00")]

    before = snapshot(database_url)
    refused(sales_order(api), 409, "sales order 'SO-1' already exists")
    refused(sales_order(api, "SO-3", customer_id="nope"), 404, "customer 'nope' does not exist")
    refused(sales_order(api, "SO-3", lines=[{"line": "1", "item_id": "nope", "quantity": "1", "unit_price": "1"}]), 404,
            "item 'nope' does not exist")
    line = {"line": "1", "item_id": "bracket", "quantity": "1", "unit_price": "1"}
    refused(sales_order(api, "SO-3", due="2026-06-01T12:00:00"), 422)  # a due time without its time zone
    for malformed in ([], [line, line], [line | {"quantity": "-1"}], [line | {"unit_price": "-0.01"}], [line | {"lot": "B-1"}]):
        refused(sales_order(api, "SO-3", lines=malformed), 422)
    refused(api.get("/sales-orders", params={"status": "lost"}), 422)
    assert snapshot(database_url) == before


# --- shipments ---------------------------------------------------------------------------------

def test_a_shipment_picks_lots_first_expiry_first_out_then_first_in_first_out(api):
    ok(sales_order(api), 201)
    first = ok(ship(api, "SO-1", ("1", "wh", "18")), 201)
    # B-2 expires first (5), then B-1 and B-4 expire the same day: B-1 was received first (10), B-4 gives the last 3
    assert first["source_ref"] == "so:SO-1/shipment:1"
    assert moved(first) == [("bracket", "B-2", "wh", None, 5, "shipment"), ("bracket", "B-1", "wh", None, 10, "shipment"),
                            ("bracket", "B-4", "wh", None, 3, "shipment")]
    assert {m["source_ref"] for m in first["moves"]} == {"so:SO-1/shipment:1"} and {m["unit_cost"] for m in first["moves"]} == {None}
    assert first["sales_order"]["status"] == "partially_shipped" and shipped(first["sales_order"])["1"] == (18, 12)
    assert on_hand(api) == {"B-3": 8, "B-4": 1}

    # a named lot is taken before the picks of the same shipment: B-3 6, then FEFO: B-4 1, B-3 the other 2
    second = ok(ship(api, "SO-1", ("1", "wh", "3"), ("1", "wh", "6", "B-3")), 201)
    assert second["source_ref"] == "so:SO-1/shipment:2"
    assert [(lot, quantity) for _, lot, _, _, quantity, _ in moved(second)] == [("B-3", 6), ("B-4", 1), ("B-3", 2)]
    assert shipped(second["sales_order"])["1"] == (27, 3)
    assert on_hand(api) == {}

    assert ok(by(api, "sam").post("/sales-orders/SO-1/close", json={"actor": "sam", "reason": "rest cancelled by phone"}))["status"] == "closed"
    assert events(api) == [("create", None, "open"), ("ship_partly", "open", "partially_shipped"),
                           ("ship_partly", "partially_shipped", "partially_shipped"), ("close", "partially_shipped", "closed")]
    assert ok(api.get("/sales-orders/SO-1/events"))[1]["note"] == "so:SO-1/shipment:1: 10 bracket lot B-1, 5 bracket lot B-2, " \
                                                                  "3 bracket lot B-4"


def test_block_refuses_a_shipment_beyond_stock_and_allow_ships_the_shortfall_from_the_unknown_lot(api, database_url):
    ok(api.post("/stock/receipts", json={"item_id": "bracket", "lot": "B-9", "to_location": "wh-b", "quantity": "5",
                                         "source_ref": "prod-B-9"}), 201)
    ok(sales_order(api, lines=[{"line": "1", "item_id": "bracket", "quantity": "40", "unit_price": "12.5"}]), 201)
    before = snapshot(database_url)
    refused(ship(api, "SO-1", ("1", "wh-b", "8")), 409, "cannot ship: 8 bracket asked at wh-b, 5 on hand", "'block'")
    refused(ship(api, "SO-1", ("1", "wh-b", "6", "B-9")), 409, "6 bracket lot B-9 asked at wh-b, 5 on hand")
    # the named lot goes first and leaves 4 to pick
    refused(ship(api, "SO-1", ("1", "wh-b", "5"), ("1", "wh-b", "1", "B-9")), 409, "cannot ship: 5 bracket asked at wh-b, 4 on hand")
    assert snapshot(database_url) == before

    # wh holds 27 in four lots and allows negative stock: 30 ships 27 from the lots and 3 from the unknown lot
    allowed = ok(ship(api, "SO-1", ("1", "wh", "30")), 201)
    assert [(lot, quantity) for _, lot, _, _, quantity, _ in moved(allowed)] == [("B-2", 5), ("B-1", 10), ("B-4", 4), ("B-3", 8),
                                                                                  (None, 3)]
    assert on_hand(api) == {None: -3}
    assert ok(api.get("/sales-orders/SO-1/events"))[-1]["note"].endswith(
        "; not on record, shipped from the unknown lot: 3 of 30 bracket at wh")
    # a named lot short under 'allow': its own balance stays at 0, the rest comes from the unknown lot
    ok(api.post("/stock/receipts", json={"item_id": "bracket", "lot": "B-5", "to_location": "wh", "quantity": "2",
                                         "source_ref": "prod-B-5"}), 201)
    named = ok(ship(api, "SO-1", ("1", "wh", "5", "B-5")), 201)
    assert [(lot, quantity) for _, lot, _, _, quantity, _ in moved(named)] == [("B-5", 2), (None, 3)]
    assert on_hand(api) == {None: -6}
    done = ok(ship(api, "SO-1", ("1", "wh-b", "5")), 201)
    assert done["sales_order"]["status"] == "shipped" and on_hand(api, location="wh-b") == {}


def test_stock_without_a_lot_is_picked_after_every_known_lot(api, database_url):
    receive_screws_without_a_lot(api, "wh-b", "10")
    ok(api.post("/stock/receipts", json={"item_id": "screw", "lot": "S-1", "to_location": "wh-b", "quantity": "5",
                                         "source_ref": "GR-S-1"}), 201)
    ok(sales_order(api), 201)
    step = ok(ship(api, "SO-1", ("2", "wh-b", "12")), 201)
    assert [(lot, quantity) for _, lot, _, _, quantity, _ in moved(step)] == [("S-1", 5), (None, 7)]
    assert on_hand(api, "screw", "wh-b") == {None: 3}
    refused(ship(api, "SO-1", ("2", "wh-b", "4")), 409, "4 screw asked at wh-b, 3 on hand")


def test_an_over_shipment_is_refused_with_the_rules_message_and_writes_nothing(api, database_url):
    ok(sales_order(api, tolerance="0.1"), 201)  # 30 brackets: at most 33
    ok(ship(api, "SO-1", ("1", "wh", "27")), 201)
    before = snapshot(database_url)
    refused(ship(api, "SO-1", ("1", "wh", "4"), ("1", "wh", "3")), 409,
            "line 1 (bracket): shipping 7 would make 34 shipped of 30 ordered; at most 33.0 may be shipped",
            "over-delivery tolerance 10 %")
    refused(ship(api, "SO-1", ("9", "wh", "1")), 409, "the order has no line 9")
    refused(ship(api, "SO-1", ("1", "nowhere", "1")), 404, "location 'nowhere' does not exist")
    assert snapshot(database_url) == before


# --- customer returns --------------------------------------------------------------------------

def test_a_customer_return_comes_back_into_a_location_with_its_reason(api, database_url):
    ok(sales_order(api), 201)
    body = {"item_id": "bracket", "lot": "B-2", "location_id": "wh-b", "quantity": "2", "reason": "wrong colour", "actor": "sam"}
    refused(api.post("/sales-orders/SO-1/returns", json=body), 409,
            "cannot take a customer return on sales order 'SO-1': it is open and nothing was delivered on it "
            "(possible once it is partially shipped, shipped or closed)")
    ok(ship(api, "SO-1", ("1", "wh", "5")), 201)

    returned = ok(api.post("/sales-orders/SO-1/returns", json=body), 201)
    assert returned["source_ref"] == "so:SO-1/return:1"
    assert moved(returned) == [("bracket", "B-2", None, "wh-b", 2, "customer return: wrong colour")]
    assert returned["moves"][0]["unit_cost"] is None  # valued by the costing rules
    assert returned["sales_order"]["status"] == "partially_shipped" and shipped(returned["sales_order"])["1"] == (5, 25)
    assert on_hand(api, location="wh-b") == {"B-2": 2}
    assert events(api)[-1] == ("customer_return", "partially_shipped", "partially_shipped")
    assert ok(api.get("/sales-orders/SO-1/events"))[-1]["note"] == "so:SO-1/return:1: 2 bracket lot B-2 into wh-b: wrong colour"

    before = snapshot(database_url)
    refused(api.post("/sales-orders/SO-1/returns", json=body | {"lot": "Z-1"}), 404, "lot 'Z-1' of bracket does not exist")
    refused(api.post("/sales-orders/SO-1/returns", json=body | {"location_id": "nowhere"}), 404, "location 'nowhere'")
    refused(api.post("/sales-orders/SO-2/returns", json=body), 404, "sales order 'SO-2' does not exist")
    ok(sales_order(api, "SO-2", lines=[{"line": "1", "item_id": "screw", "quantity": "1", "unit_price": "1"}]), 201)
    receive_screws_without_a_lot(api, "wh", "1")
    ok(ship(api, "SO-2", ("1", "wh", "1")), 201)
    before = snapshot(database_url)
    refused(api.post("/sales-orders/SO-2/returns", json=body), 409, "sales order 'SO-2' has no line for bracket")
    refused(api.post("/sales-orders/SO-1/returns", json=body | {"reason": " "}), 422)
    refused(api.post("/sales-orders/SO-1/returns", json=body | {"quantity": "0"}), 422)
    assert snapshot(database_url) == before
    # an item not tracked by lot comes back without one
    back = ok(api.post("/sales-orders/SO-2/returns", json={"item_id": "screw", "location_id": "wh", "quantity": "1",
                                                           "reason": "spare"}), 201)
    assert moved(back) == [("screw", None, None, "wh", 1, "customer return: spare")]


# --- refusals ----------------------------------------------------------------------------------

def test_every_lifecycle_error_is_409_with_the_allowed_actions_and_writes_nothing(api, database_url):
    ok(sales_order(api), 201)
    steps = {
        "open": [("close", "cannot close a sales order that is open (allowed: ship partly, ship fully, cancel)")],
        "partially_shipped": [("cancel", "cannot cancel a sales order that is partially shipped "
                                         "(allowed: ship partly, ship fully, close)")],
        "shipped": [("cancel", "cannot cancel a sales order that is shipped (allowed: close)"),
                    ("shipments", "cannot ship partly a sales order that is shipped (allowed: close)")],
        "closed": [("close", "cannot close a sales order that is closed (allowed: none, it is final)"),
                   ("shipments", "(allowed: none, it is final)")],
    }

    def check(status):
        assert ok(api.get("/sales-orders/SO-1"))["status"] == status
        before = snapshot(database_url)
        for action, message in steps[status]:
            body = {"lines": [{"line": "1", "location_id": "wh", "quantity": "1"}]} if action == "shipments" else None
            refused(api.post(f"/sales-orders/SO-1/{action}", json=body), 409, message)
        assert snapshot(database_url) == before

    check("open")
    ok(ship(api, "SO-1", ("1", "wh", "1")), 201)
    check("partially_shipped")
    receive_screws_without_a_lot(api, "wh", "100")
    ok(ship(api, "SO-1", ("1", "wh", "29"), ("2", "wh", "100")), 201)
    check("shipped")
    ok(api.post("/sales-orders/SO-1/close"))
    check("closed")

    ok(sales_order(api, "SO-2"), 201)
    assert ok(api.post("/sales-orders/SO-2/cancel", json={"reason": "customer changed its mind"}))["status"] == "cancelled"
    refused(ship(api, "SO-2", ("1", "wh", "1")), 409, "cannot ship partly a sales order that is cancelled (allowed: none")
    assert events(api, "SO-2") == [("create", None, "open"), ("cancel", "open", "cancelled")]


def test_unknown_ids_are_404_and_malformed_requests_422(api, database_url):
    for method, path, body in (("get", "/sales-orders/nope", None), ("get", "/sales-orders/nope/events", None),
                               ("post", "/sales-orders/nope/cancel", None), ("post", "/sales-orders/nope/close", None),
                               ("post", "/sales-orders/nope/shipments", {"lines": [{"line": "1", "location_id": "wh",
                                                                                    "quantity": "1"}]})):
        refused(api.request(method, path, json=body), 404, "sales order 'nope' does not exist")
    ok(sales_order(api), 201)
    before = snapshot(database_url)
    for body in ({"lines": []}, {}, {"lines": [{"line": "1", "location_id": "wh"}]},
                 {"lines": [{"line": "1", "location_id": "wh", "quantity": "1", "lot": ""}]},
                 {"lines": [{"line": "1", "location_id": "wh", "quantity": "1"}], "colour": "red"}):
        refused(api.post("/sales-orders/SO-1/shipments", json=body), 422)
    refused(api.post("/sales-orders/SO-1/cancel", json={"reason": ""}), 422)
    assert snapshot(database_url) == before
