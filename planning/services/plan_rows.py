"""A plan's items' parts as rows of a run (`planning_runs` and its tables, migrations 0010 and 0015): written
by COPY, replaced item by item, read back whole or for some items.

Every row carries its item, so net change replaces an item's rows (`replace_parts`) without touching the
rest. A dependent demand is stored in its component's rows with the parent that placed it and its place
among what that parent placed, so a parent's `placed` reads back in its order."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from datetime import date
from decimal import Decimal
from typing import NamedTuple

from sqlalchemy import text
from sqlalchemy.orm import Session

from kernel.db.copy import copy_rows
from planning.rules.mrp import BucketRecord, Demand, ItemPlan, ItemRecord, Peg, PlanException, PlannedOrder, Supply

ITEM_TABLES = ("planning_records", "planning_planned_orders", "planning_exceptions", "planning_pegs",
               "planning_demands", "planning_supplies")

# each item's low-level code, from its first bucket: what orders a run's rows as the plan gives them
_CODES = """SELECT item_id, low_level_code FROM planning_records
            WHERE run_id = :run AND bucket_start = (SELECT start FROM planning_runs WHERE run_id = :run)"""


_BUCKET_COLUMNS = ("bucket_start", *BucketRecord._fields[1:])


class RecordRow(NamedTuple):
    run_id: int
    item_id: str
    bucket_start: date
    low_level_code: int
    on_hand: Decimal
    safety_stock: Decimal
    gross_requirements: Decimal
    scheduled_receipts: Decimal
    projected_on_hand: Decimal
    net_requirements: Decimal
    planned_receipts: Decimal
    planned_releases: Decimal


class PlannedOrderRow(NamedTuple):
    run_id: int
    planned_order_id: str
    item_id: str
    kind: str
    quantity: Decimal
    release: date
    receipt: date
    release_past_due: bool
    expected: date


class ExceptionRow(NamedTuple):
    run_id: int
    item_id: str
    position: int
    kind: str
    reference: str
    on_date: date
    to_date: date | None
    quantity: Decimal
    message: str


class PegRow(NamedTuple):
    run_id: int
    item_id: str
    position: int
    supply: str
    demand: str
    demand_of_order: str | None
    quantity: Decimal


class DemandRow(NamedTuple):
    run_id: int
    item_id: str
    position: int
    demand_id: str
    due: date
    quantity: Decimal
    kind: str
    parent_supply: str | None
    placed_by: str | None
    placed_position: int | None


class SupplyRow(NamedTuple):
    run_id: int
    item_id: str
    position: int
    supply_id: str
    due: date
    quantity: Decimal
    kind: str


def write_parts(session: Session, run_id: int, parts: Sequence[ItemPlan], placers: Iterable[ItemPlan] = ()) -> None:
    """COPY the parts' rows into the run. `placers`: parts not written whose `placed` demands some written
    part has (the parents net change did not replan), so each dependent demand names who placed it."""
    placed_by = {demand.id: (part.record.item, position)
                 for part in (*placers, *parts) for position, demand in enumerate(part.placed)}
    records, orders, exceptions, pegs, demands, supplies = [], [], [], [], [], []
    for part in parts:
        record, item = part.record, part.record.item
        records.extend(RecordRow(run_id, item, bucket.start, record.low_level_code, record.on_hand, record.safety_stock,
                                 *bucket[1:]) for bucket in record.buckets)
        orders.extend(PlannedOrderRow(run_id, order.id, item, order.kind, order.quantity, order.release, order.receipt,
                                      order.release_past_due, order.expected) for order in part.planned_orders)
        exceptions.extend(ExceptionRow(run_id, item, position, e.kind, e.reference, e.on, e.to, e.quantity, e.message)
                          for position, e in enumerate(part.exceptions))
        order_of = {demand.id: demand.parent_supply for demand in part.demands}
        pegs.extend(PegRow(run_id, item, position, peg.supply, peg.demand, order_of.get(peg.demand), peg.quantity)
                    for position, peg in enumerate(part.pegs))
        for position, demand in enumerate(part.demands):
            placer, placed_position = placed_by.get(demand.id, (None, None)) if demand.kind == "dependent" else (None, None)
            demands.append(DemandRow(run_id, item, position, demand.id, demand.due, demand.quantity, demand.kind,
                                     demand.parent_supply, placer, placed_position))
        supplies.extend(SupplyRow(run_id, item, position, supply.id, supply.due, supply.quantity, supply.kind)
                        for position, supply in enumerate(part.supplies))
    for table, rows in zip(ITEM_TABLES, (records, orders, exceptions, pegs, demands, supplies), strict=True):
        copy_rows(session, table, rows)


def delete_items(session: Session, run_id: int, items: Collection[str] | None) -> None:
    """The run's rows of these items (every item: None)."""
    if items is not None and not items:
        return
    where = "run_id = :run" if items is None else "run_id = :run AND item_id = ANY(:items)"
    *first, last = ITEM_TABLES  # one statement, one round trip
    ctes = ", ".join(f"{table} AS (DELETE FROM {table} WHERE {where})" for table in first)
    session.execute(text(f"WITH {ctes} DELETE FROM {last} WHERE {where}"), {"run": run_id, "items": list(items or ())})


