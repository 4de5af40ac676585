"""`lot_balances` on a real PostgreSQL: equal to the ledger summed after any sequence of moves, filled by its
migration from the moves already stored, and locked by whoever takes stock, so that two takers racing for
the last units of a lot under `block` never take it below zero and lose nothing.

Every test of this directory also ends with the table checked against its ledger (tests/inventory/conftest.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from inventory.rules.backflush import BackflushPlan, Move
from inventory.rules.operations import PlannedMove, ShipmentLine
from inventory.services import sales, stock
from inventory.services.backflush import backflush_attributed, lot_balances, write_backflush
from kernel.db.migrations import upgrade
from kernel.db.models import make_engine
from kernel.rules.refusals import Conflict
from mes.rules.attribution import AttributionRow
from tests.inventory.test_sales_api import receive_screws_without_a_lot
from tests.support.http import ok
from tests.support.ledger import balance_mismatches

ITEMS, LOCATIONS, LOTS = ("bolt", "nut"), ("w1", "w2"), ("L1", "L2", None)
NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@pytest.fixture
def sessions(database_url: str) -> Iterator[Callable[[], Session]]:
    engine = make_engine(database_url)
    try:
        yield lambda: Session(engine)
    finally:
        engine.dispose()


def seed_master_data(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        for item in ITEMS:
            conn.execute("INSERT INTO items (item_id, name, kind, uom) VALUES (%s, %s, 'buy', 'pcs')", (item, item))
        for location in LOCATIONS:
            conn.execute("INSERT INTO locations (location_id, name, kind) VALUES (%s, %s, 'warehouse')", (location, location))
        for item in ITEMS:
            for lot in LOTS:
                if lot is not None:
                    conn.execute("INSERT INTO lots (item_id, lot) VALUES (%s, %s)", (item, lot))


# --- balances = the ledger, after any sequence of moves -----------------------------------------------

quantities = st.decimals(min_value=Decimal("0.001"), max_value=Decimal(1000), places=3)
places = st.sampled_from(LOCATIONS) | st.none()
planned_moves = st.builds(
    lambda item, lot, origin, destination, quantity: PlannedMove(item, lot, origin, destination, quantity, "test", None),
    st.sampled_from(ITEMS), st.sampled_from(LOTS), places, places, quantities,
).filter(lambda move: move.from_location != move.to_location)
# one step: a document's moves through post_moves (the ORM), or a backflush's through COPY; a step can move
# the same balance more than once
steps = st.lists(st.tuples(st.booleans(), st.lists(planned_moves, min_size=1, max_size=6)), min_size=1, max_size=8)


def test_the_balances_equal_the_ledger_summed_after_any_sequence_of_steps(database_url, sessions):
    upgrade(database_url)
    seed_master_data(database_url)

    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(steps)
    def after(sequence: list[tuple[bool, list[PlannedMove]]]) -> None:
        with sessions() as session:
            for by_copy, moves in sequence:
                if by_copy:
                    write_backflush(session, BackflushPlan(
                        [Move(NOW, m.item, m.lot, m.from_location, m.to_location, m.quantity, "backflush", "test", "WO-x")
                         for m in moves], [], {}, {}))
                else:
                    stock.post_moves(session, moves, source_ref="test")
            session.commit()
        assert balance_mismatches(database_url) == []
        with psycopg.connect(database_url) as conn:
            assert conn.execute("SELECT count(*) FROM stock_on_hand WHERE quantity = 0").fetchone() == (0,)

    after()


def test_the_migration_fills_the_balances_from_the_moves_already_stored(database_url):
    upgrade(database_url, revision="0018")
    seed_master_data(database_url)
    with psycopg.connect(database_url) as conn:
        for item, lot, origin, destination, quantity in (("bolt", "L1", None, "w1", "10"), ("bolt", "L1", "w1", "w2", "4"),
                                                          ("bolt", None, "w1", None, "3"), ("nut", "L2", None, "w2", "7"),
                                                          ("nut", "L2", "w2", None, "7")):
            conn.execute("""INSERT INTO stock_moves (item_id, lot, from_location, to_location, quantity, reason, source_ref)
                            VALUES (%s, %s, %s, %s, %s, 'test', 'before-0019')""", (item, lot, origin, destination, quantity))
    upgrade(database_url)
    assert balance_mismatches(database_url) == []
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT item_id, location_id, lot, quantity FROM stock_on_hand ORDER BY 1, 2, 3").fetchall() == [
            ("bolt", "w1", "L1", Decimal(6)), ("bolt", "w1", None, Decimal(-3)), ("bolt", "w2", "L1", Decimal(4))]


# --- the ledger's references, checked on its balance rows (migration 0020) -----------------------------

MOVE = """INSERT INTO stock_moves (item_id, lot, from_location, to_location, quantity, reason, source_ref)
          VALUES (%s, %s, %s, %s, 1, 'test', 'references')"""


@pytest.mark.parametrize("item, lot, origin, destination", [
    ("washer", None, None, "w1"), ("bolt", None, None, "nowhere"), ("bolt", None, "nowhere", None),
    ("bolt", "L9", None, "w1"), ("bolt", "L9", "w1", None), ("nut", "L1", "w1", "nowhere")])
def test_a_move_naming_an_unknown_item_location_or_lot_is_refused(database_url, item, lot, origin, destination):
    upgrade(database_url)
    seed_master_data(database_url)
    with psycopg.connect(database_url) as conn:
        conn.execute(MOVE, ("bolt", "L1", None, "w1"))  # the balance row exists: only the new leg's is checked
        conn.commit()
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute(MOVE, (item, lot, origin, destination))


def moved_in_and_out(database_url: str) -> None:
    """Lot L1 of bolt into w2 and out again: its balance row there is zero."""
    upgrade(database_url)
    seed_master_data(database_url)
    with psycopg.connect(database_url) as conn:
        conn.execute(MOVE, ("bolt", "L1", None, "w2"))
        conn.execute(MOVE, ("bolt", "L1", "w2", None))


@pytest.mark.parametrize("delete", ["DELETE FROM lots WHERE lot = 'L1'", "DELETE FROM locations WHERE location_id = 'w2'",
                                    "DELETE FROM items WHERE item_id = 'bolt'"])
def test_what_a_move_names_cannot_be_deleted_even_once_its_balance_is_zero(database_url, delete):
    moved_in_and_out(database_url)
    with psycopg.connect(database_url) as conn, pytest.raises(psycopg.errors.ForeignKeyViolation):
        conn.execute(delete)


def test_a_balance_row_is_never_deleted(database_url):
    moved_in_and_out(database_url)
    with psycopg.connect(database_url) as conn, pytest.raises(psycopg.errors.RaiseException, match="never deleted"):
        conn.execute("DELETE FROM lot_balances WHERE quantity = 0")


# --- two takers racing for the last units under `block` -----------------------------------------------

@pytest.fixture
def last_screws(api, database_url) -> str:
    """10 screws in lot S1 at a blocking line-side location on a machine's line, WO-1 (1 screw a widget)
    released, SO-1 for screws open; the machine."""
    with psycopg.connect(database_url) as conn:
        machine, line = conn.execute("SELECT machine_id, line FROM machines ORDER BY machine_id LIMIT 1").fetchone()
    for item, kind in (("widget", "make"), ("screw", "buy")):
        ok(api.post("/items", json={"item_id": item, "name": item, "kind": kind, "uom": "pcs"}), 201)
    ok(api.post("/items/widget/bom", json={"component_item": "screw", "quantity_per": "1"}), 201)
    ok(api.post("/locations", json={"location_id": "ls", "name": "Line side", "kind": "line_side", "line": line,
                                    "negative_stock": "block"}), 201)
    ok(api.post("/stock/receipts", json={"item_id": "screw", "lot": "S1", "to_location": "ls", "quantity": "10",
                                         "source_ref": "GR-S1"}), 201)
    ok(api.post("/work-orders", json={"work_order_id": "WO-1", "item_id": "widget", "quantity": 1000}), 201)
    ok(api.post("/work-orders/WO-1/release"))
    ok(api.post("/customers", json={"customer_id": "acme", "name": "Acme"}), 201)
    ok(api.post("/sales-orders", json={"so_id": "SO-1", "customer_id": "acme", "due": "2026-06-01T12:00:00+00:00",
                                       "lines": [{"line": "1", "item_id": "screw", "quantity": "100", "unit_price": "1"}]}), 201)
    return machine


def made(machine: str, good: int) -> AttributionRow:
    return AttributionRow("edge-1", 1, 1, machine, "WO-1", good, 0, 0, NOW, NOW)


def in_thread(step: Callable[[], object]) -> tuple[ThreadPoolExecutor, Future]:
    pool = ThreadPoolExecutor(max_workers=1)
    return pool, pool.submit(step)


def wait_until_blocked_on_a_lock(database_url: str) -> None:
    """Until another connection to this database waits on a row lock (generous: the machine is shared)."""
    deadline = time.monotonic() + 60
    with psycopg.connect(database_url, autocommit=True) as conn:
        while conn.execute("""SELECT count(*) FROM pg_stat_activity
                              WHERE datname = current_database() AND wait_event_type = 'Lock'""").fetchone() == (0,):
            assert time.monotonic() < deadline, "the second taker never waited for the first"
            time.sleep(0.05)


def on_hand(database_url: str) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT lot, quantity FROM lot_balances WHERE item_id = 'screw' ORDER BY lot").fetchall()


def ship_one_screw(sessions: Callable[[], Session]) -> Callable[[], object]:
    def step() -> object:
        with sessions() as session:
            return sales.ship(session, "SO-1", [ShipmentLine("1", "ls", Decimal(1))])
    return step


def test_a_shipment_waits_for_the_backflush_that_takes_the_last_units_and_is_refused(last_screws, database_url, sessions):
    with sessions() as backflush:
        plan = backflush_attributed(backflush, [made(last_screws, 10)])
        assert plan is not None and [(m.lot, m.quantity) for m in plan.moves if m.reason == "backflush"] == [("S1", 10)]
        write_backflush(backflush, plan)
        pool, shipping = in_thread(ship_one_screw(sessions))
        wait_until_blocked_on_a_lock(database_url)
        backflush.commit()
    with pytest.raises(Conflict, match="cannot ship: 1 screw asked at ls, 0 on hand"):
        shipping.result(timeout=60)
    pool.shutdown()
    assert on_hand(database_url) == [("S1", Decimal(0))]


def test_a_backflush_waits_for_the_document_step_that_takes_the_last_units_and_holds_the_order(last_screws, api, database_url,
                                                                                              sessions):
    with sessions() as document:
        # what a document step does: read its balances locked, then post the moves it planned from them
        assert [(b.lot, b.quantity) for b in lot_balances(document, ["ls"], ["screw"])[("screw", "ls")]] == [("S1", 10)]
        stock.post_moves(document, [PlannedMove("screw", "S1", "ls", None, Decimal(10), "shipment", None)],
                         source_ref="so:SO-1/shipment:1")

        def backflush_step() -> BackflushPlan | None:
            with sessions() as session:
                plan = backflush_attributed(session, [made(last_screws, 4)])
                assert plan is not None
                write_backflush(session, plan)
                session.commit()
                return plan
        pool, backflushing = in_thread(backflush_step)
        wait_until_blocked_on_a_lock(database_url)
        document.commit()
    plan = backflushing.result(timeout=60)
    pool.shutdown()
    assert [m for m in plan.moves if m.reason == "backflush"] == []
    assert [(e.kind, e.quantity) for e in plan.exceptions] == [("blocked", Decimal(4))] and set(plan.held) == {"WO-1"}
    assert on_hand(database_url) == [("S1", Decimal(0))]
    # what was held back is consumed once stock is there, through the same locked read
    refused_while_short = api.post("/work-orders/WO-1/release-hold")
    assert refused_while_short.status_code == 409 and "still short: 4 screw at ls" in refused_while_short.text
    ok(api.post("/stock/receipts", json={"item_id": "screw", "lot": "S2", "to_location": "ls", "quantity": "5",
                                         "source_ref": "GR-S2"}), 201)
    assert ok(api.post("/work-orders/WO-1/release-hold"))["held_reason"] is None
    assert on_hand(database_url) == [("S1", Decimal(0)), ("S2", Decimal(1))]


def test_stock_booked_without_a_lot_is_locked_too(last_screws, api, database_url, sessions):
    receive_screws_without_a_lot(api, "ls", "2")
    with sessions() as document:
        assert stock.lot_balances_at(document, "ls", "screw", for_update=True) == {("screw", "S1"): 10, ("screw", None): 2}
        stock.post_moves(document, [PlannedMove("screw", "S1", "ls", None, Decimal(10), "shipment", None),
                                    PlannedMove("screw", None, "ls", None, Decimal(2), "shipment", None)],
                         source_ref="so:SO-1/shipment:1")
        pool, shipping = in_thread(ship_one_screw(sessions))
        wait_until_blocked_on_a_lock(database_url)
        document.commit()
    with pytest.raises(Conflict, match="cannot ship: 1 screw asked at ls, 0 on hand"):
        shipping.result(timeout=60)
    pool.shutdown()
    assert on_hand(database_url) == [("S1", Decimal(0)), (None, Decimal(0))]


def test_many_takers_at_once_never_take_a_blocking_lot_below_zero(last_screws, database_url, sessions):
    barrier = threading.Barrier(6)

    def ship() -> bool:
        barrier.wait(timeout=60)
        try:
            ship_one_screw(sessions)()
        except Conflict:
            return False
        return True

    def backflush() -> None:
        barrier.wait(timeout=60)
        with sessions() as session:
            plan = backflush_attributed(session, [made(last_screws, 3)])
            assert plan is not None
            write_backflush(session, plan)
            session.commit()

    with ThreadPoolExecutor(max_workers=6) as pool:
        shipped = [pool.submit(ship) for _ in range(3)]
        backflushed = [pool.submit(backflush) for _ in range(3)]
        [future.result(timeout=120) for future in backflushed]
        shipments = sum(future.result(timeout=120) for future in shipped)
    with psycopg.connect(database_url) as conn:
        (consumed,) = conn.execute("SELECT coalesce(sum(quantity), 0) FROM stock_moves WHERE reason = 'backflush'").fetchone()
        (held_back,) = conn.execute("SELECT coalesce(sum(quantity), 0) FROM backflush_exceptions").fetchone()
    assert consumed + held_back == 9  # each backflush either consumed its 3 screws or held them back
    assert on_hand(database_url) == [("S1", 10 - consumed - shipments)]
    assert 10 - consumed - shipments >= 0
