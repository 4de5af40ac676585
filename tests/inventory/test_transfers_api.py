"""Transfers through the HTTP API on a real PostgreSQL: lifecycle, transit, available stock, refusals.

The issue's acceptance test: "Transfer lifecycle: goods in transit are in neither location's available
stock and are never lost." 30 kg of steel sit in the main store (lot C-18, 10 kg, expiring first; lot
C-17, 20 kg). Shipping 10 of the 30 requested picks FEFO, so all 10 come from C-18; receiving 6 leaves
4 in transit; writing those 4 off lets the transfer post. At every step Σ on hand over every location
(the transit one included) + Σ written off = 30.
"""

from __future__ import annotations

import itertools
from datetime import date
from decimal import ROUND_DOWN, Decimal

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.http import ok, refused
from tests.support.auth import by

STEEL_LOTS = (("C-17", "20", "2027-03-01"), ("C-18", "10", "2027-01-15"))


def seed(api, source_policy: str = "allow") -> None:
    """Steel (two lots, 30 kg) and screws in the main store; a second store; a line side."""
    for item in ({"item_id": "steel", "name": "Steel coil", "kind": "buy", "uom": "kg"},
                 {"item_id": "screw", "name": "Screw M6", "kind": "buy", "uom": "pcs"}):
        ok(api.post("/items", json=item), 201)
    ok(api.post("/locations", json={"location_id": "wh", "name": "Main store", "kind": "warehouse",
                                    "negative_stock": source_policy}), 201)
    ok(api.post("/locations", json={"location_id": "wh-2", "name": "Second store", "kind": "warehouse"}), 201)
    ok(api.post("/locations", json={"location_id": "line-1-side", "name": "Line 1", "kind": "line_side", "line": "line-1"}), 201)
    for lot, quantity, expires in STEEL_LOTS:
        ok(api.post("/stock/receipts", json={"item_id": "steel", "lot": lot, "to_location": "wh", "quantity": quantity,
                                             "expires": expires, "source_ref": f"GR-{lot}"}), 201)
    ok(api.post("/stock/receipts", json={"item_id": "screw", "lot": "S-1", "to_location": "wh", "quantity": "500",
                                         "source_ref": "GR-S-1"}), 201)


def request(api, transfer_id="T-1", lines=None, who="anna", **fields):
    body = {"transfer_id": transfer_id, "from_location": "wh", "to_location": "wh-2",
            "lines": {"steel": "30"} if lines is None else lines, "requested_by": "anna", **fields}
    return by(api, who).post("/transfers", json=body)


def available(api, **params) -> dict[tuple[str, str], Decimal]:
    return {(row["item_id"], row["location_id"]): Decimal(row["quantity"])
            for row in ok(api.get("/stock/available", params=params))}


def on_hand(api, item="steel") -> dict[tuple[str, str | None], Decimal]:
    return {(row["location_id"], row["lot"]): Decimal(row["quantity"])
            for row in ok(api.get("/stock/on-hand", params={"item_id": item}))}


def written_off(database_url, item="steel") -> Decimal:
    with psycopg.connect(database_url) as conn:
        (total,) = conn.execute("""SELECT coalesce(sum(quantity), 0) FROM stock_moves
                                   WHERE item_id = %s AND reason LIKE 'in-transit write-off:%%'""", (item,)).fetchone()
    return total


def assert_never_lost(api, database_url, total=Decimal(30)) -> None:
    assert sum(on_hand(api).values()) + written_off(database_url) == total


def snapshot(database_url) -> tuple:
    """Everything a transfer step writes."""
    with psycopg.connect(database_url) as conn:
        return tuple(conn.execute(query).fetchall() for query in (
            "SELECT * FROM transfers ORDER BY transfer_id",
            "SELECT * FROM transfer_lines ORDER BY transfer_id, item_id",
            "SELECT id FROM stock_moves ORDER BY id",
            "SELECT id FROM document_events ORDER BY id",
            "SELECT location_id FROM locations ORDER BY location_id",
            "SELECT item_id, lot FROM lots ORDER BY item_id, lot"))


def line(transfer: dict, item="steel") -> dict:
    (found,) = [row for row in transfer["lines"] if row["item_id"] == item]
    return {key: (Decimal(value) if key not in ("item_id", "lots") else value) for key, value in found.items()}


