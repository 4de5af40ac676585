"""Purchasing through the HTTP API on a real PostgreSQL: suppliers, purchase orders, approvals, receipts, returns.

The plant's thresholds in these tests: worth more than 0 → 1 approval (the schema's default row), more
than 10 000 → 2 (inserted by `two_approvals_above_10000`).

Worked example (receipts): PO-1 orders 100 kg steel at 1.25 and 1000 screws at 0.013, value
100 × 1.25 + 1000 × 0.013 = 125 + 13 = 138 → one approval. Receipt 1 brings 60 kg of lot C-1: one
move None → wh, 60 at 1.25, status partially received (60 of 100). Receipt 2 brings the other 40 kg
(lot C-2) and the 1000 screws (no lot): every line complete, status received.
"""

from __future__ import annotations

from decimal import Decimal

import psycopg
import pytest

from tests.support.http import ok, refused
from tests.support.auth import by


@pytest.fixture
def api(api):
    seed(api)
    return api


def seed(api) -> None:
    for item in ({"item_id": "steel", "name": "Steel coil", "kind": "buy", "uom": "kg"},
                 {"item_id": "screw", "name": "Screw M6", "kind": "buy", "uom": "pcs"},
                 {"item_id": "bracket", "name": "Bracket", "kind": "make", "uom": "pcs"}):
        ok(api.post("/items", json=item), 201)
    ok(api.post("/locations", json={"location_id": "wh", "name": "Main store", "kind": "warehouse"}), 201)
    ok(api.post("/locations", json={"location_id": "wh-b", "name": "Blocked store", "kind": "warehouse",
                                    "negative_stock": "block"}), 201)
    ok(api.post("/suppliers", json={"supplier_id": "acme", "name": "ACME Steel", "email": "orders@acme.example"}), 201)
    ok(api.post("/suppliers", json={"supplier_id": "bolt", "name": "Bolt & Co"}), 201)


@pytest.fixture
def two_approvals_above_10000(api, database_url) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO approval_thresholds VALUES ('purchase_order', 10000, 2)")


def order(api, po_id="PO-1", lines=None, who="anna", **fields):
    body = {"po_id": po_id, "supplier_id": "acme", "created_by": "anna",
            "lines": lines if lines is not None else [
                {"line": "1", "item_id": "steel", "quantity": "100", "unit_cost": "1.25"},
                {"line": "2", "item_id": "screw", "quantity": "1000", "unit_cost": "0.013"}], **fields}
    return by(api, who).post("/purchase-orders", json=body)


def approved(api, po_id="PO-1", **fields) -> dict:
    ok(order(api, po_id, **fields), 201)
    ok(by(api, "anna").post(f"/purchase-orders/{po_id}/submit", json={"actor": "anna"}))
    return ok(by(api, "bob").post(f"/purchase-orders/{po_id}/approve", json={"approver": "bob"}))


def receive(api, po_id="PO-1", *lines: tuple):
    body = {"lines": [dict(zip(("line", "location_id", "quantity", "lot", "expires"), line, strict=False)) for line in lines]}
    return api.post(f"/purchase-orders/{po_id}/receipts", json=body)


def events(api, po_id="PO-1") -> list[tuple]:
    return [(e["action"], e["from_status"], e["to_status"], e["actor"]) for e in ok(api.get(f"/purchase-orders/{po_id}/events"))]


def on_hand(api, item="steel") -> dict[tuple[str, str | None], Decimal]:
    return {(row["location_id"], row["lot"]): Decimal(row["quantity"])
            for row in ok(api.get("/stock/on-hand", params={"item_id": item}))}


def lines(po: dict) -> dict[str, tuple[Decimal, Decimal]]:
    return {line["line"]: (Decimal(line["received"]), Decimal(line["outstanding"])) for line in po["lines"]}


