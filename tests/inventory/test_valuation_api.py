"""The valuation worker on a real PostgreSQL gives the worked sequence of docs/valuation.md for both
methods, through receipts and shipments posted by the API, and its ledger adds up to the value on hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from inventory.rules.costing import WorkOrderCost
from inventory.services.valuation import ValuationWorker
from tests.support.http import ok

# receipt 100 @ 2.00, receipt 50 @ 2.60, issue 120, issue 50 (stock dips to −20), receipt 40 @ 3.00
# Per step, (quantity, value) of its entries together, derived by hand in docs/valuation.md; the last
# receipt's value includes its true-up of the 20 issued beyond stock (−16.00 and −8.00).
EXPECTED = {
    "moving_average": [(100, "200.00"), (50, "130.00"), (-120, "-264.00"), (-50, "-110.00"), (40, "104.00")],
    "fifo": [(100, "200.00"), (50, "130.00"), (-120, "-252.00"), (-50, "-130.00"), (40, "112.00")],
}


@pytest.mark.parametrize("method", ["moving_average", "fifo"])
def test_the_worked_sequence_valued_by_the_worker_from_real_moves(api, database_url, method):
    ok(api.post("/items", json={"item_id": "flour", "name": "Flour", "kind": "buy", "uom": "kg", "valuation": method}), 201)
    ok(api.post("/locations", json={"location_id": "wh", "name": "Warehouse", "kind": "warehouse"}), 201)
    ok(api.post("/customers", json={"customer_id": "acme", "name": "ACME"}), 201)
    ok(api.post("/sales-orders", json={"so_id": "SO-1", "customer_id": "acme", "due": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
                                       "lines": [{"line": "1", "item_id": "flour", "quantity": "170", "unit_price": "5"}]}), 201)

    def receive(lot, quantity, cost):
        ok(api.post("/stock/receipts", json={"item_id": "flour", "lot": lot, "to_location": "wh", "quantity": quantity,
                                             "unit_cost": cost, "source_ref": f"GR-{lot}"}), 201)

    def ship(quantity):
        ok(api.post("/sales-orders/SO-1/shipments", json={"lines": [{"line": "1", "location_id": "wh", "quantity": quantity}]}), 201)

    receive("A", "100", "2.00")
    receive("B", "50", "2.60")
    ship("120")
    ship("50")  # 20 beyond stock: from the unknown lot, at the last known cost
    receive("C", "40", "3.00")

    steps: dict[str, list[Decimal]] = {}  # a shipment's moves (one per lot) are one step: its source_ref
    for entry in sorted(ok(api.get("/stock/value-entries", params={"item_id": "flour"})), key=lambda e: e["id"]):
        step = steps.setdefault(entry["source_ref"], [Decimal(0), Decimal(0)])
        step[0] += Decimal(entry["quantity"])
        step[1] += Decimal(entry["value"])
    assert [tuple(step) for step in steps.values()] == [(quantity, Decimal(value)) for quantity, value in EXPECTED[method]]
    (on_hand,) = ok(api.get("/stock/values", params={"item_id": "flour"}))
    assert (on_hand["method"], Decimal(on_hand["quantity"]), Decimal(on_hand["value"])) == (method, 20, Decimal("60.00"))
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM moves_to_value").fetchone() == (0,)
        ((ledger_value, ledger_quantity),) = conn.execute(
            "SELECT sum(value), sum(quantity) FROM stock_values WHERE item_id = 'flour'").fetchall()
        (moved,) = conn.execute("SELECT sum(quantity) FROM stock_on_hand WHERE item_id = 'flour'").fetchone()
    assert (ledger_value, ledger_quantity) == (Decimal("60.00"), 20) and moved == 20, "Σ value of moves = value on hand"


def test_a_round_that_loses_its_connection_values_nothing_and_the_next_round_values_each_move_once(api, database_url):
    ok(api.post("/items", json={"item_id": "bracket", "name": "Bracket", "kind": "make", "uom": "pcs"}), 201)
    ok(api.post("/locations", json={"location_id": "wh", "name": "Warehouse", "kind": "warehouse"}), 201)
    with psycopg.connect(database_url) as conn:  # a finished-goods receipt as backflush posts it: priced when valued
        conn.execute("""INSERT INTO stock_moves (item_id, to_location, quantity, reason, source_ref, work_order_id)
                        VALUES ('bracket', 'wh', 10, 'production receipt', 'FG-1', 'WO-1')""")
    priced = []

    def production_cost(session, work_order_id):
        priced.append(work_order_id)
        if len(priced) == 1:  # the server ends this round's connection while the receipt is being priced
            session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        return WorkOrderCost(material=Decimal(25), energy=0, machine=0, labour=0, good=10, scrap=0)

    def valued():
        with psycopg.connect(database_url) as conn:
            return (conn.execute("SELECT count(*) FROM moves_to_value").fetchone()[0],
                    conn.execute("SELECT quantity, value, unit_cost FROM stock_values ORDER BY id").fetchall())

    worker = ValuationWorker(database_url, production_cost)
    try:
        with pytest.raises(DBAPIError):
            worker.round()
        assert valued() == (1, [])
        worker.round()
        worker.round()
    finally:
        worker.close()
    assert valued() == (0, [(10, Decimal(25), Decimal("2.5"))]) and priced == ["WO-1", "WO-1"]