def test_transfer_lifecycle_goods_in_transit_are_in_neither_locations_available_stock_and_are_never_lost(api, database_url):
    seed(api)
    assert available(api, item_id="steel") == {("steel", "wh"): Decimal(30)}

    requested = ok(request(api), 201)
    assert requested["status"] == "requested" and requested["transit_location"] is None
    assert ok(by(api, "bob").post("/transfers/T-1/approve", json={"approver": "bob"}))["status"] == "approved"
    assert_never_lost(api, database_url)

    shipped = ok(by(api, "carl").post("/transfers/T-1/ship", json={"lines": [{"item_id": "steel", "quantity": "10"}], "actor": "carl"}))
    assert shipped["status"] == "in_transit" and shipped["transit_location"] == "transit:T-1"
    # FEFO: C-18 expires first and holds exactly 10
    assert on_hand(api) == {("wh", "C-17"): Decimal(20), ("transit:T-1", "C-18"): Decimal(10)}
    assert available(api, item_id="steel") == {("steel", "wh"): Decimal(20)}  # source −10, destination +0, transit nowhere
    assert available(api, location_id="transit:T-1") == {}
    assert line(shipped) | {"lots": None} == {"item_id": "steel", "requested": 30, "shipped": 10, "received": 0,
                                              "written_off": 0, "in_transit": 10, "lots": None}
    locations = {row["location_id"]: row for row in ok(api.get("/locations"))}
    assert locations["transit:T-1"]["kind"] == "transit" and locations["transit:T-1"]["name"] == "in transit: T-1"
    assert_never_lost(api, database_url)

    received = ok(api.post("/transfers/T-1/receive", json={"lines": [{"item_id": "steel", "quantity": "6"}]}))
    assert received["status"] == "received"
    assert on_hand(api) == {("wh", "C-17"): Decimal(20), ("wh-2", "C-18"): Decimal(6), ("transit:T-1", "C-18"): Decimal(4)}
    assert available(api, item_id="steel") == {("steel", "wh"): Decimal(20), ("steel", "wh-2"): Decimal(6)}
    assert (line(received)["received"], line(received)["in_transit"]) == (6, 4)
    assert_never_lost(api, database_url)

    before = snapshot(database_url)
    refused(api.post("/transfers/T-1/post"), 409, "4 of steel lot C-18 still in transit", "write it off")
    assert snapshot(database_url) == before

    ok(by(api, "dave").post("/transfers/T-1/write-off", json={"lines": [{"item_id": "steel", "lot": "C-18", "quantity": "4"}],
                                                "reason": "fell off the truck", "actor": "dave"}))
    assert written_off(database_url) == 4
    assert_never_lost(api, database_url)
    posted = ok(by(api, "erin").post("/transfers/T-1/post", json={"actor": "erin"}))
    assert posted["status"] == "posted"
    assert line(posted) | {"lots": None} == {"item_id": "steel", "requested": 30, "shipped": 10, "received": 6,
                                             "written_off": 4, "in_transit": 0, "lots": None}
    assert line(posted)["lots"] == [{"lot": "C-18", "shipped": "10", "received": "6", "written_off": "4", "in_transit": "0"}]
    assert on_hand(api) == {("wh", "C-17"): Decimal(20), ("wh-2", "C-18"): Decimal(6)}
    assert_never_lost(api, database_url)

    moves = ok(api.get("/stock/moves", params={"source_ref": "transfer:T-1"}))
    assert {(m["lot"], m["from_location"], m["to_location"], Decimal(m["quantity"]), m["reason"]) for m in moves} == {
        ("C-18", "wh", "transit:T-1", 10, "transfer shipped"), ("C-18", "transit:T-1", "wh-2", 6, "transfer received"),
        ("C-18", "transit:T-1", None, 4, "in-transit write-off: fell off the truck")}
    events = ok(api.get("/transfers/T-1/events"))
    assert [(e["action"], e["from_status"], e["to_status"], e["actor"]) for e in events] == [
        ("request", None, "requested", "anna"), ("approve", "requested", "approved", "bob"),
        ("ship", "approved", "in_transit", "carl"), ("receive", "in_transit", "received", "key:test-admin"),
        ("write_off", "received", "received", "dave"), ("post", "received", "posted", "erin")]
    assert "fell off the truck" in events[4]["note"] and "still in transit: nothing" in events[4]["note"]
    assert [t["transfer_id"] for t in ok(api.get("/transfers", params={"status": "posted"}))] == ["T-1"]
    assert ok(api.get("/transfers", params={"status": "requested"})) == []