def snapshot(database_url) -> tuple:
    """Everything a purchasing step writes."""
    with psycopg.connect(database_url) as conn:
        return tuple(conn.execute(query).fetchall() for query in (
            "SELECT * FROM suppliers ORDER BY supplier_id",
            "SELECT * FROM purchase_orders ORDER BY po_id",
            "SELECT * FROM purchase_order_lines ORDER BY po_id, line",
            "SELECT id FROM stock_moves ORDER BY id",
            "SELECT id FROM document_events ORDER BY id",
            "SELECT item_id, lot FROM lots ORDER BY item_id, lot"))


# --- suppliers ---------------------------------------------------------------------------------

def test_suppliers_are_created_listed_and_fetched_once(api):
    assert [s["supplier_id"] for s in ok(api.get("/suppliers"))] == ["acme", "bolt"]
    assert ok(api.get("/suppliers/acme")) == {"supplier_id": "acme", "name": "ACME Steel", "email": "orders@acme.example"}
    refused(api.post("/suppliers", json={"supplier_id": "acme", "name": "Other"}), 409, "supplier 'acme' already exists")
    refused(api.get("/suppliers/nope"), 404, "supplier 'nope' does not exist")
    for malformed in ({"supplier_id": "x"}, {"supplier_id": "x", "name": ""}, {"supplier_id": "x y", "name": "X"},
                      {"supplier_id": "x", "name": "X", "email": "not an address"}, {"supplier_id": "x", "name": "X", "fax": "1"}):
        refused(api.post("/suppliers", json=malformed), 422)
    assert len(ok(api.get("/suppliers"))) == 2


# --- approvals ---------------------------------------------------------------------------------

@pytest.mark.usefixtures("two_approvals_above_10000")
def test_an_order_above_the_two_approval_threshold_needs_two_distinct_approvers_other_than_its_creator(api, database_url):
    # 10 000 kg × 1.25 = 12 500 > 10 000 → 2 approvals
    po = ok(order(api, lines=[{"line": "1", "item_id": "steel", "quantity": "10000", "unit_cost": "1.25"}]), 201)
    assert (po["status"], Decimal(po["value"]), po["approvals_needed"], po["approvals"]) == ("draft", 12500, 2, [])
    assert ok(by(api, "anna").post("/purchase-orders/PO-1/submit", json={"actor": "anna"}))["status"] == "submitted"

    before = snapshot(database_url)
    refused(by(api, "Anna").post("/purchase-orders/PO-1/approve", json={"approver": " Anna"}), 409,
            "Anna created this document and cannot approve it")
    assert snapshot(database_url) == before
    once = ok(by(api, "bob").post("/purchase-orders/PO-1/approve", json={"approver": "bob"}))
    assert once["status"] == "submitted" and [a["approver"] for a in once["approvals"]] == ["bob"]
    before = snapshot(database_url)
    refused(by(api, "BOB").post("/purchase-orders/PO-1/approve", json={"approver": "BOB "}), 409,
            "BOB has already approved this document", "someone else")
    assert snapshot(database_url) == before
    twice = ok(by(api, "carl").post("/purchase-orders/PO-1/approve", json={"approver": "carl", "note": "budget ok"}))
    assert twice["status"] == "approved" and [a["approver"] for a in twice["approvals"]] == ["bob", "carl"]
    refused(by(api, "dora").post("/purchase-orders/PO-1/approve", json={"approver": "dora"}), 409,
            "cannot approve a purchase order that is approved (allowed: receive partly, receive fully, cancel)")

    assert events(api) == [("create", None, "draft", "anna"), ("submit", "draft", "submitted", "anna"),
                           ("approve", "submitted", "submitted", "bob"), ("approve", "submitted", "approved", "carl")]
    notes = [e["note"] for e in ok(api.get("/purchase-orders/PO-1/events"))]
    assert notes[1:] == ["value 12500.00: 2 approvals needed", "approval 1 of 2", "approval 2 of 2; budget ok"]


