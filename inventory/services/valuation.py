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
from decimal import Decimal

import psycopg
from sqlalchemy import text
from sqlalchemy.orm import Session

from collections.abc import Callable

from inventory.rules.costing import WorkOrderCost
from inventory.rules.valuation import Issue, ItemValuation, Receipt, ValuationMethod, post
from kernel.jobs import Periodic

# The running cost of a work order so far (material, energy, machine time, labour), in the caller's
# transaction: what a production receipt is valued at. Production (mes) knows it; the application
# passes it in (app/api.py, the core's jobs), so inventory depends on no production code.
ProductionCost = Callable[[psycopg.Connection, str], WorkOrderCost]

PRODUCTION_RECEIPT = "production receipt"
_LOCK = 7_461_001  # pg_advisory_xact_lock key of the valuation worker
VALUE_COLUMNS = ("move_id", "ts", "item_id", "kind", "quantity", "value", "unit_cost", "revalued_quantity",
                 "work_order_id", "source_ref")


def value_pending(conn: psycopg.Connection, production_cost: ProductionCost, limit: int = 20_000) -> int:
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
                    so_far[work_order] = production_cost(conn, work_order)
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


def drain(conn: psycopg.Connection, production_cost: ProductionCost) -> int:
    """Value everything queued, each chunk in its own committed transaction."""
    total = 0
    while True:
        with conn.transaction():
            valued = value_pending(conn, production_cost)
        total += valued
        if not valued:
            return total


class ValuationWorker:
    """Values what is queued every `every_s` seconds in its own thread and connection, so an ingest
    batch never waits for the valuation of the moves it posted."""

    def __init__(self, database_url: str, production_cost: ProductionCost, every_s: float = 1.0):
        self.database_url = database_url
        self.production_cost = production_cost
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
            drain(self._conn, self.production_cost)
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


def _driver(session: Session) -> psycopg.Connection:
    """The session's own psycopg connection: the same transaction, for SQL shared with the core."""
    return session.connection().connection.driver_connection


def value_queued(session: Session, production_cost: ProductionCost) -> None:
    """Value everything queued in the session's transaction: what is read next includes every move
    committed before it."""
    while value_pending(_driver(session), production_cost):
        pass


def item_values(session: Session, item_id: str | None = None) -> list[dict]:
    """Quantity and value on hand per item, its method and the average cost of what is on hand (call
    with a valued session: `value_queued`)."""
    rows = session.execute(text(
        """SELECT item_id, method, quantity, value, last_known_cost FROM item_valuations
           WHERE CAST(:item AS text) IS NULL OR item_id = :item ORDER BY item_id"""), {"item": item_id}).all()
    session.commit()
    return [dict(row._mapping) for row in rows]


def value_entries(session: Session, item_id: str | None, work_order_id: str | None, limit: int) -> list[dict]:
    """The valuation ledger, newest first (call with a valued session: `value_queued`)."""
    rows = session.execute(text(
        """SELECT id, move_id, ts, item_id, kind, quantity, value, unit_cost, revalued_quantity, work_order_id, source_ref
           FROM stock_values
           WHERE (CAST(:item AS text) IS NULL OR item_id = :item) AND (CAST(:wo AS text) IS NULL OR work_order_id = :wo)
           ORDER BY id DESC LIMIT :limit"""), {"item": item_id, "wo": work_order_id, "limit": limit}).all()
    session.commit()
    return [dict(row._mapping) for row in rows]