def test_named_lots_are_shipped_first_then_fefo_and_receipts_name_the_lot_when_several_are_in_transit(api, database_url):
    seed(api)
    ok(request(api, lines={"steel": "30", "screw": "100"}), 201)
    ok(by(api, "bob").post("/transfers/T-1/approve", json={"approver": "bob"}))
    # 5 from C-17 as named, then 8 FEFO: C-18 (10, expires first) gives all 8
    shipped = ok(api.post("/transfers/T-1/ship", json={"lines": [
        {"item_id": "steel", "lot": "C-17", "quantity": "5"}, {"item_id": "steel", "quantity": "8"},
        {"item_id": "screw", "quantity": "100"}]}))
    assert {(lot["lot"], Decimal(lot["in_transit"])) for lot in line(shipped)["lots"]} == {("C-17", 5), ("C-18", 8)}
    assert on_hand(api)[("transit:T-1", "C-17")] == 5 and on_hand(api)[("transit:T-1", "C-18")] == 8
    assert_never_lost(api, database_url)

    before = snapshot(database_url)
    refused(api.post("/transfers/T-1/receive", json={"lines": [{"item_id": "steel", "quantity": "1"}]}),
            409, "steel is in transit in lots C-17, C-18", "name the lot")
    refused(api.post("/transfers/T-1/receive", json={"lines": [{"item_id": "steel", "lot": "C-17", "quantity": "6"}]}),
            409, "receiving 6 of steel lot C-17", "only 5 are in transit")
    refused(api.post("/transfers/T-1/write-off", json={"lines": [{"item_id": "steel", "lot": "C-17", "quantity": "1"}],
                                                     "reason": "   "}), 422)
    refused(api.post("/transfers/T-1/cancel"), 409, "cannot cancel a transfer that is in transit")
    assert snapshot(database_url) == before

    # two lines of one lot add up; the screws' only lot needs no name
    received = ok(api.post("/transfers/T-1/receive", json={"lines": [
        {"item_id": "steel", "lot": "C-17", "quantity": "2"}, {"item_id": "steel", "lot": "C-17", "quantity": "3"},
        {"item_id": "steel", "lot": "C-18", "quantity": "8"}, {"item_id": "screw", "quantity": "100"}]}))
    assert line(received)["in_transit"] == 0 and line(received, "screw")["received"] == 100
    assert ok(api.post("/transfers/T-1/post"))["status"] == "posted"
    refused(api.post("/transfers/T-1/receive", json={"lines": [{"item_id": "steel", "quantity": "1"}]}),
            409, "cannot receive a transfer that is posted")
    assert available(api, location_id="wh-2") == {("screw", "wh-2"): Decimal(100), ("steel", "wh-2"): Decimal(13)}


@pytest.mark.parametrize("policy", ["allow", "block"])
def test_shipping_more_than_the_source_holds_is_refused_whatever_its_negative_stock_policy(api, database_url, policy):
    seed(api, source_policy=policy)
    ok(request(api, lines={"steel": "50"}), 201)
    ok(by(api, "bob").post("/transfers/T-1/approve", json={"approver": "bob"}))
    before = snapshot(database_url)
    refused(api.post("/transfers/T-1/ship"), 409, "cannot ship from wh", "50 steel asked, 30 on hand", f"({policy})")
    refused(api.post("/transfers/T-1/ship", json={"lines": [{"item_id": "steel", "lot": "C-18", "quantity": "11"}]}),
            409, "11 steel lot C-18 asked, 10 on hand")
    refused(api.post("/transfers/T-1/ship", json={"lines": [{"item_id": "steel", "lot": "C-18", "quantity": "10"},
                                                            {"item_id": "steel", "quantity": "21"}]}),
            409, "21 steel asked, 20 on hand")
    assert snapshot(database_url) == before
    assert ok(api.get("/transfers/T-1"))["status"] == "approved"
    # without lines every requested quantity ships, here as much as there is once the request allows it
    ok(request(api, "T-2", lines={"steel": "30"}), 201)
    ok(by(api, "bob").post("/transfers/T-2/approve", json={"approver": "bob"}))
    assert line(ok(api.post("/transfers/T-2/ship")))["in_transit"] == 30
    assert available(api, item_id="steel") == {}
    assert_never_lost(api, database_url)