@pytest.mark.usefixtures("two_approvals_above_10000")
def test_a_rejection_voids_the_approvals_and_the_resubmitted_order_needs_all_of_them_again(api):
    ok(order(api, lines=[{"line": "1", "item_id": "steel", "quantity": "20000", "unit_cost": "1"}]), 201)
    ok(api.post("/purchase-orders/PO-1/submit"))
    ok(by(api, "bob").post("/purchase-orders/PO-1/approve", json={"approver": "bob"}))
    rejected = ok(by(api, "carl").post("/purchase-orders/PO-1/reject", json={"actor": "carl", "reason": "wrong supplier"}))
    assert rejected["status"] == "draft" and rejected["approvals"] == []
    refused(by(api, "carl").post("/purchase-orders/PO-1/reject", json={"actor": "carl", "reason": "again"}), 409,
            "cannot reject a purchase order that is draft (allowed: submit, cancel)")

    ok(api.post("/purchase-orders/PO-1/submit"))
    again = ok(by(api, "bob").post("/purchase-orders/PO-1/approve", json={"approver": "bob"}))  # bob's earlier approval is void
    assert again["status"] == "submitted" and [a["approver"] for a in again["approvals"]] == ["bob"]
    assert ok(by(api, "dora").post("/purchase-orders/PO-1/approve", json={"approver": "dora"}))["status"] == "approved"
    assert [e[0] for e in events(api)] == ["create", "submit", "approve", "reject", "submit", "approve", "approve"]


def test_an_order_worth_nothing_needs_no_approval_and_is_approved_at_submit(api):
    # the default threshold asks one approval above 0; a free sample order is worth exactly 0
    ok(order(api, lines=[{"line": "1", "item_id": "steel", "quantity": "5", "unit_cost": "0"}]), 201)
    po = ok(by(api, "anna").post("/purchase-orders/PO-1/submit", json={"actor": "anna"}))
    assert (po["status"], po["approvals_needed"], po["approvals"]) == ("approved", 0, [])
    assert events(api)[1:] == [("submit", "draft", "submitted", "anna"), ("approve", "submitted", "approved", None)]
    # one approval for anything above 0
    ok(order(api, "PO-2"), 201)
    assert ok(api.post("/purchase-orders/PO-2/submit"))["approvals_needed"] == 1
    assert ok(by(api, "bob").post("/purchase-orders/PO-2/approve", json={"approver": "bob"}))["status"] == "approved"


# --- receipts ----------------------------------------------------------------------------------

def test_a_receipt_posts_exact_moves_at_the_order_cost_and_moves_the_status_to_received(api):
    po = approved(api, "PO-1", due="2026-05-01")
    assert (Decimal(po["value"]), po["approvals_needed"], po["due"]) == (Decimal("138.000"), 1, "2026-05-01")
    first = ok(receive(api, "PO-1", ("1", "wh", "60", "C-1", "2027-01-31")), 201)
    assert first["source_ref"] == "po:PO-1/receipt:1"
    assert [(m["item_id"], m["lot"], m["from_location"], m["to_location"], Decimal(m["quantity"]), Decimal(m["unit_cost"]),
             m["reason"], m["source_ref"]) for m in first["moves"]] == [
        ("steel", "C-1", None, "wh", 60, Decimal("1.25"), "goods receipt", "po:PO-1/receipt:1")]
    assert [(m["id"], Decimal(m["unit_cost"])) for m in ok(api.get("/stock/moves", params={"source_ref": "po:PO-1/receipt:1"}))] \
        == [(first["moves"][0]["id"], Decimal("1.25"))]
    assert first["purchase_order"]["status"] == "partially_received"
    assert lines(first["purchase_order"]) == {"1": (60, 40), "2": (0, 1000)}

    second = ok(receive(api, "PO-1", ("1", "wh", "40", "C-2"), ("2", "wh", "1000")), 201)
    assert second["source_ref"] == "po:PO-1/receipt:2" and second["purchase_order"]["status"] == "received"
    assert [(m["item_id"], m["lot"], Decimal(m["quantity"]), Decimal(m["unit_cost"])) for m in second["moves"]] == [
        ("steel", "C-2", 40, Decimal("1.25")), ("screw", None, 1000, Decimal("0.013"))]
    assert lines(ok(api.get("/purchase-orders/PO-1"))) == {"1": (100, 0), "2": (1000, 0)}
    assert on_hand(api) == {("wh", "C-1"): 60, ("wh", "C-2"): 40} and on_hand(api, "screw") == {("wh", None): 1000}
    assert {row["lot"]: row["expires"] for row in ok(api.get("/stock/on-hand", params={"item_id": "steel"}))} == {
        "C-1": "2027-01-31", "C-2": None}

    assert ok(by(api, "anna").post("/purchase-orders/PO-1/close", json={"actor": "anna"}))["status"] == "closed"
    assert [e[:3] for e in events(api)] == [
        ("create", None, "draft"), ("submit", "draft", "submitted"), ("approve", "submitted", "approved"),
        ("receive_partly", "approved", "partially_received"), ("receive_fully", "partially_received", "received"),
        ("close", "received", "closed")]
    notes = [e["note"] for e in ok(api.get("/purchase-orders/PO-1/events"))]
    assert notes[3:5] == ["po:PO-1/receipt:1: 60 steel lot C-1", "po:PO-1/receipt:2: 1000 screw, 40 steel lot C-2"]


