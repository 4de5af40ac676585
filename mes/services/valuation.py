"""The valuation worker: every move into or out of the plant is valued exactly once.

A statement trigger queues such moves in `moves_to_value` in the transaction that posts them (the
ingest's COPY included). `value_pending` takes queued moves oldest first, prices them with the
item's method (`inventory.rules.valuation`), appends the entries to `stock_values`, saves each
item's state in `item_valuations` and deletes the moves from the queue, all in the caller's
transaction: committed together or not at all, so no move is valued twice or left out.

One valuation runs at a time (a transaction-level advisory lock): it is quick, and items must be
valued in posting order.

Costs, stated:
- A receipt with a unit cost (a goods receipt, opening stock) enters at that cost.
- A finished-goods receipt from production enters at its work order's actual cost per good unit so
  far (material valued up to and including this interval's consumption; energy, machine time and
  labour as of this pass): live while the order runs. Each receipt is valued once, at the running cost of its
  moment; the order's final cost can differ from the sum of its receipts' values, and
  `GET /work-orders/{id}/cost` shows that difference as `not_absorbed`.
- Any other receipt without a cost (a stocktake gain, a customer return) enters at the item's last
  known cost, else its standard cost, else 0.
- An issue leaves at the method's cost; an issue beyond stock at the last known cost, trued up by
  the next receipt (an entry of its own).
- An item keeps the method it was first valued with; changing `items.valuation` later does not
  re-value history.

The readers of values (`item_values`, `work_order_costing`) value what is queued first, in their
own transaction: what a person reads includes every move committed before the request.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import psycopg
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from inventory.rules.costing import Routing as CostRouting
from inventory.rules.costing import StandardCost, WorkOrderCost, standard_costs, variances
from inventory.rules.valuation import Issue, ItemValuation, Receipt, ValuationMethod, post
from mes.models import Item, Routing, WorkCentre, WorkOrder
from mes.services import Conflict
from mes.services.background import Periodic
from mes.services.costing import DEFAULT_TARIFF, load_tariff, work_order_cost
from mes.services.masterdata import exploded, get

PRODUCTION_RECEIPT = "production receipt"
_LOCK = 7_461_001  # pg_advisory_xact_lock key of the valuation worker
VALUE_COLUMNS = ("move_id", "ts", "item_id", "kind", "quantity", "value", "unit_cost", "revalued_quantity",
                 "work_order_id", "source_ref")


def value_pending(conn: psycopg.Connection, limit: int = 20_000) -> int:
    """Value up to `limit` queued moves inside the caller's transaction; how many were valued."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
    moves = conn.execute(
        """WITH taken AS (DELETE FROM moves_to_value WHERE move_id IN (
                              SELECT move_id FROM moves_to_value ORDER BY move_id LIMIT %s)
                          RETURNING move_id)
           SELECT m.id, m.ts, m.item_id, m.from_location IS NULL, m.quantity, m.unit_cost, m.reason, m.source_ref,
                  m.work_order_id
           FROM stock_moves m JOIN taken t ON t.move_id = m.id ORDER BY m.id""", (limit,)).fetchall()
    if not moves:
        return 0
    items = sorted({move[2] for move in moves})
    states = _load_states(conn, items)
    standard = dict(conn.execute("SELECT item_id, standard_cost FROM items WHERE item_id = ANY(%s)", (items,)).fetchall())
    rows: list[tuple] = []
    consumed_now: dict[str, Decimal] = {}  # work order -> material valued in this pass, not yet written
    so_far: dict[str, WorkOrderCost] = {}
    for move_id, ts, item, is_receipt, quantity, unit_cost, reason, source_ref, work_order in moves:
        state = states[item]
        fallback = state.last_known_cost if state.last_known_cost is not None else (standard[item] or Decimal(0))
        if is_receipt:
            cost = unit_cost
            if cost is None and reason == PRODUCTION_RECEIPT and work_order is not None:
                if work_order not in so_far:  # once per order and pass: its energy, machine time and labour
                    so_far[work_order] = work_order_cost(conn, work_order).cost
                cost = _with_material(so_far[work_order], consumed_now.get(work_order, Decimal(0))).unit_cost
            event: Receipt | Issue = Receipt(quantity, fallback if cost is None else cost)
        else:
            event = Issue(quantity)
        states[item], entries = post(state, event, fallback)
        for entry in entries:
            rows.append((move_id, ts, item, entry.kind.value, entry.quantity, entry.value, entry.unit_cost,
                         entry.revalued_quantity, work_order, source_ref))
            if reason == "backflush" and work_order is not None:
                consumed_now[work_order] = consumed_now.get(work_order, Decimal(0)) - entry.value
    with conn.cursor() as cur:
        with cur.copy(f"COPY stock_values ({', '.join(VALUE_COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cur.executemany(
            """INSERT INTO item_valuations (item_id, method, quantity, value, last_known_cost, layers, shortfall)
               VALUES (%s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (item_id) DO UPDATE SET method = EXCLUDED.method, quantity = EXCLUDED.quantity,
                   value = EXCLUDED.value, last_known_cost = EXCLUDED.last_known_cost, layers = EXCLUDED.layers,
                   shortfall = EXCLUDED.shortfall""",
            [(item, *_state_row(states[item])) for item in items])
    return len(moves)