def test_every_refusal_is_a_4xx_with_a_clear_message_and_writes_nothing(api, database_url):
    seed(api)
    ok(request(api, lines={"steel": "10"}), 201)
    before = snapshot(database_url)
    refused(request(api), 409, "transfer 'T-1' already exists")
    refused(request(api, "T-2", from_location="nowhere"), 404, "location 'nowhere' does not exist")
    refused(request(api, "T-2", lines={"ghost": "1"}), 404, "item 'ghost' does not exist")
    refused(request(api, "T-2", to_location="wh"), 409, "'wh' is both source and destination")
    refused(request(api, "T-2", lines={}), 422)
    refused(request(api, "T-2", lines={"steel": "0"}), 422)
    refused(by(api, "Anna").post("/transfers/T-1/approve", json={"approver": " Anna "}), 409, "Anna created this document",
            "another person must")
    refused(by(api, "bob").post("/transfers/T-9/approve", json={"approver": "bob"}), 404, "transfer 'T-9' does not exist")
    refused(api.post("/transfers/T-1/ship"), 409, "cannot ship a transfer that is requested", "allowed: approve, cancel")
    refused(api.post("/transfers/T-1/post"), 409, "cannot post a transfer that is requested")
    refused(api.post("/transfers/T-1/receive", json={"lines": [{"item_id": "steel", "quantity": "1"}]}),
            409, "cannot receive a transfer that is requested")
    refused(api.get("/transfers/T-9"), 404, "transfer 'T-9' does not exist")
    refused(api.get("/transfers/T-9/events"), 404, "transfer 'T-9' does not exist")
    refused(api.get("/stock/available", params={"item_id": "ghost"}), 404, "item 'ghost' does not exist")
    refused(api.get("/stock/available", params={"location_id": "nowhere"}), 404, "location 'nowhere' does not exist")
    assert snapshot(database_url) == before

    ok(by(api, "bob").post("/transfers/T-1/approve", json={"approver": "bob"}))
    before = snapshot(database_url)
    refused(by(api, "carl").post("/transfers/T-1/approve", json={"approver": "carl"}), 409, "cannot approve a transfer that is approved")
    refused(api.post("/transfers/T-1/ship", json={"lines": [{"item_id": "steel", "quantity": "11"}]}),
            409, "shipping 11 of steel, but only 10 were requested and approved")
    refused(api.post("/transfers/T-1/ship", json={"lines": [{"item_id": "screw", "quantity": "1"}]}),
            409, "did not request screw")
    refused(api.post("/transfers/T-1/ship", json={"lines": []}), 409, "ships nothing: cancel it instead")
    refused(api.post("/transfers/T-1/write-off", json={"lines": [{"item_id": "steel", "quantity": "1"}]}), 422)
    assert snapshot(database_url) == before

    cancelled = ok(by(api, "anna").post("/transfers/T-1/cancel", json={"actor": "anna", "reason": "plan changed"}))
    assert cancelled["status"] == "cancelled"
    assert ok(api.get("/transfers/T-1/events"))[-1] | {"id": 0, "ts": 0} == {
        "id": 0, "ts": 0, "action": "cancel", "from_status": "approved", "to_status": "cancelled", "actor": "anna",
        "note": "plan changed"}
    refused(api.post("/transfers/T-1/ship"), 409, "cannot ship a transfer that is cancelled", "none, it is final")
    assert available(api, item_id="steel") == {("steel", "wh"): Decimal(30)}


def test_available_stock_is_per_item_and_location_including_line_side(api):
    seed(api)
    ok(api.post("/stock/receipts", json={"item_id": "steel", "lot": "C-19", "to_location": "line-1-side", "quantity": "2.5",
                                         "source_ref": "GR-C-19"}), 201)
    assert available(api) == {("screw", "wh"): Decimal(500), ("steel", "wh"): Decimal(30),
                              ("steel", "line-1-side"): Decimal("2.5")}
    assert available(api, item_id="steel", location_id="line-1-side") == {("steel", "line-1-side"): Decimal("2.5")}
    assert available(api, location_id="wh-2") == {}


