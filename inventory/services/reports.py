"""Inventory KPIs and reports: load the frames `inventory.rules.reports` needs from the ledgers, run its functions.

Every report that shows values is read from a valued session (`valuation.value_queued`, in the request's
transaction, committed with it: the router's `ValuedDb`) and reads moves and values in ONE statement that leaves out any move still queued: a move
committed by the ingest between the two steps waits for the next report instead of showing up without a value.

Values, stated:
- A move into or out of the plant is worth what the valuation ledger booked for it: Σ `stock_values.value`
  of its `move_id` (a receipt's true-up included), + for a receipt, − for an issue. A move the valuation never
  saw (posted before valuation existed, migration 0004) has no entries and counts as 0, as in `item_valuations`.
- A move between two locations has no value entries. Each of its legs is worth quantity × the item's moving
  average at that moment: Σ value / Σ quantity of the item's entries for the moves posted before it (the
  valuation works in posting order, so "before" is by move id), rounded once to 0.000001 ROUND_HALF_EVEN from
  the exact quotient. When the item held nothing (or less) at that moment, its last known cost is used, else
  its standard cost, else 0. Both legs carry the same value, so an item's total over its locations is exact.
- Stock on hand at `as_of` (value by location, aging, days of supply) is the ledger's balance per item,
  location and lot of the moves up to and including `as_of`. The item's value then is Σ of its value entries
  up to `as_of`; it is spread over its balances at that average (Σ value / Σ quantity), each balance rounded
  once to 0.000001, and the last balance (by location, then lot) takes what is left, so the balances of an
  item add up to its value exactly. The same average for FIFO items: FIFO layers are receipts, not lots
  (see `inventory.rules.valuation`), so no lot has a cost of its own.
- Age: a lot's `received_at` (when the lot was first received). Stock of no lot has no known receipt
  and shows in the bucket "unknown".
- Purchase price trend: goods receipts (reason 'goods receipt') with their unit cost; the supplier is the
  purchase order's, found from the receipt's source_ref `po:<po_id>/...`.
- Margins: shipments (reason 'shipment', source_ref `so:<so_id>/shipment:<n>`). Revenue = quantity × the
  unit price of the order's line of that item; cost = what the valuation booked for the move (its issue
  value, made positive). An order with several lines of one item: its shipments of the item fill the lines
  in line order (by line id as text, up to each line's ordered quantity; the last line takes any excess),
  each part at its line's price. An item shipped that is on no line of the order earns 0. Customer returns
  are not netted against the order.
- Issues (turnover, days of supply): every move out of the plant, whatever its reason.

Cost of a report: turnover brings every move before `end` into Python (its opening value is their sum); days
of supply only its window's moves; the stock reports only the balances. To value transfers, the database runs
through the whole ledger once per query (a window over the moves by item and id).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal, localcontext
from fractions import Fraction

import pandas as pd
from sqlalchemy import text
from sqlalchemy.orm import Session

from inventory.rules import reports
from kernel.rules.quantities import EXACT
from inventory.rules.operations import GOODS_RECEIPT, SHIPMENT
from inventory.models import Supplier
from kernel.db.unit_of_work import get

MONEY_QUANTUM = Fraction(1, 10**6)
DEFAULT_PERIOD = timedelta(days=30)
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class ReportParameters:
    """What a report is about. Every report reads the ones it needs; `ReportParameters.defaults` fills the rest."""

    start: datetime
    end: datetime
    as_of: datetime
    days: int = reports.DEFAULT_SUPPLY_DAYS
    by: tuple[str, ...] = ("item_id",)
    bounds: tuple[int, ...] = reports.DEFAULT_AGE_BOUNDS
    supplier_id: str | None = None
    tz: tzinfo = UTC

    @classmethod
    def defaults(cls, now: datetime, start: datetime | None = None, end: datetime | None = None,
                 as_of: datetime | None = None, **others) -> ReportParameters:
        """The period ends at `now` and lasts 30 days unless given; `as_of` is `now` unless given."""
        end = end or now
        return cls(start=start or end - DEFAULT_PERIOD, end=end, as_of=as_of or now, **others)


# -- the reports ------------------------------------------------------------------------------------------

def turnover(session: Session, start: datetime, end: datetime, by: Iterable[str] = ("item_id",)) -> pd.DataFrame:
    frame = reports.inventory_turnover(_moves(session, before=end), start, end, by=tuple(by))
    session.commit()
    return frame


def days_of_supply(session: Session, as_of: datetime, days: int = reports.DEFAULT_SUPPLY_DAYS) -> pd.DataFrame:
    frame = reports.days_of_supply(_on_hand(session, as_of), _moves(session, before=as_of, since=as_of - timedelta(days=days)),
                                   as_of, days)
    session.commit()
    return frame


def aging(session: Session, as_of: datetime, bounds: Iterable[int] = reports.DEFAULT_AGE_BOUNDS) -> pd.DataFrame:
    frame = reports.aging_buckets(_on_hand(session, as_of), as_of, tuple(bounds))
    session.commit()
    return frame


def value_by_location(session: Session, as_of: datetime) -> pd.DataFrame:
    frame = reports.value_by_location(_on_hand(session, as_of))
    session.commit()
    return frame


def purchase_price_trend(session: Session, start: datetime, end: datetime, supplier_id: str | None = None,
                         tz: tzinfo = UTC) -> pd.DataFrame:
    """Receipts of every supplier, or of `supplier_id` only (404 when there is no such supplier)."""
    if supplier_id is not None:
        get(session, Supplier, supplier_id, "supplier")
    rows = session.execute(text(
        """SELECT m.ts, m.item_id, m.quantity, m.unit_cost
           FROM stock_moves m
           LEFT JOIN purchase_orders po ON m.source_ref LIKE 'po:%' AND po.po_id = split_part(substr(m.source_ref, 4), '/', 1)
           WHERE m.reason = :reason AND m.unit_cost IS NOT NULL AND m.from_location IS NULL
             AND m.ts >= :start AND m.ts < :end AND (CAST(:supplier AS text) IS NULL OR po.supplier_id = :supplier)
           ORDER BY m.id"""), {"reason": GOODS_RECEIPT, "start": start, "end": end, "supplier": supplier_id}).all()
    frame = reports.purchase_price_trend(_frame(rows, ("ts", "item_id", "quantity", "unit_cost")), start, end, tz)
    session.commit()
    return frame


def margins(session: Session, start: datetime, end: datetime) -> pd.DataFrame:
    frame = reports.margin_per_order(_shipments(session, start, end), start, end)
    session.commit()
    return frame


REPORTS = {
    "turnover": lambda session, p: turnover(session, p.start, p.end, p.by),
    "days-of-supply": lambda session, p: days_of_supply(session, p.as_of, p.days),
    "aging": lambda session, p: aging(session, p.as_of, p.bounds),
    "value-by-location": lambda session, p: value_by_location(session, p.as_of),
    "purchase-price-trend": lambda session, p: purchase_price_trend(session, p.start, p.end, p.supplier_id, p.tz),
    "margins": lambda session, p: margins(session, p.start, p.end),
}


def report(session: Session, name: str, parameters: ReportParameters) -> pd.DataFrame:
    """One report by its name (a key of `REPORTS`)."""
    if name not in REPORTS:
        raise ValueError(f"there is no report {name!r}; the reports are {', '.join(REPORTS)}")
    return REPORTS[name](session, parameters)


def every_report(session: Session, parameters: ReportParameters) -> dict[str, pd.DataFrame]:
    """Every report by name, in the order of `REPORTS` (one sheet each in a workbook)."""
    return {name: report(session, name, parameters) for name in REPORTS}


# -- loading ------------------------------------------------------------------------------------------------

_NOT_QUEUED = "NOT EXISTS (SELECT 1 FROM moves_to_value q WHERE q.move_id = m.id)"

_MOVES = text(f"""
    WITH booked AS (SELECT move_id, sum(value) AS value, sum(quantity) AS quantity FROM stock_values GROUP BY move_id),
    ledger AS (
        SELECT m.id, m.ts, m.item_id, m.from_location, m.to_location, m.quantity, m.reason, b.value AS booked,
               sum(coalesce(b.value, 0)) OVER running AS value_so_far,
               sum(coalesce(b.quantity, 0)) OVER running AS quantity_so_far
        FROM stock_moves m LEFT JOIN booked b ON b.move_id = m.id
        WHERE {_NOT_QUEUED}
        WINDOW running AS (PARTITION BY m.item_id ORDER BY m.id))
    SELECT l.ts, l.item_id, l.from_location, l.to_location, l.quantity, l.reason, l.booked, l.value_so_far,
           l.quantity_so_far, coalesce(v.last_known_cost, i.standard_cost, 0) AS fallback_cost
    FROM ledger l JOIN items i USING (item_id) LEFT JOIN item_valuations v USING (item_id)
    WHERE l.ts < :before AND (CAST(:since AS timestamptz) IS NULL OR l.ts >= :since)
    ORDER BY l.id""")


def _moves(session: Session, before: datetime, since: datetime | None = None) -> pd.DataFrame:
    """The ledger's moves in [since, before) with their value (see the module docstring)."""
    rows = []
    for ts, item, origin, destination, quantity, reason, booked, value_so_far, quantity_so_far, fallback in session.execute(
            _MOVES, {"before": before, "since": since}):
        if origin is not None and destination is not None:
            value = _money(Fraction(quantity) * (Fraction(value_so_far) / Fraction(quantity_so_far) if quantity_so_far > 0
                                                 else Fraction(fallback)))
        else:
            booked = booked or ZERO
            value = booked if origin is None else -booked
        rows.append((ts, item, origin, destination, quantity, reason, value))
    return _frame(rows, ("ts", "item_id", "from_location", "to_location", "quantity", "reason", "value"))