def test_an_over_receipt_beyond_the_tolerance_is_refused_and_writes_nothing(api, database_url):
    approved(api, tolerance="0.05")  # 100 kg ordered: at most 105 may be received
    ok(receive(api, "PO-1", ("1", "wh", "100", "C-1")), 201)
    before = snapshot(database_url)
    refused(receive(api, "PO-1", ("2", "wh", "10", "S-1"), ("1", "wh", "6", "C-2")), 409,
            "line 1 (steel): receiving 6 would make 106 received of 100 ordered; at most 105.00 may be received",
            "over-delivery tolerance 5 %")
    assert snapshot(database_url) == before
    done = ok(receive(api, "PO-1", ("1", "wh", "5", "C-2"), ("2", "wh", "1000", "S-1")), 201)
    assert done["purchase_order"]["status"] == "received" and lines(done["purchase_order"])["1"] == (105, 0)
    refused(receive(api, "PO-1", ("1", "wh", "1", "C-3")), 409,
            "cannot receive partly a purchase order that is received (allowed: close)")
    assert [e[0] for e in events(api)][-2:] == ["receive_partly", "receive_fully"]


def test_a_receipt_refused_by_a_lot_with_another_expiry_writes_nothing(api, database_url):
    approved(api)
    ok(receive(api, "PO-1", ("1", "wh", "10", "C-1", "2027-01-31")), 201)
    before = snapshot(database_url)
    refused(receive(api, "PO-1", ("2", "wh", "5", "S-1"), ("1", "wh", "10", "C-1", "2027-02-28")), 409,
            "lot 'C-1' of 'steel' expires 2027-01-31, not 2027-02-28")
    refused(receive(api, "PO-1", ("1", "wh", "1", "C-9", "2027-01-01"), ("1", "wh", "1", "C-9", "2027-02-01")), 409,
            "lot C-9 of steel is received with two different expiry dates")
    assert snapshot(database_url) == before


# --- returns to the supplier -------------------------------------------------------------------