def test_property_whatever_is_shipped_received_and_written_off_nothing_is_lost_and_transit_is_available_nowhere(
        api, database_url):
    """Random transfers one after another on one database: fresh stock in a lot of random expiry, a random
    shipment (FEFO), random partial receipts and write-offs, then the rest written off and the transfer
    posted. After every step: Σ on hand everywhere + Σ written off is unchanged; the source's available
    stock fell by exactly what was shipped, the destination's rose by exactly what was received."""
    seed(api)
    numbers = itertools.count(1)
    positive = st.decimals(min_value=Decimal("0.001"), max_value=Decimal(40), places=3)
    permille = st.integers(min_value=1, max_value=1000)

    def share(quantity: Decimal, thousandths: int) -> Decimal:
        """Part of `quantity` (a multiple of 0.001), at least 0.001: draws stay independent of the database's state."""
        return max(Decimal("0.001"), (quantity * thousandths / 1000).quantize(Decimal("0.001"), rounding=ROUND_DOWN))

    def steel_available() -> tuple[Decimal, Decimal]:
        found = available(api, item_id="steel")
        return found.get(("steel", "wh"), Decimal(0)), found.get(("steel", "wh-2"), Decimal(0))

    @settings(max_examples=20, deadline=None, database=None)
    @given(data=st.data())
    def one_transfer(data):
        number = next(numbers)
        stock, expires = data.draw(positive, label="received into wh"), data.draw(st.dates(date(2027, 1, 1), date(2028, 1, 1)))
        ok(api.post("/stock/receipts", json={"item_id": "steel", "lot": f"P-{number}", "to_location": "wh",
                                             "quantity": f"{stock:f}", "expires": expires.isoformat(),
                                             "source_ref": f"GR-P-{number}"}), 201)
        total = sum(on_hand(api).values()) + written_off(database_url)
        source, destination = steel_available()
        shipping = share(source, data.draw(permille, label="‰ of the source shipped"))
        extra = data.draw(st.decimals(min_value=Decimal(0), max_value=Decimal(5), places=3), label="requested beyond")
        transfer_id = f"P-{number}"
        ok(request(api, transfer_id, lines={"steel": f"{shipping + extra:f}"}), 201)
        ok(by(api, "bob").post(f"/transfers/{transfer_id}/approve", json={"approver": "bob"}))
        view = ok(api.post(f"/transfers/{transfer_id}/ship", json={"lines": [{"item_id": "steel", "quantity": f"{shipping:f}"}]}))
        received = Decimal(0)
        for action in data.draw(st.lists(st.sampled_from(["receive", "write-off"]), max_size=3), label="steps"):
            assert sum(on_hand(api).values()) + written_off(database_url) == total
            assert steel_available() == (source - shipping, destination + received)
            lots = [lot for lot in line(view)["lots"] if Decimal(lot["in_transit"]) > 0]
            if not lots:
                break
            lot = lots[data.draw(st.integers(min_value=0, max_value=9), label="lot") % len(lots)]
            quantity = share(Decimal(lot["in_transit"]), data.draw(permille, label="‰ of the lot in transit"))
            body = {"lines": [{"item_id": "steel", "lot": lot["lot"], "quantity": f"{quantity:f}"}], "reason": "damaged"}
            if action == "receive":
                del body["reason"]
                received += quantity
            view = ok(api.post(f"/transfers/{transfer_id}/{action}", json=body))
        rest = [{"item_id": "steel", "lot": lot["lot"], "quantity": lot["in_transit"]}
                for lot in line(view)["lots"] if Decimal(lot["in_transit"]) > 0]
        if rest:
            ok(api.post(f"/transfers/{transfer_id}/write-off", json={"lines": rest, "reason": "lost"}))
        assert ok(api.post(f"/transfers/{transfer_id}/post"))["status"] == "posted"
        assert sum(on_hand(api).values()) + written_off(database_url) == total
        assert steel_available() == (source - shipping, destination + received)
        assert not any(location == f"transit:{transfer_id}" for location, _ in on_hand(api))

    one_transfer()