_ON_HAND = text(f"""
    WITH legs AS (
        SELECT m.item_id, m.to_location AS location_id, m.lot, m.quantity FROM stock_moves m
        WHERE m.to_location IS NOT NULL AND m.ts <= :as_of AND {_NOT_QUEUED}
        UNION ALL
        SELECT m.item_id, m.from_location, m.lot, -m.quantity FROM stock_moves m
        WHERE m.from_location IS NOT NULL AND m.ts <= :as_of AND {_NOT_QUEUED}),
    balances AS (SELECT item_id, location_id, lot, sum(quantity) AS quantity FROM legs
                 GROUP BY item_id, location_id, lot HAVING sum(quantity) <> 0),
    worth AS (SELECT item_id, sum(value) AS value, sum(quantity) AS quantity FROM stock_values
              WHERE ts <= :as_of GROUP BY item_id)
    SELECT b.item_id, b.location_id, b.lot, b.quantity, lots.received_at, coalesce(w.value, 0), coalesce(w.quantity, 0),
           coalesce(v.last_known_cost, i.standard_cost, 0)
    FROM balances b JOIN items i USING (item_id) LEFT JOIN lots USING (item_id, lot)
    LEFT JOIN worth w USING (item_id) LEFT JOIN item_valuations v USING (item_id)
    ORDER BY b.item_id, b.location_id, b.lot NULLS FIRST""")


