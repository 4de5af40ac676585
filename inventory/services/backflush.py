"""Backflush against the stock ledger: what the rules need, read with the lots locked, and the moves written.

Used inside the caller's transaction by the ingest (every batch's attributed counts) and by the
services that backflush later (units a supervisor re-assigns, a hold that is released) and the
documents that pick lots (shipments, transfers). `connection` is a SQLAlchemy Session or Connection.

Locking, stated: balances are sums over the ledger, so what is locked is the `lots` rows of the items
read, in (item, lot) order, before their balances are read (a new statement, so it sees what the last
holder committed). Two writers that take stock of the same item therefore never both see the same
balance: under the `block` policy a lot cannot be taken below zero. Stock booked without a lot has no
row to lock; only the `allow` policy ever takes from it.
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
    """On hand per known lot of these items at these locations (the unknown lot is never picked), the
    items' lots locked until the caller's transaction ends."""
    items = sorted(set(items))
    if not items:
        return {}
    connection.execute(text("SELECT 1 FROM lots WHERE item_id = ANY(:items) ORDER BY item_id, lot FOR UPDATE"),
                       {"items": items})
    balances: dict[tuple[str, str], list[LotBalance]] = {}
    for item, location, lot, quantity, expires, received in connection.execute(text(
            """SELECT s.item_id, s.location_id, s.lot, s.quantity, l.expires, l.received_at
               FROM stock_on_hand s JOIN lots l USING (item_id, lot)
               WHERE s.location_id = ANY(:locations) AND s.item_id = ANY(:items)
               ORDER BY s.item_id, s.location_id, s.lot"""), {"locations": sorted(set(locations)), "items": items}):
        balances.setdefault((item, location), []).append(LotBalance(lot, quantity, expires, received))
    return balances


def stock_for(connection: Db, work_orders: Iterable[str], machines: Iterable[str]) -> tuple[
        dict[str, Material], dict[str, LineSide], dict[tuple[str, str], list[LotBalance]]]:
    """Everything backflush needs for these orders made on these machines: materials, line sides, locked balances."""
    needs = materials(connection, work_orders)
    places = line_sides(connection, machines)
    components = {component for material in needs.values() for component in material.per_unit}
    return needs, places, lot_balances(connection, [place.location_id for place in places.values()], components)


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
    if plan.new_lots:
        connection.execute(text("INSERT INTO lots (item_id, lot, expires) VALUES (:item, :lot, :expires) ON CONFLICT DO NOTHING"),
                           [{"item": item, "lot": lot, "expires": expires} for (item, lot), expires in plan.new_lots.items()])
    copy_rows(connection, "stock_moves", plan.moves)
    copy_rows(connection, "backflush_exceptions", plan.exceptions)
    if plan.held:
        connection.execute(text("UPDATE work_orders SET held_reason = :reason WHERE work_order_id = :order AND held_reason IS NULL"),
                           [{"reason": reason, "order": work_order} for work_order, reason in plan.held.items()])
