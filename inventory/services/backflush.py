"""Backflush against the stock ledger: what the rules need, read with its balances locked, and the moves written.

Used inside the caller's transaction by the ingest (every batch's attributed counts) and by the
services that backflush later (units a supervisor re-assigns, a hold that is released) and the
documents that pick lots (shipments, transfers). `connection` is a SQLAlchemy Session or Connection.

Locking, stated: balances are rows of `lot_balances`, which the ledger's inserts keep (a trigger, in the
inserting statement). What is locked is every balance row of the items read at the locations read, the
unknown lot's included, in (item, location, lot) order, by the statement that reads them (FOR UPDATE
returns a row's last committed quantity once its holder has committed). Two writers that take stock of
the same item at the same location therefore never both see the same balance: under the `block`
policy a lot cannot be taken below zero. The trigger adds a statement's moves in the same order, so
writers that lock before they write do not deadlock on the rows they lock.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from inventory.rules.backflush import AttributedUnits, BackflushPlan, LineSide, Material, interval_ref, plan_backflush
from inventory.rules.lots import LotBalance, NegativeStockPolicy
from kernel.db.copy import copy_rows

Db = Session | Connection


def materials(connection: Db, work_orders: Iterable[str]) -> dict[str, Material]:
    """What one unit of each work order consumes (its BOM snapshot) and what it makes."""
    found: dict[str, Material] = {}
    for work_order, item, shelf_life, component, per_unit in connection.execute(text(
            """SELECT w.work_order_id, w.item_id, i.shelf_life_days, c.component_item, c.quantity_per_unit
               FROM work_orders w JOIN items i USING (item_id) LEFT JOIN work_order_components c USING (work_order_id)
               WHERE w.work_order_id = ANY(:orders) ORDER BY w.work_order_id, c.component_item"""),
            {"orders": sorted(set(work_orders))}):
        material = found.setdefault(work_order, Material(item, shelf_life, {}))
        if component is not None:
            material.per_unit[component] = per_unit
    return found


def line_sides(connection: Db, machines: Iterable[str]) -> dict[str, LineSide]:
    """The line-side location each machine consumes from and receives into, with its negative-stock policy."""
    return {machine: LineSide(location, NegativeStockPolicy(policy)) for machine, location, policy in connection.execute(text(
        """SELECT DISTINCT ON (m.machine_id) m.machine_id, l.location_id, l.negative_stock
           FROM machines m JOIN locations l ON l.kind = 'line_side' AND l.line = m.line
           WHERE m.machine_id = ANY(:machines) ORDER BY m.machine_id, l.location_id"""), {"machines": sorted(set(machines))})}


def lot_balances(connection: Db, locations: Iterable[str], items: Iterable[str]) -> dict[tuple[str, str], list[LotBalance]]:
    """On hand per known lot of these items at these locations (the unknown lot is never picked), every
    balance of these items at these locations locked until the caller's transaction ends."""
    items, locations = sorted(set(items)), sorted(set(locations))
    if not items or not locations:
        return {}
    balances: dict[tuple[str, str], list[LotBalance]] = {}
    for item, location, lot, quantity, expires, received in connection.execute(text(
            """SELECT b.item_id, b.location_id, b.lot, b.quantity, l.expires, l.received_at
               FROM lot_balances b LEFT JOIN lots l USING (item_id, lot)
               WHERE b.item_id = ANY(:items) AND b.location_id = ANY(:locations)
               ORDER BY b.item_id, b.location_id, b.lot FOR UPDATE OF b"""), {"locations": locations, "items": items}):
        if lot is not None and quantity != 0:
            balances.setdefault((item, location), []).append(LotBalance(lot, quantity, expires, received))
    return balances


def stock_for(connection: Db, work_orders: Iterable[str], machines: Iterable[str]) -> tuple[
        dict[str, Material], dict[str, LineSide], dict[tuple[str, str], list[LotBalance]]]:
    """Everything backflush needs for these orders made on these machines: materials, line sides, locked balances."""
    needs = materials(connection, work_orders)
    places = line_sides(connection, machines)
    components = {component for material in needs.values() for component in material.per_unit}
    # the made items' balances are locked with the components', in one sorted statement: a receipt into
    # them later in the batch then waits on no row while it holds others
    made = {material.item_id for material in needs.values()}
    balances = lot_balances(connection, [place.location_id for place in places.values()], components | made)
    return needs, places, {key: lots for key, lots in balances.items() if key[0] in components}


def backflush_attributed(connection: Db, rows: Iterable) -> BackflushPlan | None:
    """The backflush of production_attributions rows (with edge_id, epoch, seq, machine_id, work_order_id,
    good, scrap, last_ts) given to work orders; None when there is nothing to consume or receive."""
    units = [AttributedUnits(interval_ref(row.edge_id, row.epoch, row.seq), row.machine_id, row.work_order_id,
                             row.good, row.scrap, row.last_ts)
             for row in rows if row.work_order_id is not None and row.good + row.scrap > 0]
    if not units:
        return None
    needs, places, balances = stock_for(connection, {u.work_order_id for u in units}, {u.machine_id for u in units})
    return plan_backflush(units, needs, places, balances)


def write_backflush(connection: Db, plan: BackflushPlan) -> None:
    """The plan's lots, moves, exceptions and holds, in the caller's transaction."""
    # one statement each, not one per lot or order: a batch of the ingest names a lot per work order it counted for
    if plan.new_lots:
        connection.execute(text(
            """INSERT INTO lots (item_id, lot, expires)
               SELECT * FROM unnest(CAST(:items AS text[]), CAST(:lots AS text[]), CAST(:expires AS date[]))
               ORDER BY 1, 2 ON CONFLICT DO NOTHING"""),
            {"items": [item for item, _ in plan.new_lots], "lots": [lot for _, lot in plan.new_lots],
             "expires": list(plan.new_lots.values())})
    copy_rows(connection, "stock_moves", plan.moves)
    copy_rows(connection, "backflush_exceptions", plan.exceptions)
    if plan.held:
        connection.execute(text(
            """UPDATE work_orders w SET held_reason = h.reason
               FROM unnest(CAST(:orders AS text[]), CAST(:reasons AS text[])) AS h(work_order_id, reason)
               WHERE w.work_order_id = h.work_order_id AND w.held_reason IS NULL"""),
            {"orders": list(plan.held), "reasons": list(plan.held.values())})