def _with_material(cost: WorkOrderCost, more: Decimal) -> WorkOrderCost:
    return WorkOrderCost(material=cost.material + more, energy=cost.energy, machine=cost.machine, labour=cost.labour,
                         good=cost.good, scrap=cost.scrap)


def drain(conn: psycopg.Connection) -> int:
    """Value everything queued, each chunk in its own committed transaction."""
    total = 0
    while True:
        with conn.transaction():
            valued = value_pending(conn)
        total += valued
        if not valued:
            return total


class ValuationWorker:
    """Values what is queued every `every_s` seconds in its own thread and connection, so an ingest
    batch never waits for the valuation of the moves it posted."""

    def __init__(self, database_url: str, every_s: float = 1.0):
        self.database_url = database_url
        self._conn: psycopg.Connection | None = None
        self._rounds = Periodic("mes-valuation", every_s, self.round)

    def start(self) -> None:
        self._rounds.start()

    def stop(self) -> None:
        self._rounds.stop()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def round(self) -> None:
        """Value everything queued; after a database error the next round starts on a new connection."""
        try:
            if self._conn is None:
                self._conn = psycopg.connect(self.database_url, autocommit=True)
            drain(self._conn)
        except psycopg.Error:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            raise


def _load_states(conn: psycopg.Connection, items: list[str]) -> dict[str, ItemValuation]:
    stored = {row[0]: row[1:] for row in conn.execute(
        """SELECT item_id, method, quantity, value, last_known_cost, layers, shortfall FROM item_valuations
           WHERE item_id = ANY(%s)""", (items,))}
    states = {}
    for item, method in conn.execute("SELECT item_id, valuation FROM items WHERE item_id = ANY(%s)", (items,)):
        if item in stored:
            kept_method, quantity, value, last, layers, shortfall = stored[item]
            states[item] = ItemValuation(ValuationMethod(kept_method), quantity, value, last,
                                         _layers_from_json(layers), _layers_from_json(shortfall))
        else:
            states[item] = ItemValuation(ValuationMethod(method))
    return states


def _layers_from_json(layers: list) -> tuple:
    return tuple(tuple(Decimal(part) for part in layer) for layer in layers)


def _layers_as_json(layers: list) -> str:
    return json.dumps([[str(part) for part in layer] for layer in layers])  # text keeps Decimals exact


def _state_row(state: ItemValuation) -> tuple:
    fields = state.as_fields()
    return (fields["method"], fields["quantity"], fields["value"], fields["last_known_cost"],
            _layers_as_json(fields["layers"]), _layers_as_json(fields["shortfall"]))


