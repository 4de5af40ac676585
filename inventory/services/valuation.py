"""The valuation worker: every move into or out of the plant is valued exactly once.

A statement trigger queues such moves in `moves_to_value` in the transaction that posts them (the
ingest's COPY included). `value_pending` takes queued moves oldest first, prices them with the
item's method (`inventory.rules.valuation`), appends the entries to `stock_values` (COPY,
`kernel.db.copy`), saves every item's state in `item_valuations` (one upsert) and deletes the moves
from the queue, all in the transaction of the caller's Session: committed together or not at all, so
no move is valued twice or left out.

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
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from inventory.rules.costing import WorkOrderCost
from inventory.rules.valuation import Issue, ItemValuation, Receipt, ValuationMethod, post
from kernel.db.copy import copy_rows
from kernel.db.models import make_engine

# The running cost of a work order so far (material, energy, machine time, labour), in the caller's
# transaction: what a production receipt is valued at. Production (mes) knows it; the application
# passes it in (app/api.py, the core's jobs), so inventory depends on no production code.
ProductionCost = Callable[[Session, str], WorkOrderCost]

PRODUCTION_RECEIPT = "production receipt"
_LOCK = 7_461_001  # pg_advisory_xact_lock key of the valuation worker


class StockValue(NamedTuple):
    """A `stock_values` row as the valuation appends it (`id` and `valued_at` are the database's)."""

    move_id: int
    ts: datetime
    item_id: str
    kind: str
    quantity: Decimal
    value: Decimal
    unit_cost: Decimal
    revalued_quantity: Decimal
    work_order_id: str | None
    source_ref: str


def value_pending(session: Session, production_cost: ProductionCost, limit: int = 20_000) -> int:
    """Value up to `limit` queued moves inside the session's transaction; how many were valued."""
    session.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": _LOCK})
    moves = session.execute(text(
        """WITH taken AS (DELETE FROM moves_to_value WHERE move_id IN (
                              SELECT move_id FROM moves_to_value ORDER BY move_id LIMIT :limit)
                          RETURNING move_id)
           SELECT m.id, m.ts, m.item_id, m.from_location IS NULL AS is_receipt, m.quantity, m.unit_cost, m.reason,
                  m.source_ref, m.work_order_id
           FROM stock_moves m JOIN taken t ON t.move_id = m.id ORDER BY m.id"""), {"limit": limit}).all()
    if not moves:
        return 0
    items = sorted({move.item_id for move in moves})
    states = _load_states(session, items)
    standard = dict(session.execute(text("SELECT item_id, standard_cost FROM items WHERE item_id = ANY(:items)"),
                                    {"items": items}).all())
    rows: list[StockValue] = []
    consumed_now: dict[str, Decimal] = {}  # work order -> material valued in this pass, not yet written
    so_far: dict[str, WorkOrderCost] = {}
    for move in moves:
        order = move.work_order_id
        state = states[move.item_id]
        fallback = state.last_known_cost if state.last_known_cost is not None else (standard[move.item_id] or Decimal(0))
        if move.is_receipt:
            cost = move.unit_cost
            if cost is None and move.reason == PRODUCTION_RECEIPT and order is not None:
                if order not in so_far:  # once per order and pass: its energy, machine time and labour
                    so_far[order] = production_cost(session, order)
                cost = so_far[order].with_material(consumed_now.get(order, Decimal(0))).unit_cost
            event: Receipt | Issue = Receipt(move.quantity, fallback if cost is None else cost)
        else:
            event = Issue(move.quantity)
        states[move.item_id], entries = post(state, event, fallback)
        for entry in entries:
            rows.append(StockValue(move.id, move.ts, move.item_id, entry.kind.value, entry.quantity, entry.value,
                                   entry.unit_cost, entry.revalued_quantity, order, move.source_ref))
            if move.reason == "backflush" and order is not None:
                consumed_now[order] = consumed_now.get(order, Decimal(0)) - entry.value
    copy_rows(session, "stock_values", rows)
    _save_states(session, {item: states[item] for item in items})
    return len(moves)


def drain(session: Session, production_cost: ProductionCost) -> int:
    """Value everything queued, each chunk in a transaction of the session's own, committed."""
    total = 0
    while True:
        valued = value_pending(session, production_cost)
        session.commit()
        total += valued
        if not valued:
            return total


class ValuationWorker:
    """The core's job that values what is queued, every second or so in a thread and connection of its
    own (`kernel.jobs`), so an ingest batch never waits for the valuation of the moves it posted."""

    def __init__(self, database_url: str, production_cost: ProductionCost):
        self.database_url = database_url
        self.production_cost = production_cost
        self._engine = make_engine(database_url)

    def close(self) -> None:
        self._engine.dispose()

    def round(self) -> None:
        """Value everything queued; after a database error the next round starts on a new connection."""
        try:
            with Session(self._engine) as session:
                drain(session, self.production_cost)
        except DBAPIError:
            self._engine.dispose()  # whatever broke the connection may have broken the pooled ones too
            raise


def _load_states(session: Session, items: list[str]) -> dict[str, ItemValuation]:
    stored = {row.item_id: row for row in session.execute(text(
        """SELECT item_id, method, quantity, value, last_known_cost, layers, shortfall FROM item_valuations
           WHERE item_id = ANY(:items)"""), {"items": items})}
    states = {}
    for item, method in session.execute(text("SELECT item_id, valuation FROM items WHERE item_id = ANY(:items)"), {"items": items}):
        row = stored.get(item)
        states[item] = ItemValuation(ValuationMethod(method)) if row is None else ItemValuation(
            ValuationMethod(row.method), row.quantity, row.value, row.last_known_cost,
            _layers_from_json(row.layers), _layers_from_json(row.shortfall))
    return states


def _save_states(session: Session, states: dict[str, ItemValuation]) -> None:
    """Every item's new state in one statement."""
    fields = [state.as_fields() for state in states.values()]
    session.execute(text(
        """INSERT INTO item_valuations (item_id, method, quantity, value, last_known_cost, layers, shortfall)
           SELECT item_id, method, quantity, value, last_known_cost, CAST(layers AS jsonb), CAST(shortfall AS jsonb)
           FROM unnest(CAST(:items AS text[]), CAST(:methods AS text[]), CAST(:quantities AS numeric[]),
                       CAST(:values AS numeric[]), CAST(:last_known_costs AS numeric[]), CAST(:layers AS text[]),
                       CAST(:shortfalls AS text[]))
                AS state(item_id, method, quantity, value, last_known_cost, layers, shortfall)
           ON CONFLICT (item_id) DO UPDATE SET method = EXCLUDED.method, quantity = EXCLUDED.quantity,
               value = EXCLUDED.value, last_known_cost = EXCLUDED.last_known_cost, layers = EXCLUDED.layers,
               shortfall = EXCLUDED.shortfall"""),
        {"items": list(states), "methods": [f["method"] for f in fields], "quantities": [f["quantity"] for f in fields],
         "values": [f["value"] for f in fields], "last_known_costs": [f["last_known_cost"] for f in fields],
         "layers": [_layers_as_json(f["layers"]) for f in fields], "shortfalls": [_layers_as_json(f["shortfall"]) for f in fields]})


def _layers_from_json(layers: list) -> tuple:
    return tuple(tuple(Decimal(part) for part in layer) for layer in layers)


def _layers_as_json(layers: list) -> str:
    return json.dumps([[str(part) for part in layer] for layer in layers])  # text keeps Decimals exact


def value_queued(session: Session, production_cost: ProductionCost) -> None:
    """Value everything queued in the session's transaction: what is read next includes every move
    committed before it."""
    while value_pending(session, production_cost):
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
