"""Stock alerts as records: the conditions only; notifying on them is the alerting service's job.

Each rule returns `StockAlert`s sorted by subject. (kind, subject) names the condition, so the same
condition found again gives the same pair and can be de-duplicated: subject is an item, `item@location`,
`item/lot@location` or a sales order id. `numbers` holds the quantities the detail quotes.

- Safety stock (per item, plant-wide): the position is available + on order + in transit between the
  plant's own locations (goods in transit are available nowhere, but they are coming, so leaving them
  out would order them twice). Below safety stock, suggest buying
        max(safety stock + reorder quantity − position, minimum order), rounded up to the order multiple,
  which brings the position back to at least safety stock + reorder quantity. At exactly safety stock,
  nothing is suggested. The suggestion names the suppliers that have had the item on an order, best
  score first (`inventory.rules.performance`: on time × quality of their recent receipts).
- Slow-moving: an item with stock (Σ on hand > 0) and no demand issue for at least N days (default 90).
  A demand issue is a shipment or a backflush consumption (`DEMAND_REASONS`); a stocktake loss, a
  write-off or a return to supplier shows no demand. An item never issued counts from its first
  receipt, so stock received last week is not slow-moving; with neither date it is flagged.
- Overdue sales orders: an open or partly shipped order with something left to ship at least N hours
  (default 48) after it was due. The due instant is the service's to set (a due date means the end of
  that day in the plant's time zone, say).
- Lots: `now` is read as a date in its own time zone, so pass it in the plant's zone. A lot is expired
  from its expiry date on (the date is the first day it may no longer be used, as `backflush.expiry`
  counts shelf-life days), and expiring soon when it expires within the next N days (default 30). One
  alert per location holding the lot, since each is a place someone must go to.
- Backflush shortages: open exceptions of kinds 'shortage' (consumed from the unknown lot) and 'blocked'
  (not consumed, order held) summed per item and location. A 'no_location' exception is a missing
  line-side location, a configuration fault rather than a shortage of stock, so it is left out.

Whole days and hours are counted down (47 h 59 min late is 47 hours). Quantities are exact, never
rounded; the order multiple is applied with exact integer division.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal, localcontext
from enum import Enum
from typing import NamedTuple

from kernel.rules.instants import require_aware
from kernel.rules.quantities import EXACT, exact_quantity, non_negative_quantity, whole_number
from inventory.rules.backflush import BackflushException
from inventory.rules.operations import SHIPMENT, OrderLine, SalesOrderStatus

BACKFLUSH = "backflush"  # the reason `inventory.rules.backflush` gives its consumption moves
DEMAND_REASONS = frozenset({SHIPMENT, BACKFLUSH})
SHORTAGE_KINDS = frozenset({"shortage", "blocked"})
DEFAULT_SLOW_MOVING_DAYS = 90
DEFAULT_OVERDUE_HOURS = 48
DEFAULT_EXPIRY_WARNING_DAYS = 30


class StockAlertKind(str, Enum):
    """The conditions these rules find; the alert engine (mes) raises and clears alerts of the same names."""

    STOCK_SHORTAGE = "stock_shortage"
    SAFETY_STOCK = "safety_stock"
    SLOW_MOVING = "slow_moving"
    OVERDUE_SALES_ORDER = "overdue_sales_order"
    LOT_EXPIRING = "lot_expiring"
    LOT_EXPIRED = "lot_expired"


class StockAlert(NamedTuple):
    kind: StockAlertKind
    subject: str
    detail: str
    numbers: dict[str, Decimal]


# --- safety stock -----------------------------------------------------------------------------

class SafetyStockLevel(NamedTuple):
    item: str
    safety_stock: Decimal
    reorder_quantity: Decimal = Decimal(0)  # bought on top of safety stock, so as not to reorder at once
    minimum_order: Decimal = Decimal(0)  # the supplier's minimum order quantity
    order_multiple: Decimal | None = None  # the supplier sells in multiples of this (a pack, a pallet)


def suggested_purchase(level: SafetyStockLevel, position: Decimal | int) -> Decimal:
    """What to buy when `position` (available + on order + in transit) is below safety stock; else 0."""
    safety = non_negative_quantity(level.safety_stock, f"safety stock of {level.item}")
    reorder = non_negative_quantity(level.reorder_quantity, f"reorder quantity of {level.item}")
    minimum = non_negative_quantity(level.minimum_order, f"minimum order of {level.item}")
    position = exact_quantity(position, f"stock position of {level.item}")
    if position >= safety:
        return Decimal(0)
    with localcontext(EXACT):
        quantity = max(safety + reorder - position, minimum)
        if level.order_multiple is None:
            return quantity
        multiple = exact_quantity(level.order_multiple, f"order multiple of {level.item}")
        if multiple <= 0:
            raise ValueError(f"order multiple of {level.item} must be positive, got {multiple}")
        packs, rest = divmod(quantity, multiple)
        return (packs + (rest > 0)) * multiple


def safety_stock_alerts(levels: Iterable[SafetyStockLevel], available: Mapping[str, Decimal], on_order: Mapping[str, Decimal],
                        in_transit: Mapping[str, Decimal] | None = None,
                        suppliers: Mapping[str, Sequence[str]] | None = None) -> list[StockAlert]:
    """A purchase suggestion for each item whose position is below its safety stock; `suppliers`: per item, the
    suppliers to buy from, ranked (best first)."""
    alerts = []
    in_transit, suppliers = in_transit or {}, suppliers or {}
    for level in levels:
        item = level.item
        parts = {what: exact_quantity(quantities.get(item, 0), f"{what.replace('_', ' ')} of {item}")
                 for what, quantities in (("available", available), ("on_order", on_order), ("in_transit", in_transit))}
        with localcontext(EXACT):
            position = sum(parts.values(), Decimal(0))
        suggested = suggested_purchase(level, position)
        if not suggested:
            continue
        safety = exact_quantity(level.safety_stock, f"safety stock of {item}")
        alerts.append(StockAlert(
            StockAlertKind.SAFETY_STOCK, item,
            f"{item}: {position} available, on order and in transit is below the safety stock of {safety}; "
            f"suggest buying {suggested}" + (f" from {', '.join(suppliers[item])} (best score first)"
                                             if suppliers.get(item) else ""),
            {**parts, "position": position, "safety_stock": safety, "suggested_quantity": suggested}))
    return _by_subject(alerts)


# --- slow-moving ------------------------------------------------------------------------------

class ItemActivity(NamedTuple):
    item: str
    on_hand: Decimal  # Σ over all locations and lots
    last_issue: datetime | None  # the last move with a reason in DEMAND_REASONS; None: never issued
    first_receipt: datetime | None


def slow_moving_alerts(activity: Iterable[ItemActivity], now: datetime,
                       days: int = DEFAULT_SLOW_MOVING_DAYS) -> list[StockAlert]:
    """Items with stock and no demand issue for at least `days` days."""
    require_aware(now, "now")
    days = whole_number(days, "days without an issue", least=1)
    alerts = []
    for item in activity:
        on_hand = exact_quantity(item.on_hand, f"on hand of {item.item}")
        if on_hand <= 0:
            continue
        idle_since = item.last_issue or item.first_receipt
        if idle_since is None:
            alerts.append(StockAlert(StockAlertKind.SLOW_MOVING, item.item,
                                     f"{item.item}: {on_hand} on hand and no issue or receipt on record",
                                     {"on_hand": on_hand}))
            continue
        idle = now - require_aware(idle_since, f"last movement of {item.item}")
        if idle >= timedelta(days=days):
            since = "last issued" if item.last_issue else "received, never issued,"
            alerts.append(StockAlert(StockAlertKind.SLOW_MOVING, item.item,
                                     f"{item.item}: {on_hand} on hand, {since} {idle.days} days ago",
                                     {"on_hand": on_hand, "idle_days": Decimal(idle.days)}))
    return _by_subject(alerts)


# --- overdue sales orders ---------------------------------------------------------------------

class SalesOrderDue(NamedTuple):
    order_id: str
    status: SalesOrderStatus
    due: datetime
    lines: Sequence[OrderLine]  # with what each has shipped so far


_SHIPPING_STATUSES = frozenset({SalesOrderStatus.OPEN, SalesOrderStatus.PARTIALLY_SHIPPED})


def overdue_sales_order_alerts(orders: Iterable[SalesOrderDue], now: datetime,
                               hours: int = DEFAULT_OVERDUE_HOURS) -> list[StockAlert]:
    """Orders still to ship at least `hours` hours after they were due."""
    require_aware(now, "now")
    hours = whole_number(hours, "hours after due", least=0)
    alerts = []
    for order in orders:
        if SalesOrderStatus(order.status) not in _SHIPPING_STATUSES:
            continue
        late = now - require_aware(order.due, f"due time of sales order {order.order_id}")
        if late < timedelta(hours=hours):
            continue
        with localcontext(EXACT):
            outstanding = [(line, line.ordered - line.delivered) for line in order.lines
                           if exact_quantity(line.ordered, f"ordered on line {line.line}")
                           > exact_quantity(line.delivered, f"shipped on line {line.line}")]
        if not outstanding:
            continue
        hours_late = late // timedelta(hours=1)
        listed = ", ".join(f"{quantity} of {line.item}" for line, quantity in outstanding)
        alerts.append(StockAlert(StockAlertKind.OVERDUE_SALES_ORDER, order.order_id,
                                 f"sales order {order.order_id}: {listed} not shipped, {hours_late} hours after due",
                                 {"hours_late": Decimal(hours_late), "lines_outstanding": Decimal(len(outstanding))}))
    return _by_subject(alerts)


# --- lots expiring ----------------------------------------------------------------------------

class LotStock(NamedTuple):
    item: str
    lot: str
    location: str
    quantity: Decimal
    expires: date | None  # None: never expires


def expiring_lot_alerts(lots: Iterable[LotStock], now: datetime,
                        days: int = DEFAULT_EXPIRY_WARNING_DAYS) -> list[StockAlert]:
    """On-hand lots expired (LOT_EXPIRED) or expiring within `days` days (LOT_EXPIRING)."""
    today = require_aware(now, "now").date()
    days = whole_number(days, "days of warning", least=0)
    alerts = []
    for lot in lots:
        quantity = exact_quantity(lot.quantity, f"quantity of {lot.item} lot {lot.lot}")
        if quantity <= 0 or lot.expires is None:
            continue
        days_left = (lot.expires - today).days
        subject = f"{lot.item}/{lot.lot}@{lot.location}"
        if days_left <= 0:
            alerts.append(StockAlert(StockAlertKind.LOT_EXPIRED, subject,
                                     f"{quantity} of {lot.item} lot {lot.lot} at {lot.location} expired on {lot.expires}",
                                     {"quantity": quantity, "days_expired": Decimal(-days_left)}))
        elif days_left <= days:
            alerts.append(StockAlert(StockAlertKind.LOT_EXPIRING, subject,
                                     f"{quantity} of {lot.item} lot {lot.lot} at {lot.location} expires on {lot.expires}, "
                                     f"in {days_left} day{'s' * (days_left > 1)}",
                                     {"quantity": quantity, "days_left": Decimal(days_left)}))
    return _by_subject(alerts)


# --- backflush shortages ----------------------------------------------------------------------

def backflush_shortage_alerts(open_exceptions: Iterable[BackflushException]) -> list[StockAlert]:
    """The open shortages backflush raised, summed per item and location."""
    groups: dict[tuple[str, str | None], list[BackflushException]] = {}
    for exception in open_exceptions:
        if exception.kind in SHORTAGE_KINDS:
            groups.setdefault((exception.item_id, exception.location_id), []).append(exception)
    alerts = []
    for (item, location), exceptions in groups.items():
        with localcontext(EXACT):
            by_kind = {kind: sum((exact_quantity(e.quantity, f"shortage of {item}") for e in exceptions if e.kind == kind),
                                 Decimal(0)) for kind in ("shortage", "blocked")}
            total = by_kind["shortage"] + by_kind["blocked"]
        orders = ", ".join(sorted({e.work_order_id for e in exceptions}))
        alerts.append(StockAlert(
            StockAlertKind.STOCK_SHORTAGE, f"{item}@{location}",
            f"{total} of {item} short at {location} ({by_kind['shortage']} consumed from an unknown lot, "
            f"{by_kind['blocked']} not consumed); work orders {orders}",
            {"quantity": total, "consumed_short": by_kind["shortage"], "not_consumed": by_kind["blocked"],
             "exceptions": Decimal(len(exceptions))}))
    return _by_subject(alerts)


# --- checks -----------------------------------------------------------------------------------

def _by_subject(alerts: list[StockAlert]) -> list[StockAlert]:
    return sorted(alerts, key=lambda alert: (alert.subject, alert.kind.value))