def test_a_return_to_the_supplier_takes_the_given_lot_and_never_more_than_it_holds_there(api, database_url):
    approved(api)
    refused(api.post("/purchase-orders/PO-1/returns", json={"item_id": "steel", "lot": "C-1", "location_id": "wh",
                                                            "quantity": "1", "reason": "rust"}), 409,
            "cannot return goods to the supplier on purchase order 'PO-1': it is approved and nothing was delivered",
            "possible once it is partially received, received or closed")
    ok(receive(api, "PO-1", ("1", "wh", "60", "C-1"), ("1", "wh", "20", "C-2")), 201)

    body = {"item_id": "steel", "lot": "C-1", "location_id": "wh", "quantity": "10", "reason": " rust "}
    returned = ok(api.post("/purchase-orders/PO-1/returns", json=body), 201)
    assert returned["source_ref"] == "po:PO-1/return:1"
    assert [(m["lot"], m["from_location"], m["to_location"], Decimal(m["quantity"]), m["unit_cost"], m["reason"])
            for m in returned["moves"]] == [("C-1", "wh", None, 10, None, "return to supplier: rust")]
    # a return changes neither the received quantity nor the status
    assert returned["purchase_order"]["status"] == "partially_received" and lines(returned["purchase_order"])["1"] == (80, 20)
    assert on_hand(api) == {("wh", "C-1"): 50, ("wh", "C-2"): 20}

    before = snapshot(database_url)
    refused(api.post("/purchase-orders/PO-1/returns", json=body | {"quantity": "51"}), 409,
            "cannot return 51 steel lot C-1 from wh: it holds 50")  # 'wh' allows negative stock: still refused
    refused(api.post("/purchase-orders/PO-1/returns", json=body | {"location_id": "wh-b"}), 409, "it holds 0")
    refused(api.post("/purchase-orders/PO-1/returns", json=body | {"item_id": "bracket"}), 409,
            "purchase order 'PO-1' has no line for bracket")
    refused(api.post("/purchase-orders/PO-1/returns", json=body | {"item_id": "nope"}), 404, "item 'nope' does not exist")
    refused(api.post("/purchase-orders/PO-1/returns", json=body | {"location_id": "nope"}), 404, "location 'nope'")
    refused(api.post("/purchase-orders/PO-1/returns", json=body | {"reason": ""}), 422)
    refused(api.post("/purchase-orders/PO-1/returns", json={k: v for k, v in body.items() if k != "reason"}), 422)
    assert snapshot(database_url) == before

    ok(api.post("/purchase-orders/PO-1/returns", json=body | {"lot": "C-2", "quantity": "20"}), 201)
    assert on_hand(api) == {("wh", "C-1"): 50}
    assert [(e[0], e[1], e[2]) for e in events(api)][-2:] == [
        ("return_to_supplier", "partially_received", "partially_received")] * 2
    assert ok(api.get("/purchase-orders/PO-1/events"))[-1]["note"] == "po:PO-1/return:2: 20 steel lot C-2 from wh: rust"


# --- refusals ----------------------------------------------------------------------------------

def test_every_lifecycle_error_is_409_with_the_allowed_actions_and_writes_nothing(api, database_url):
    ok(order(api), 201)
    steps = {
        "draft": [("approve", {"approver": "bob"}, "cannot approve a purchase order that is draft (allowed: submit, cancel)"),
                  ("close", None, "cannot close a purchase order that is draft (allowed: submit, cancel)"),
                  ("receipts", {"lines": [{"line": "1", "location_id": "wh", "quantity": "1"}]},
                   "cannot receive partly a purchase order that is draft (allowed: submit, cancel)")],
        "submitted": [("submit", None, "cannot submit a purchase order that is submitted (allowed: approve, reject, cancel)"),
                      ("close", None, "(allowed: approve, reject, cancel)")],
        "partially_received": [("cancel", None, "cannot cancel a purchase order that is partially received "
                                                "(allowed: receive partly, receive fully, close)")],
        "closed": [("cancel", None, "cannot cancel a purchase order that is closed (allowed: none, it is final)"),
                   ("receipts", {"lines": [{"line": "1", "location_id": "wh", "quantity": "1"}]}, "it is final")],
    }

    def check(status):
        assert ok(api.get("/purchase-orders/PO-1"))["status"] == status
        before = snapshot(database_url)
        for action, body, message in steps[status]:
            refused(api.post(f"/purchase-orders/PO-1/{action}", json=body), 409, message)
        assert snapshot(database_url) == before

    check("draft")
    ok(api.post("/purchase-orders/PO-1/submit"))
    check("submitted")
    ok(by(api, "bob").post("/purchase-orders/PO-1/approve", json={"approver": "bob"}))
    ok(receive(api, "PO-1", ("1", "wh", "1", "C-1")), 201)
    check("partially_received")
    ok(api.post("/purchase-orders/PO-1/close", json={"reason": "supplier stopped making it"}))
    check("closed")

    ok(order(api, "PO-2"), 201)
    assert ok(by(api, "anna").post("/purchase-orders/PO-2/cancel", json={"actor": "anna", "reason": "duplicate"}))["status"] == "cancelled"
    refused(api.post("/purchase-orders/PO-2/submit"), 409, "cannot submit a purchase order that is cancelled")


