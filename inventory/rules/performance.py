"""Delivery performance, the KPIs buyers and planners judge by: sales-order lines delivered on time, and each
supplier's on-time and quality score; suppliers ranked by that score. Pure: no I/O, no clock.

Formulas (percentages are Decimal, rounded once from the exact quotient, half to even, to 0.01; a
percentage whose denominator is zero is None, never 0 or 100):

- Sales-order line delivered complete: the instant of the shipment that brought what was shipped for the line
  to its ordered quantity. An order's shipments of an item fill its lines of that item in line order (line id
  as text), each up to its ordered quantity, as the margins report does; customer returns are not netted.
- On time against the due instant: complete at or before the order's due instant. Against the promise: complete
  on or before the promised day (a date, read in `tz`, UTC by default). A line is judged once it is complete or
  once its date has passed (`as_of` after the due instant, or after the end of the promised day): a line due
  and not complete is late; a line not due yet and not complete is not judged (None). A line without a
  promise is not judged against one.
      on-time % = 100 × lines judged on time / lines judged
- Supplier on-time %: of the value received (quantity × the purchase-order line's unit cost) on receipts of
  orders with a due date, the share received on or before the due day (the receipt's day in `tz`):
      on-time % = 100 × value received by the due day / value received against a due date
  Value, not quantity, so that kilograms and pieces add up; a receipt of an order without a due date is not
  judged on time.
- Supplier quality %: 100 × (1 − value returned to the supplier / value received), the returns and
  receipts of the same period, clamped to [0, 100] (a period may return goods received before it).
- Supplier score = on-time % × quality % / 100 (the quality % alone when no receipt had a due date): a
  supplier always on time whose goods come back half the time scores 50. None without any receipt.
- Ranking: higher score first; suppliers without a score after every scored one; ties by supplier id.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import NamedTuple

from kernel.rules.instants import require_aware
from kernel.rules.quantities import EXACT, exact_quantity, non_negative_quantity

PERCENT_QUANTUM = Decimal("0.01")
HUNDRED = Decimal(100)
ZERO = Decimal(0)


def percent(part: Decimal | int, whole: Decimal | int) -> Decimal | None:
    """100 × part / whole, rounded once half to even to 0.01; None when `whole` is zero."""
    if whole == 0:
        return None
    steps = round(Fraction(part) * 100 / Fraction(whole) / Fraction(PERCENT_QUANTUM))  # a Fraction rounds half to even
    with localcontext(EXACT):
        return steps * PERCENT_QUANTUM


# --- sales-order lines -------------------------------------------------------------------------


class SalesLine(NamedTuple):
    order: str
    line: str
    item: str
    quantity: Decimal
    due: datetime  # the order's due instant
    promised: date | None = None  # the day promised to the customer, wherever it came from


class Shipment(NamedTuple):
    order: str
    item: str
    shipped_at: datetime
    quantity: Decimal


class LineDelivery(NamedTuple):
    order: str
    line: str
    item: str
    quantity: Decimal
    due: datetime
    promised: date | None
    completed_at: datetime | None  # None: not shipped complete (yet)
    on_time_vs_due: bool | None  # None: not judged yet
    on_time_vs_promise: bool | None  # None: no promise, or not judged yet


def line_deliveries(lines: Iterable[SalesLine], shipments: Iterable[Shipment], as_of: datetime,
                    tz: tzinfo = UTC) -> list[LineDelivery]:
    """Each line with when it was shipped complete and whether that was on time; by order, then line."""
    require_aware(as_of, "as_of")
    by_order_item: dict[tuple[str, str], list[SalesLine]] = defaultdict(list)
    for line in lines:
        non_negative_quantity(line.quantity, f"quantity of {line.order}/{line.line}")
        require_aware(line.due, f"due of {line.order}")
        by_order_item[(line.order, line.item)].append(line)
    completed: dict[tuple[str, str], datetime] = {}
    filled: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for shipment in sorted(shipments, key=lambda s: (require_aware(s.shipped_at, "shipped_at"), s.order, s.item)):
        left = exact_quantity(shipment.quantity, f"shipment of {shipment.order}")
        order_lines = sorted(by_order_item.get((shipment.order, shipment.item), []), key=lambda line: line.line)
        for index, line in enumerate(order_lines):
            key = (line.order, line.line)
            room = left if index == len(order_lines) - 1 else min(left, max(line.quantity - filled[key], ZERO))
            if room <= 0:
                continue
            with localcontext(EXACT):
                filled[key] += room
                left -= room
            if key not in completed and filled[key] >= line.quantity:
                completed[key] = shipment.shipped_at
    found = []
    for line in sorted((line for group in by_order_item.values() for line in group), key=lambda line: (line.order, line.line)):
        done = completed.get((line.order, line.line))
        if done is None and line.quantity == 0:
            done = line.due  # nothing to ship: delivered by definition, on its due instant
        found.append(LineDelivery(*line, done, _judged(done, line.due, as_of),
                                  None if line.promised is None else _judged_by_day(done, line.promised, as_of, tz)))
    return found


def _judged(completed: datetime | None, deadline: datetime, as_of: datetime) -> bool | None:
    if completed is not None:
        return completed <= deadline
    return False if as_of > deadline else None


def _judged_by_day(completed: datetime | None, day: date, as_of: datetime, tz: tzinfo) -> bool | None:
    if completed is not None:
        return completed.astimezone(tz).date() <= day
    return False if as_of.astimezone(tz).date() > day else None


class OnTime(NamedTuple):
    judged: int
    on_time: int
    percent: Decimal | None


def on_time(verdicts: Iterable[bool | None]) -> OnTime:
    """How many of the verdicts were judged, how many on time, and the on-time % (None: none judged)."""
    judged = [verdict for verdict in verdicts if verdict is not None]
    hits = sum(judged)
    return OnTime(len(judged), hits, percent(hits, len(judged)))


# --- suppliers ---------------------------------------------------------------------------------


class SupplierReceipt(NamedTuple):
    supplier: str
    received_at: datetime
    due: date | None  # the purchase order's due day
    value: Decimal  # quantity × the order line's unit cost


class SupplierReturn(NamedTuple):
    supplier: str
    returned_at: datetime
    value: Decimal


class SupplierScore(NamedTuple):
    supplier: str
    received_value: Decimal
    judged_value: Decimal  # received against a due date
    on_time_value: Decimal
    returned_value: Decimal
    on_time_percent: Decimal | None
    quality_percent: Decimal | None
    score: Decimal | None


def supplier_scores(receipts: Iterable[SupplierReceipt], returns: Iterable[SupplierReturn],
                    tz: tzinfo = UTC) -> list[SupplierScore]:
    """One score per supplier with a receipt or a return, by supplier id, over everything passed (one period)."""
    sums: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO, ZERO, ZERO])
    with localcontext(EXACT):
        for receipt in receipts:
            value = non_negative_quantity(receipt.value, f"value received from {receipt.supplier}")
            entry = sums[receipt.supplier]
            entry[0] += value
            if receipt.due is not None:
                entry[1] += value
                if require_aware(receipt.received_at, "received_at").astimezone(tz).date() <= receipt.due:
                    entry[2] += value
        for returned in returns:
            sums[returned.supplier][3] += non_negative_quantity(returned.value, f"value returned to {returned.supplier}")
    return [_score(supplier, *sums[supplier]) for supplier in sorted(sums)]


def _score(supplier: str, received: Decimal, judged: Decimal, in_time: Decimal, returned: Decimal) -> SupplierScore:
    on_time_percent = percent(in_time, judged)
    quality = None if received == 0 else min(max(HUNDRED - percent(returned, received), ZERO), HUNDRED)  # type: ignore[operator]
    if quality is None:
        score = None
    elif on_time_percent is None:
        score = quality
    else:
        score = percent(on_time_percent * quality, HUNDRED * 100)
    return SupplierScore(supplier, received, judged, in_time, returned, on_time_percent, quality, score)


def rank_suppliers(candidates: Iterable[str], scores: Mapping[str, Decimal | None]) -> list[str]:
    """The candidates, best score first; those without a score last; ties by supplier id."""
    return sorted(set(candidates), key=lambda supplier: (scores.get(supplier) is None, -(scores.get(supplier) or 0), supplier))