def _on_hand(session: Session, as_of: datetime) -> pd.DataFrame:
    """Balances per item, location and lot at `as_of`, valued (see the module docstring)."""
    by_item: dict[str, list[tuple]] = {}
    for row in session.execute(_ON_HAND, {"as_of": as_of}):
        by_item.setdefault(row[0], []).append(tuple(row))
    rows = []
    for balances in by_item.values():
        _, _, _, _, _, item_value, item_quantity, fallback = balances[0]
        unit_cost = Fraction(item_value) / Fraction(item_quantity) if item_quantity > 0 else Fraction(fallback)
        spread = ZERO
        for position, (item, location, lot, quantity, received, *_) in enumerate(balances):
            with localcontext(EXACT):
                value = item_value - spread if position == len(balances) - 1 else _money(Fraction(quantity) * unit_cost)
                spread += value
            rows.append((item, location, lot, quantity, value, received))
    return _frame(rows, ("item_id", "location_id", "lot", "quantity", "value", "received_at"))


_SHIPMENTS = text(f"""
    WITH shipped AS (
        SELECT m.id, m.ts, split_part(substr(m.source_ref, 4), '/', 1) AS so_id, m.item_id, m.quantity
        FROM stock_moves m
        WHERE m.reason = :reason AND m.source_ref LIKE 'so:%' AND m.to_location IS NULL AND m.ts < :end AND {_NOT_QUEUED})
    SELECT s.ts, s.so_id, s.item_id, s.quantity,
           -coalesce((SELECT sum(v.value) FROM stock_values v WHERE v.move_id = s.id), 0) AS cost
    FROM shipped s
    WHERE s.so_id IN (SELECT so_id FROM shipped WHERE ts >= :start)
    ORDER BY s.id""")

_ORDER_LINES = text("""
    SELECT so_id, item_id, quantity, unit_price FROM sales_order_lines WHERE so_id = ANY(:orders) ORDER BY so_id, line""")


def _shipments(session: Session, start: datetime, end: datetime) -> pd.DataFrame:
    """Each shipment move before `end` of the orders shipped in [start, end), with its revenue and cost (an
    order's earlier shipments fill its lines first, so they are read too; the report keeps the period's)."""
    moves = session.execute(_SHIPMENTS, {"reason": SHIPMENT, "start": start, "end": end}).all()
    lines: dict[tuple[str, str], list[list[Decimal]]] = {}  # (order, item) -> [[still to fill, unit price], ...]
    for order, item, quantity, price in session.execute(_ORDER_LINES, {"orders": sorted({move.so_id for move in moves})}):
        lines.setdefault((order, item), []).append([quantity, price])
    rows = []
    for ts, order, item, quantity, cost in moves:
        rows.append((ts, order, _revenue(lines.get((order, item), []), quantity), cost))
    return _frame(rows, ("ts", "sales_order_id", "revenue", "cost"))


def _revenue(lines: list[list[Decimal]], quantity: Decimal) -> Decimal:
    """Revenue of `quantity` shipped against the lines of one item, filling them in order (mutates what is left)."""
    revenue = ZERO
    with localcontext(EXACT):
        for position, line in enumerate(lines):
            part = quantity if position == len(lines) - 1 else min(quantity, max(line[0], ZERO))
            revenue += part * line[1]
            line[0] -= part
            quantity -= part
    return revenue


def _money(amount: Fraction) -> Decimal:
    """`amount` rounded once, half to even, to 0.000001."""
    with localcontext(EXACT):
        return round(amount / MONEY_QUANTUM) * Decimal("0.000001")


def _frame(rows: Iterable[tuple], columns: tuple[str, ...]) -> pd.DataFrame:
    """Rows as an object frame: Decimals and datetimes stay what the database gave."""
    return pd.DataFrame([tuple(row) for row in rows], columns=list(columns), dtype=object)