def standard_cost(session: Session, item_id: str, on: date | None = None) -> StandardCost:
    """The item's standard cost per unit, rolled up through the BOMs in force `on` (default today)
    and the routings. A bought item costs its standard (purchase) cost."""
    on = on or date.today()
    get(session, Item, item_id, "item")
    items = {item.item_id: item for item in session.scalars(select(Item))}
    bom: dict[str, list[tuple[str, Decimal, Decimal]]] = {}
    routing: dict[str, CostRouting] = {}
    purchased: dict[str, Decimal] = {}
    pending = [item_id]
    while pending:
        item = items[pending.pop()]
        if item.item_id in bom or item.item_id in purchased:
            continue
        if item.kind == "buy":
            if item.standard_cost is None:
                raise Conflict(f"bought item {item.item_id!r} has no standard cost")
            purchased[item.item_id] = item.standard_cost
            continue
        # exploded: per-unit quantities with phantoms and scrap factors already applied
        bom[item.item_id] = [(component, quantity, Decimal(0))
                             for component, quantity in exploded(session, item.item_id, on).items()]
        found = session.get(Routing, item.item_id)
        if found is not None:
            centre = session.get(WorkCentre, found.work_centre_id)
            tariff = load_tariff(_driver(session), centre.tariff_id or DEFAULT_TARIFF)
            routing[item.item_id] = CostRouting(found.ideal_cycle_s, centre.hourly_rate, found.energy_wh_per_unit,
                                                tariff.default_price_per_kwh if tariff else Decimal(0),
                                                found.labour_s_per_unit, found.labour_rate)
        pending.extend(component for component, _, _ in bom[item.item_id])
    try:
        return standard_costs(bom, purchased, routing)[item_id]
    except ValueError as error:
        raise Conflict(f"no standard cost for {item_id}: {error}") from None


def work_order_costing(session: Session, work_order_id: str) -> dict:
    """Actual cost so far, standard, variances, and how much of the cost the finished goods carry."""
    work_order = get(session, WorkOrder, work_order_id, "work order")
    conn = _driver(session)
    value_pending(conn)
    actual = work_order_cost(conn, work_order_id)
    received = conn.execute(
        """SELECT coalesce(sum(v.value), 0) FROM stock_values v JOIN stock_moves m ON m.id = v.move_id
           WHERE m.work_order_id = %s AND m.reason = 'production receipt'""", (work_order_id,)).fetchone()[0]
    try:
        standard: StandardCost | None = standard_cost(session, work_order.item_id)
        notes = list(actual.notes)
    except Conflict as error:
        standard, notes = None, [*actual.notes, str(error)]
    session.commit()
    return {
        "work_order_id": work_order_id, "actual": actual.cost, "run_seconds": actual.run_seconds, "energy_wh": actual.energy_wh,
        "standard_per_unit": standard, "variances": None if standard is None else variances(actual.cost, standard),
        "finished_goods_value": received, "not_absorbed": actual.cost.total - received, "notes": notes,
    }


def _driver(session: Session) -> psycopg.Connection:
    """The session's own psycopg connection: the same transaction, for SQL shared with the core."""
    return session.connection().connection.driver_connection


def item_values(session: Session, item_id: str | None = None) -> list[dict]:
    """Quantity and value on hand per item, its method and the average cost of what is on hand."""
    value_pending(_driver(session))
    rows = session.execute(text(
        """SELECT item_id, method, quantity, value, last_known_cost FROM item_valuations
           WHERE CAST(:item AS text) IS NULL OR item_id = :item ORDER BY item_id"""), {"item": item_id}).all()
    session.commit()
    return [dict(row._mapping) for row in rows]


def value_entries(session: Session, item_id: str | None, work_order_id: str | None, limit: int) -> list[dict]:
    value_pending(_driver(session))
    rows = session.execute(text(
        """SELECT id, move_id, ts, item_id, kind, quantity, value, unit_cost, revalued_quantity, work_order_id, source_ref
           FROM stock_values
           WHERE (CAST(:item AS text) IS NULL OR item_id = :item) AND (CAST(:wo AS text) IS NULL OR work_order_id = :wo)
           ORDER BY id DESC LIMIT :limit"""), {"item": item_id, "wo": work_order_id, "limit": limit}).all()
    session.commit()
    return [dict(row._mapping) for row in rows]