def test_creating_an_order_refuses_duplicates_make_items_and_unknown_references(api, database_url):
    ok(order(api), 201)
    before = snapshot(database_url)
    refused(order(api), 409, "purchase order 'PO-1' already exists")
    refused(order(api, "PO-2", lines=[{"line": "1", "item_id": "bracket", "quantity": "1", "unit_cost": "1"}]), 409,
            "bracket is a 'make' item, made here: only 'buy' items are purchased")
    refused(order(api, "PO-2", supplier_id="nope"), 404, "supplier 'nope' does not exist")
    refused(order(api, "PO-2", lines=[{"line": "1", "item_id": "nope", "quantity": "1", "unit_cost": "1"}]), 404,
            "item 'nope' does not exist")
    assert snapshot(database_url) == before


def test_unknown_ids_are_404(api):
    for method, path, body in (("get", "/purchase-orders/nope", None), ("get", "/purchase-orders/nope/events", None),
                               ("post", "/purchase-orders/nope/submit", None),
                               ("post", "/purchase-orders/nope/approve", {"approver": "bob"}),
                               ("post", "/purchase-orders/nope/reject", {"actor": "bob", "reason": "x"}),
                               ("post", "/purchase-orders/nope/cancel", None), ("post", "/purchase-orders/nope/close", None),
                               ("post", "/purchase-orders/nope/receipts",
                                {"lines": [{"line": "1", "location_id": "wh", "quantity": "1"}]}),
                               ("post", "/purchase-orders/nope/returns",
                                {"item_id": "steel", "location_id": "wh", "quantity": "1", "reason": "x"})):
        refused(api.request(method, path, json=body), 404, "purchase order 'nope' does not exist")
    approved(api)
    refused(receive(api, "PO-1", ("1", "nowhere", "1")), 404, "location 'nowhere' does not exist")


def test_malformed_requests_are_422_and_write_nothing(api, database_url):
    approved(api)
    before = snapshot(database_url)
    line = {"line": "1", "item_id": "steel", "quantity": "1", "unit_cost": "1"}
    for malformed in ([], [line, line], [line | {"quantity": "0"}], [line | {"unit_cost": "-1"}],
                      [line | {"unit_cost": "0.0000001"}], [line | {"colour": "red"}], [{"line": "1", "item_id": "steel"}]):
        refused(order(api, "PO-2", lines=malformed), 422)
    refused(order(api, "PO-2", tolerance="-0.1"), 422)
    refused(order(api, "bad id"), 422)
    refused(api.post("/purchase-orders/PO-1/receipts", json={"lines": []}), 422)
    refused(receive(api, "PO-1", ("1", "wh", "-1")), 422)
    refused(receive(api, "PO-1", ("1", "wh", "1", "C-1", "tomorrow")), 422)
    refused(api.post("/purchase-orders/PO-1/approve", json={"approver": "bob", "colour": "red"}), 422)
    refused(by(api, "bob").post("/purchase-orders/PO-1/reject", json={"actor": "bob"}), 422)
    refused(api.get("/purchase-orders", params={"status": "lost"}), 422)
    assert snapshot(database_url) == before


def test_orders_are_listed_by_status_and_supplier(api):
    approved(api, "PO-1")
    ok(order(api, "PO-2", supplier_id="bolt"), 201)
    ok(order(api, "PO-3"), 201)
    listed = ok(api.get("/purchase-orders"))
    assert [po["po_id"] for po in listed] == ["PO-1", "PO-2", "PO-3"]
    assert [a["approver"] for a in listed[0]["approvals"]] == ["bob"]
    assert [po["po_id"] for po in ok(api.get("/purchase-orders", params={"status": "draft"}))] == ["PO-2", "PO-3"]
    assert [po["po_id"] for po in ok(api.get("/purchase-orders", params={"supplier_id": "acme"}))] == ["PO-1", "PO-3"]
    assert ok(api.get("/purchase-orders", params={"status": "approved", "supplier_id": "bolt"})) == []
