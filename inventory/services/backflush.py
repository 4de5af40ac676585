"""Backflush against the stock ledger: what the rules need for counted units, and the moves they decided.

Used by the ingest for every batch's attributed counts, and by the work-order services for units a
supervisor re-assigns or a hold that is released; all of it inside the caller's transaction.
"""

from __future__ import annotations

import psycopg

from inventory.rules import backflush as rules
from inventory.rules.backflush import AttributedUnits, BackflushPlan, LineSide, Material
from inventory.rules.lots import LotBalance, NegativeStockPolicy
from kernel.db.copy import copy_rows


def source_ref(edge_id: str, epoch: int, seq: int) -> str:
    """The production interval (one ingested message) a stock move comes from."""
    return f"interval:{edge_id}/{epoch}/{seq}"


def plan_backflush(conn: psycopg.Connection, attributions: list[tuple]) -> BackflushPlan | None:
    """Load what backflush needs for these attribution rows and plan it, inside the caller's transaction."""
    units = [AttributedUnits(source_ref(edge, epoch, seq), machine, work_order, good, scrap, last_ts)
             for edge, epoch, seq, machine, work_order, good, scrap, _, _, last_ts in attributions
             if work_order is not None and good + scrap > 0]
    if not units:
        return None
    work_orders = sorted({u.work_order_id for u in units})
    machines = sorted({u.machine_id for u in units})
    materials: dict[str, Material] = {}
    for work_order, item, shelf_life, component, per_unit in conn.execute(
            """SELECT w.work_order_id, w.item_id, i.shelf_life_days, c.component_item, c.quantity_per_unit
               FROM work_orders w JOIN items i USING (item_id) LEFT JOIN work_order_components c USING (work_order_id)
               WHERE w.work_order_id = ANY(%s)""", (work_orders,)):
        material = materials.setdefault(work_order, Material(item, shelf_life, {}))
        if component is not None:
            material.per_unit[component] = per_unit
    line_side = {machine: LineSide(location, NegativeStockPolicy(policy)) for machine, location, policy in conn.execute(
        """SELECT DISTINCT ON (m.machine_id) m.machine_id, l.location_id, l.negative_stock
           FROM machines m JOIN locations l ON l.kind = 'line_side' AND l.line = m.line
           WHERE m.machine_id = ANY(%s) ORDER BY m.machine_id, l.location_id""", (machines,))}
    components = sorted({c for m in materials.values() for c in m.per_unit})
    balances = lot_balances(conn, [p.location_id for p in line_side.values()], components)
    return rules.plan_backflush(units, materials, line_side, balances)


def lot_balances(conn: psycopg.Connection, locations: list[str], items: list[str]) -> dict[tuple[str, str], list[LotBalance]]:
    """On hand per known lot of these items at these locations (the unknown lot is never picked)."""
    balances: dict[tuple[str, str], list[LotBalance]] = {}
    for item, location, lot, quantity, expires, received in conn.execute(
            """SELECT s.item_id, s.location_id, s.lot, s.quantity, l.expires, l.received_at
               FROM stock_on_hand s JOIN lots l USING (item_id, lot)
               WHERE s.location_id = ANY(%s) AND s.item_id = ANY(%s)""", (locations, items)):
        balances.setdefault((item, location), []).append(LotBalance(lot, quantity, expires, received))
    return balances


MOVE_COLUMNS = ("ts", "item_id", "lot", "from_location", "to_location", "quantity", "reason", "source_ref", "work_order_id")
EXCEPTION_COLUMNS = ("ts", "source_ref", "work_order_id", "item_id", "location_id", "quantity", "kind", "reason")


def write_backflush(cur: psycopg.Cursor, plan: BackflushPlan) -> None:
    if plan.new_lots:
        cur.executemany("INSERT INTO lots (item_id, lot, expires) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                        [(item, lot, expires) for (item, lot), expires in plan.new_lots.items()])
    copy_rows(cur, "stock_moves", MOVE_COLUMNS, plan.moves)
    copy_rows(cur, "backflush_exceptions", EXCEPTION_COLUMNS, plan.exceptions)
    if plan.held:
        cur.executemany("UPDATE work_orders SET held_reason = %s WHERE work_order_id = %s AND held_reason IS NULL",
                        [(reason, work_order) for work_order, reason in plan.held.items()])