def read_records(session: Session, run_id: int, items: Collection[str] | None = None) -> dict[str, ItemRecord]:
    """The items' records (every item's: None), in low-level-code order."""
    where, query = _items_filter(run_id, items)
    buckets: dict[str, list[BucketRecord]] = defaultdict(list)
    heads: dict[str, tuple[int, Decimal, Decimal]] = {}
    for item, code, on_hand, safety, *bucket in session.execute(text(
            f"""SELECT item_id, low_level_code, on_hand, safety_stock, {', '.join(_BUCKET_COLUMNS)}
                FROM planning_records WHERE {where} ORDER BY low_level_code, item_id, bucket_start"""), query):
        if item not in heads:
            heads[item] = (code, on_hand, safety)
        buckets[item].append(BucketRecord(*bucket))
    return {item: ItemRecord(item, *heads[item], tuple(rows)) for item, rows in buckets.items()}


def read_demands(session: Session, run_id: int, items: Collection[str]) -> tuple[dict[str, list[Demand]],
                                                                               dict[str, list[Demand]]]:
    """The items' demands, and of these the dependent ones per item that placed them, in the order it did."""
    found: dict[str, list[Demand]] = defaultdict(list)
    placed: dict[str, list[tuple[int, Demand]]] = defaultdict(list)
    for demand_id, item, due, quantity, kind, parent_supply, placed_by, placed_position in session.execute(text(
            """SELECT demand_id, item_id, due, quantity, kind, parent_supply, placed_by, placed_position
               FROM planning_demands WHERE run_id = :run AND item_id = ANY(:items) ORDER BY item_id, position"""),
            {"run": run_id, "items": list(items)}):
        demand = Demand(demand_id, item, due, quantity, kind, parent_supply)
        found[item].append(demand)
        if placed_by is not None:
            placed[placed_by].append((placed_position, demand))
    return found, {item: [demand for _, demand in sorted(entries, key=lambda entry: entry[0])]
                   for item, entries in placed.items()}


def read_supplies(session: Session, run_id: int, items: Collection[str]) -> dict[str, list[Supply]]:
    found: dict[str, list[Supply]] = defaultdict(list)
    for supply_id, item, due, quantity, kind in session.execute(text(
            """SELECT supply_id, item_id, due, quantity, kind FROM planning_supplies
               WHERE run_id = :run AND item_id = ANY(:items) ORDER BY item_id, position"""),
            {"run": run_id, "items": list(items)}):
        found[item].append(Supply(supply_id, item, due, quantity, kind))
    return found


def read_planned_orders(session: Session, run_id: int) -> list[PlannedOrder]:
    return [PlannedOrder(row.planned_order_id, row.item_id, row.kind, row.quantity, row.release, row.receipt,
                         row.release_past_due, row.expected) for row in session.execute(text(
                             "SELECT * FROM planning_planned_orders WHERE run_id = :run ORDER BY release, planned_order_id"),
                             {"run": run_id})]


def read_exceptions(session: Session, run_id: int) -> list[PlanException]:
    """In the order the plan gives them: by item (low-level code, then id), then within the item."""
    return [PlanException(row.kind, row.item_id, row.reference, row.on_date, row.to_date, row.quantity, row.message)
            for row in session.execute(text(
                f"""SELECT e.* FROM planning_exceptions e LEFT JOIN ({_CODES}) c USING (item_id)
                   WHERE e.run_id = :run ORDER BY c.low_level_code, e.item_id, e.position, e.id"""), {"run": run_id})]


def read_pegs(session: Session, run_id: int) -> tuple[list[Peg], dict[str, str]]:
    """The pegs, and each component demand's order (what links the levels)."""
    pegs, order_of = [], {}
    for row in session.execute(text(
            f"""SELECT p.* FROM planning_pegs p LEFT JOIN ({_CODES}) c USING (item_id)
                WHERE p.run_id = :run ORDER BY c.low_level_code, p.item_id, p.position, p.id"""), {"run": run_id}):
        pegs.append(Peg(row.supply, row.demand, row.item_id, row.quantity))
        if row.demand_of_order is not None:
            order_of[row.demand] = row.demand_of_order
    return pegs, order_of


def has_name(session: Session, run_id: int, name: str) -> bool:
    """Whether the run has a demand or a supply of that id (or a peg names it: a run kept before 0015)."""
    return bool(session.execute(text(
        """SELECT EXISTS (SELECT FROM planning_demands WHERE run_id = :run AND demand_id = :name)
               OR EXISTS (SELECT FROM planning_supplies WHERE run_id = :run AND supply_id = :name)
               OR EXISTS (SELECT FROM planning_pegs WHERE run_id = :run AND (supply = :name OR demand = :name))"""),
        {"run": run_id, "name": name}).scalar())


def _items_filter(run_id: int, items: Collection[str] | None) -> tuple[str, dict]:
    if items is None:
        return "run_id = :run", {"run": run_id}
    return "run_id = :run AND item_id = ANY(:items)", {"run": run_id, "items": list(items)}
