"""Stocktakes through the HTTP API on a real PostgreSQL: counts, the preview, exact adjustments, refusals.

Worked example (complete count of the main store). Book: steel C-17 20, C-18 10, C-19 5; screw S-1 500.
Counted: C-17 22.5, C-18 7 (recounted as 8), a lot never recorded C-20 4, screw S-1 500.
Adjustments: C-17 +2.5 (gain), C-18 −2 (loss), C-19 −5 (uncounted in a complete count: zeroed),
C-20 +4 (gain, the lot is created), S-1 nothing. Afterwards the book equals the counts exactly.
"""

from __future__ import annotations

import itertools
from decimal import Decimal

import psycopg
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.http import ok
from tests.support.auth import by


def refused(response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    detail = str(response.json()["detail"])
    for word in words:
        assert word in detail, detail


def seed(api) -> None:
    for item in ({"item_id": "steel", "name": "Steel coil", "kind": "buy", "uom": "kg"},
                 {"item_id": "screw", "name": "Screw M6", "kind": "buy", "uom": "pcs"}):
        ok(api.post("/items", json=item), 201)
    for location in ("wh", "wh-2"):
        ok(api.post("/locations", json={"location_id": location, "name": location, "kind": "warehouse"}), 201)
    for item, lot, quantity in (("steel", "C-17", "20"), ("steel", "C-18", "10"), ("steel", "C-19", "5"),
                                ("screw", "S-1", "500")):
        ok(api.post("/stock/receipts", json={"item_id": item, "lot": lot, "to_location": "wh", "quantity": quantity,
                                             "source_ref": f"GR-{lot}"}), 201)
    ok(api.post("/stock/receipts", json={"item_id": "steel", "lot": "C-17", "to_location": "wh-2", "quantity": "3",
                                         "source_ref": "GR-C-17b"}), 201)


def on_hand(api, location="wh") -> dict[tuple[str, str | None], Decimal]:
    return {(row["item_id"], row["lot"]): Decimal(row["quantity"])
            for row in ok(api.get("/stock/on-hand", params={"location_id": location}))}


def count(item, lot, quantity, counted_by="fay"):
    return {"item_id": item, "lot": lot, "quantity": quantity, "counted_by": counted_by}


def adjustments(stocktake: dict) -> dict[tuple[str, str | None], tuple[Decimal, Decimal, Decimal, str]]:
    return {(a["item_id"], a["lot"]): (Decimal(a["book"]), Decimal(a["counted"]), Decimal(a["quantity"]), a["reason"])
            for a in stocktake["adjustments"]}


def counts(stocktake: dict) -> dict[tuple[str, str | None], tuple[Decimal, Decimal, Decimal]]:
    return {(c["item_id"], c["lot"]): (Decimal(c["counted"]), Decimal(c["book"]), Decimal(c["difference"]))
            for c in stocktake["counts"]}


def snapshot(database_url) -> tuple:
    """Everything a stocktake step writes."""
    with psycopg.connect(database_url) as conn:
        return tuple(conn.execute(query).fetchall() for query in (
            "SELECT * FROM stocktakes ORDER BY stocktake_id",
            "SELECT * FROM stocktake_counts ORDER BY stocktake_id, item_id, lot",
            "SELECT id FROM stock_moves ORDER BY id",
            "SELECT id FROM document_events ORDER BY id",
            "SELECT item_id, lot FROM lots ORDER BY item_id, lot"))


def test_a_complete_stocktake_posts_exact_gains_and_losses_and_zeroes_an_uncounted_lot(api, database_url):
    seed(api)
    opened = ok(by(api, "gus").post("/stocktakes", json={"stocktake_id": "S-1", "location_id": "wh", "complete": True,
                                              "actor": "gus"}), 201)
    assert (opened["status"], opened["complete"], opened["counts"]) == ("counting", True, [])
    ok(api.put("/stocktakes/S-1/counts", json=[count("steel", "C-17", "22.5"), count("steel", "C-18", "7"),
                                               count("steel", "C-20", "4", "hal"), count("screw", "S-1", "500")]))
    preview = ok(api.put("/stocktakes/S-1/counts", json=[count("steel", "C-18", "8", "hal")]))  # a recount replaces
    assert counts(preview) == {("screw", "S-1"): (500, 500, 0), ("steel", "C-17"): (Decimal("22.5"), 20, Decimal("2.5")),
                               ("steel", "C-18"): (8, 10, -2), ("steel", "C-20"): (4, 0, 4)}
    expected = {("steel", "C-17"): (20, Decimal("22.5"), Decimal("2.5"), "stocktake gain"),
                ("steel", "C-18"): (10, 8, -2, "stocktake loss"),
                ("steel", "C-19"): (5, 0, -5, "stocktake loss"),
                ("steel", "C-20"): (0, 4, 4, "stocktake gain")}
    assert adjustments(preview) == expected
    assert on_hand(api)[("steel", "C-19")] == 5  # a preview moves nothing

    posted = ok(by(api, "gus").post("/stocktakes/S-1/post", json={"reason": "year-end count", "actor": "gus"}))
    assert posted["status"] == "posted"
    assert on_hand(api) == {("screw", "S-1"): 500, ("steel", "C-17"): Decimal("22.5"), ("steel", "C-18"): 8,
                            ("steel", "C-20"): 4}
    assert on_hand(api, "wh-2") == {("steel", "C-17"): 3}  # another location is not touched
    # once posted, the stocktake shows what posting did, against the book as it was
    assert adjustments(posted) == expected and counts(posted) == counts(preview)
    moves = ok(api.get("/stock/moves", params={"source_ref": "stocktake:S-1"}))
    assert {(m["lot"], m["from_location"], m["to_location"], Decimal(m["quantity"]), m["reason"], m["unit_cost"])
            for m in moves} == {("C-17", None, "wh", Decimal("2.5"), "stocktake gain", None),
                                ("C-18", "wh", None, 2, "stocktake loss", None),
                                ("C-19", "wh", None, 5, "stocktake loss", None),
                                ("C-20", None, "wh", 4, "stocktake gain", None)}

    before = snapshot(database_url)
    refused(api.post("/stocktakes/S-1/post", json={"reason": "again"}), 409, "stocktake S-1 is posted",
            "can no longer be posted")
    refused(api.put("/stocktakes/S-1/counts", json=[count("steel", "C-17", "1")]), 409, "can no longer be counted")
    refused(api.post("/stocktakes/S-1/cancel"), 409, "can no longer be cancelled")
    assert snapshot(database_url) == before

    events = ok(api.get("/stocktakes/S-1/events"))
    assert [(e["action"], e["from_status"], e["to_status"], e["actor"]) for e in events] == [
        ("open", None, "counting", "gus"), ("count", "counting", "counting", "fay, hal"),
        ("count", "counting", "counting", "hal"), ("post", "counting", "posted", "gus")]
    assert events[-1]["note"] == "year-end count (4 adjustments)"
    assert [s["stocktake_id"] for s in ok(api.get("/stocktakes", params={"location_id": "wh"}))] == ["S-1"]


def test_a_partial_stocktake_changes_only_what_was_counted(api):
    seed(api)
    ok(api.post("/stocktakes", json={"stocktake_id": "S-2", "location_id": "wh"}), 201)
    preview = ok(api.put("/stocktakes/S-2/counts", json=[count("steel", "C-18", "0"), count("screw", "S-1", "501")]))
    assert adjustments(preview) == {("steel", "C-18"): (10, 0, -10, "stocktake loss"),
                                    ("screw", "S-1"): (500, 501, 1, "stocktake gain")}
    ok(api.post("/stocktakes/S-2/post", json={"reason": "cycle count"}))
    assert on_hand(api) == {("screw", "S-1"): 501, ("steel", "C-17"): 20, ("steel", "C-19"): 5}
    # the location is free to be counted again; a count agreeing with the book posts no move
    ok(api.post("/stocktakes", json={"stocktake_id": "S-3", "location_id": "wh"}), 201)
    ok(api.put("/stocktakes/S-3/counts", json=[count("steel", "C-17", "20")]))
    posted = ok(api.post("/stocktakes/S-3/post", json={"reason": "spot check"}))
    assert posted["adjustments"] == [] and counts(posted) == {("steel", "C-17"): (20, 20, 0)}
    assert ok(api.get("/stock/moves", params={"source_ref": "stocktake:S-3"})) == []


def test_every_refusal_is_a_4xx_with_a_clear_message_and_writes_nothing(api, database_url):
    seed(api)
    ok(api.post("/stocktakes", json={"stocktake_id": "S-1", "location_id": "wh", "complete": True}), 201)
    before = snapshot(database_url)
    refused(api.post("/stocktakes", json={"stocktake_id": "S-1", "location_id": "wh-2"}), 409, "'S-1' already exists")
    refused(api.post("/stocktakes", json={"stocktake_id": "S-2", "location_id": "wh"}), 409,
            "stocktake S-1 is already counting wh", "post or cancel it first")
    refused(api.post("/stocktakes", json={"stocktake_id": "S-2", "location_id": "nowhere"}), 404,
            "location 'nowhere' does not exist")
    refused(api.put("/stocktakes/S-1/counts", json=[count("ghost", None, "1")]), 404, "item 'ghost' does not exist")
    refused(api.put("/stocktakes/S-1/counts", json=[count("steel", "C-17", "-1")]), 422)
    refused(api.put("/stocktakes/S-1/counts", json=[count("steel", "C-17", "1"), count("steel", "C-17", "2")]), 409,
            "steel lot C-17 is counted twice in one request")
    refused(api.put("/stocktakes/S-1/counts", json=[]), 409, "no counts given")
    refused(api.put("/stocktakes/S-9/counts", json=[count("steel", "C-17", "1")]), 404, "stocktake 'S-9' does not exist")
    # a complete count with nothing counted would zero the whole location
    refused(api.post("/stocktakes/S-1/post", json={"reason": "year-end"}), 409, "nothing was counted on stocktake S-1")
    refused(api.post("/stocktakes/S-1/post", json={}), 422)
    refused(api.post("/stocktakes/S-1/post", json={"reason": "  "}), 422)
    refused(api.get("/stocktakes/S-9"), 404, "stocktake 'S-9' does not exist")
    refused(api.get("/stocktakes/S-9/events"), 404, "stocktake 'S-9' does not exist")
    assert snapshot(database_url) == before

    ok(api.put("/stocktakes/S-1/counts", json=[count("steel", "C-17", "1")]))
    cancelled = ok(by(api, "gus").post("/stocktakes/S-1/cancel", json={"actor": "gus", "reason": "wrong shift"}))
    assert (cancelled["status"], cancelled["adjustments"]) == ("cancelled", [])
    before = snapshot(database_url)
    refused(api.post("/stocktakes/S-1/post", json={"reason": "year-end"}), 409, "stocktake S-1 is cancelled")
    assert snapshot(database_url) == before
    assert on_hand(api)[("steel", "C-17")] == 20
    ok(api.post("/stocktakes", json={"stocktake_id": "S-2", "location_id": "wh"}), 201)  # cancelled: no longer counting


def test_property_after_posting_the_book_is_the_count_and_only_what_the_rule_says_changed(api):
    """Random books and counts, each on a location of its own: after posting, a counted lot holds its count,
    an uncounted one is unchanged (partial count) or gone (complete count), and the preview was exact."""
    seed(api)
    numbers = itertools.count(1)
    lots = st.sampled_from(["A", "B", "C", "D"])
    book_strategy = st.dictionaries(lots, st.decimals(min_value=Decimal("0.001"), max_value=Decimal(100), places=3),
                                    max_size=3)
    count_strategy = st.dictionaries(lots, st.decimals(min_value=Decimal(0), max_value=Decimal(100), places=3),
                                     min_size=1, max_size=3)

    @settings(max_examples=20, deadline=None, database=None)
    @given(book=book_strategy, counted=count_strategy, complete=st.booleans())
    def one_stocktake(book, counted, complete):
        number = next(numbers)
        location, stocktake_id = f"bin-{number}", f"ST-{number}"
        ok(api.post("/locations", json={"location_id": location, "name": location, "kind": "warehouse"}), 201)
        for lot, quantity in book.items():
            ok(api.post("/stock/receipts", json={"item_id": "steel", "lot": f"{lot}-{number}", "to_location": location,
                                                 "quantity": f"{quantity:f}", "source_ref": f"GR-{number}"}), 201)
        ok(api.post("/stocktakes", json={"stocktake_id": stocktake_id, "location_id": location, "complete": complete}), 201)
        preview = ok(api.put(f"/stocktakes/{stocktake_id}/counts",
                             json=[count("steel", f"{lot}-{number}", f"{quantity:f}") for lot, quantity in counted.items()]))
        ok(api.post(f"/stocktakes/{stocktake_id}/post", json={"reason": "property"}))
        expected = ({} if complete else dict(book)) | counted
        after = {lot.removesuffix(f"-{number}"): quantity for (_, lot), quantity in on_hand(api, location).items()}
        assert after == {lot: quantity for lot, quantity in expected.items() if quantity != 0}
        assert {lot.removesuffix(f"-{number}"): change for (_, lot), (*_, change, _) in adjustments(preview).items()} == {
            lot: expected.get(lot, Decimal(0)) - book.get(lot, Decimal(0))
            for lot in book.keys() | counted.keys() if expected.get(lot, Decimal(0)) != book.get(lot, Decimal(0))}

    one_stocktake()
