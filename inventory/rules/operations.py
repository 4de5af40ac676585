"""Inventory operations: document lifecycles, approvals, and the stock moves each step posts.

Documents. A purchase order, a sales order and a transfer each move through a lifecycle held as data
(`PURCHASE_ORDER_LIFECYCLE`, `SALES_ORDER_LIFECYCLE`, `TRANSFER_LIFECYCLE`); `transition(status, action)`
applies an action and refuses one the status does not allow, listing the allowed ones. Which of a
receipt's two actions applies (partly or fully received; likewise shipped) follows from the quantities,
so the rules that post the moves also return the action to apply.

Approvals. A plant sets thresholds: above a document value, so many approvals are needed (> 0 → 1,
> 10 000 → 2). Approvals come from distinct people other than the document's creator (four eyes).
A person is identified by the name given, trimmed and compared case-insensitively, so "Alice" and
"alice " cannot pass as two approvers. A document needing no approval is approved as it is submitted
(the service applies `submit` then `approve`). When several are needed, `approve` records each one and
says when they are complete; only then does the service apply the `approve` action.

Moves. Every step returns the moves it posts as `PlannedMove`s; the service stamps them with time and
source reference. A move from None is a receipt into a location, a move to None an issue out of it:
    goods receipt       None → location       'goods receipt', at the purchase line's unit cost
    shipment            location → None       'shipment'
    transfer shipped    source → transit      'transfer shipped'
    transfer received   transit → destination 'transfer received'
    in-transit loss     transit → None        'in-transit write-off: <reason>'
    customer return     None → location       'customer return: <reason>'
    return to supplier  location → None       'return to supplier: <reason>'
    stocktake           None → location / location → None   'stocktake gain' / 'stocktake loss'
Only goods receipts carry a unit cost: it is the only one the rule knows (the purchase price); the
other moves are valued by the costing rules.

Transit. Goods shipped on a transfer sit in a location of their own, `transit:<transfer id>`, which
belongs to no warehouse: `available` leaves it out, so goods in transit are available nowhere. They
leave it only by being received at the destination or by an explicit write-off with a reason, so the
ledger always shows where every unit is. The service needs a `locations` row for each transit
location (a kind 'transit' is not yet allowed by the schema's CHECK).

Quantities are exact (see `inventory.rules`); nothing here divides, so nothing is rounded.

Ambiguities, stated:
- Over-delivery: a purchase line may receive, and a sales line ship, at most ordered × (1 + tolerance);
  the default tolerance is 0 %, so by default not a unit more than ordered. A line is fully delivered at
  its ordered quantity; once every line is, the order is received (shipped) and takes no more.
- A partly received purchase order, or a partly shipped sales order, may be closed: the rest will not
  come (go), and it would otherwise stay on order for ever. Cancelling is only possible before anything
  was received (shipped).
- An approver may send a submitted purchase order back to draft (`reject`); the approvals it had
  are void, and it needs all of them again once resubmitted.
- A transfer ships once, at most what was requested per item (the approval covered no more); lots are
  chosen when shipping. It is `received` from the first receipt or write-off at the destination on,
  and may take further receipts and write-offs while anything remains in transit. `post` closes it and
  is refused while anything remains in transit. Cancelling is possible only before shipping: once the
  goods have left, they must be received or written off.
- Stocktake: a counted (item, location, lot) is set to its count. A book balance not counted is left
  alone, unless the count of its location is declared complete: then it was looked for and not found,
  and counts as zero (a negative unknown-lot balance is brought back to zero the same way). Goods in
  transit cannot be counted. Gains and losses carry no unit cost: the costing rules value them.
- Returns are not checked against what was shipped or received: a return may arrive without its
  document. The reason is required.
- Whether a location may go negative is its negative-stock policy, which the service applies when it
  picks lots (`inventory.rules.lots.allocate`); these rules take the lots they are given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, localcontext
from enum import Enum
from typing import Any, NamedTuple, TypeVar

from kernel.rules.lifecycle import InvalidTransition, Lifecycle  # noqa: F401  (raised by transition)
from kernel.rules.quantities import EXACT, exact_quantity, non_negative_quantity, positive_quantity, whole_number

TRANSIT_PREFIX = "transit:"
DEFAULT_OVER_DELIVERY_TOLERANCE = Decimal(0)

GOODS_RECEIPT = "goods receipt"
SHIPMENT = "shipment"
TRANSFER_SHIPPED = "transfer shipped"
TRANSFER_RECEIVED = "transfer received"
IN_TRANSIT_WRITE_OFF = "in-transit write-off"
CUSTOMER_RETURN = "customer return"
RETURN_TO_SUPPLIER = "return to supplier"
STOCKTAKE_GAIN = "stocktake gain"
STOCKTAKE_LOSS = "stocktake loss"

Lot = str | None  # None: an item not tracked by lot, or the unknown lot of a backflush shortage
ItemLot = tuple[str, Lot]
StockKey = tuple[str, str, Lot]  # (item, location, lot)


class PlannedMove(NamedTuple):
    item: str
    lot: Lot
    from_location: str | None  # None: a receipt into `to_location`
    to_location: str | None  # None: an issue out of `from_location`
    quantity: Decimal  # always positive
    reason: str
    unit_cost: Decimal | None = None


# --- lifecycles -------------------------------------------------------------------------------

class PurchaseOrderStatus(str, Enum):
    DRAFT = "draft"
    SUBMITTED = "submitted"  # waiting for its approvals
    APPROVED = "approved"  # sent to the supplier: on order
    PARTIALLY_RECEIVED = "partially_received"
    RECEIVED = "received"
    CLOSED = "closed"  # final
    CANCELLED = "cancelled"  # final


class PurchaseOrderAction(str, Enum):
    SUBMIT = "submit"
    APPROVE = "approve"  # the last approval needed
    REJECT = "reject"
    RECEIVE_PARTLY = "receive_partly"
    RECEIVE_FULLY = "receive_fully"
    CLOSE = "close"
    CANCEL = "cancel"


class SalesOrderStatus(str, Enum):
    OPEN = "open"
    PARTIALLY_SHIPPED = "partially_shipped"
    SHIPPED = "shipped"
    CLOSED = "closed"  # final
    CANCELLED = "cancelled"  # final


class SalesOrderAction(str, Enum):
    SHIP_PARTLY = "ship_partly"
    SHIP_FULLY = "ship_fully"
    CLOSE = "close"
    CANCEL = "cancel"


class TransferStatus(str, Enum):
    REQUESTED = "requested"
    APPROVED = "approved"
    IN_TRANSIT = "in_transit"
    RECEIVED = "received"  # the destination has started receiving; something may still be in transit
    POSTED = "posted"  # final: nothing in transit
    CANCELLED = "cancelled"  # final


class TransferAction(str, Enum):
    APPROVE = "approve"
    SHIP = "ship"
    RECEIVE = "receive"
    WRITE_OFF = "write_off"
    POST = "post"
    CANCEL = "cancel"


_PS, _PA = PurchaseOrderStatus, PurchaseOrderAction
PURCHASE_ORDER_LIFECYCLE: dict[PurchaseOrderStatus, dict[PurchaseOrderAction, PurchaseOrderStatus]] = {
    _PS.DRAFT: {_PA.SUBMIT: _PS.SUBMITTED, _PA.CANCEL: _PS.CANCELLED},
    _PS.SUBMITTED: {_PA.APPROVE: _PS.APPROVED, _PA.REJECT: _PS.DRAFT, _PA.CANCEL: _PS.CANCELLED},
    _PS.APPROVED: {_PA.RECEIVE_PARTLY: _PS.PARTIALLY_RECEIVED, _PA.RECEIVE_FULLY: _PS.RECEIVED, _PA.CANCEL: _PS.CANCELLED},
    _PS.PARTIALLY_RECEIVED: {_PA.RECEIVE_PARTLY: _PS.PARTIALLY_RECEIVED, _PA.RECEIVE_FULLY: _PS.RECEIVED,
                             _PA.CLOSE: _PS.CLOSED},
    _PS.RECEIVED: {_PA.CLOSE: _PS.CLOSED},
    _PS.CLOSED: {},
    _PS.CANCELLED: {},
}

_SS, _SA = SalesOrderStatus, SalesOrderAction
SALES_ORDER_LIFECYCLE: dict[SalesOrderStatus, dict[SalesOrderAction, SalesOrderStatus]] = {
    _SS.OPEN: {_SA.SHIP_PARTLY: _SS.PARTIALLY_SHIPPED, _SA.SHIP_FULLY: _SS.SHIPPED, _SA.CANCEL: _SS.CANCELLED},
    _SS.PARTIALLY_SHIPPED: {_SA.SHIP_PARTLY: _SS.PARTIALLY_SHIPPED, _SA.SHIP_FULLY: _SS.SHIPPED, _SA.CLOSE: _SS.CLOSED},
    _SS.SHIPPED: {_SA.CLOSE: _SS.CLOSED},
    _SS.CLOSED: {},
    _SS.CANCELLED: {},
}

_TS, _TA = TransferStatus, TransferAction
TRANSFER_LIFECYCLE: dict[TransferStatus, dict[TransferAction, TransferStatus]] = {
    _TS.REQUESTED: {_TA.APPROVE: _TS.APPROVED, _TA.CANCEL: _TS.CANCELLED},
    _TS.APPROVED: {_TA.SHIP: _TS.IN_TRANSIT, _TA.CANCEL: _TS.CANCELLED},
    _TS.IN_TRANSIT: {_TA.RECEIVE: _TS.RECEIVED, _TA.WRITE_OFF: _TS.RECEIVED},
    _TS.RECEIVED: {_TA.RECEIVE: _TS.RECEIVED, _TA.WRITE_OFF: _TS.RECEIVED, _TA.POST: _TS.POSTED},
    _TS.POSTED: {},
    _TS.CANCELLED: {},
}

# A status type names its document, its actions and its lifecycle.
_LIFECYCLES: dict[type[Enum], Lifecycle[Any, Any]] = {
    PurchaseOrderStatus: Lifecycle("purchase order", PurchaseOrderAction, PURCHASE_ORDER_LIFECYCLE),
    SalesOrderStatus: Lifecycle("sales order", SalesOrderAction, SALES_ORDER_LIFECYCLE),
    TransferStatus: Lifecycle("transfer", TransferAction, TRANSFER_LIFECYCLE),
}

Status = PurchaseOrderStatus | SalesOrderStatus | TransferStatus


def transition(status: Status, action: Enum | str) -> Status:
    """The status after `action`; InvalidTransition says which actions the status allows instead.

    The status must be one of the three status enums (they share values such as 'approved', so the
    type says which document it is); the action may be given as its stored text.
    """
    if type(status) not in _LIFECYCLES:
        raise TypeError(f"status must be a PurchaseOrderStatus, SalesOrderStatus or TransferStatus, not {status!r}")
    after: Status = _LIFECYCLES[type(status)].after(status, action)
    return after


# --- approvals --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ApprovalPolicy:
    """(value, approvals): a document worth more than `value` needs `approvals` approvals.

    No thresholds: nothing needs approval. Thresholds are kept sorted by value; a higher value may not
    need fewer approvals than a lower one.
    """

    thresholds: tuple[tuple[Decimal, int], ...] = ()

    def __post_init__(self) -> None:
        thresholds = sorted((non_negative_quantity(value, "an approval threshold"), whole_number(approvals, "approvals needed"))
                            for value, approvals in self.thresholds)
        for (value, approvals), (higher, fewer) in zip(thresholds, thresholds[1:], strict=False):
            if value == higher:
                raise ValueError(f"the approval threshold {value} is given twice")
            if fewer < approvals:
                raise ValueError(f"a document worth more than {higher} cannot need fewer approvals ({fewer}) "
                                 f"than one worth more than {value} ({approvals})")
        if any(approvals == 0 for _, approvals in thresholds):
            raise ValueError("an approval threshold must ask for at least one approval")
        object.__setattr__(self, "thresholds", tuple(thresholds))


def approvals_needed(value: Decimal | int, policy: ApprovalPolicy) -> int:
    """How many approvals a document worth `value` needs: that of the highest threshold it exceeds, else 0."""
    value = non_negative_quantity(value, "the document's value")
    return max((approvals for threshold, approvals in policy.thresholds if value > threshold), default=0)


class Approval(NamedTuple):
    approvers: tuple[str, ...]  # everyone who approved so far, in order
    complete: bool  # enough distinct approvers other than the creator: apply the `approve` action
    still_needed: int


def approve(approvals_so_far: Sequence[str], approver: str, created_by: str, needed: int) -> Approval:
    """Record `approver`'s approval; refused for the creator, a second approval by the same person, a
    document that needs none, and one that already has all it needs."""
    needed = whole_number(needed, "approvals needed")
    approver, creator = _name(approver, "the approver"), _name(created_by, "the document's creator")
    counted = {_identity(name) for name in approvals_so_far} - {_identity(creator)}  # distinct people, creator never
    if needed == 0:
        raise ValueError("this document needs no approval")
    if len(counted) >= needed:
        raise ValueError(f"this document already has the {needed} approval{'s' * (needed > 1)} it needs")
    if _identity(approver) == _identity(creator):
        raise ValueError(f"{approver} created this document and cannot approve it: another person must")
    if _identity(approver) in counted:
        raise ValueError(f"{approver} has already approved this document: the next approval must come from someone else")
    approvers = (*approvals_so_far, approver)
    still_needed = needed - len(counted) - 1
    return Approval(approvers, still_needed == 0, still_needed)


def _identity(name: str) -> str:
    return name.strip().casefold()


# --- order lines: purchase receipts and sales shipments ---------------------------------------

class OrderLine(NamedTuple):
    line: str  # the line's id on its order
    item: str
    ordered: Decimal
    delivered: Decimal  # so far: received on a purchase order, shipped on a sales order
    unit_cost: Decimal | None = None  # the purchase price; a sales line needs none


class ReceiptLine(NamedTuple):
    line: str
    location: str  # received into
    quantity: Decimal
    lot: Lot = None
    expires: date | None = None  # the supplier lot's expiry; None: never expires


class ShipmentLine(NamedTuple):
    line: str
    location: str  # shipped from
    quantity: Decimal
    lot: Lot = None


class Fulfilment(NamedTuple):
    moves: list[PlannedMove]
    delivered: dict[str, Decimal]  # per order line, after this receipt or shipment
    action: PurchaseOrderAction | SalesOrderAction  # partly or fully: apply it with `transition`
    new_lots: dict[tuple[str, str], date | None]  # (item, lot) → expiry, for the lots a receipt brings


def purchase_order_value(lines: Iterable[OrderLine]) -> Decimal:
    """Σ ordered × unit cost, exactly: the value an approval threshold is compared with."""
    with localcontext(EXACT):
        return sum((_line_cost(line) * positive_quantity(line.ordered, f"quantity ordered on line {line.line}") for line in lines),
                   Decimal(0))


def _line_cost(line: OrderLine) -> Decimal:
    if line.unit_cost is None:
        raise ValueError(f"purchase line {line.line} ({line.item}) has no unit cost")
    return non_negative_quantity(line.unit_cost, f"unit cost on line {line.line}")


ON_ORDER_STATUSES = frozenset({PurchaseOrderStatus.APPROVED, PurchaseOrderStatus.PARTIALLY_RECEIVED})


def on_order(orders: Iterable[tuple[PurchaseOrderStatus, Iterable[OrderLine]]]) -> dict[str, Decimal]:
    """Per item, what approved purchase orders still have to deliver: Σ max(ordered − received, 0).

    A draft or submitted order is not yet ordered; a received, closed or cancelled one will bring
    nothing more.
    """
    totals: dict[str, Decimal] = {}
    with localcontext(EXACT):
        for status, lines in orders:
            if PurchaseOrderStatus(status) not in ON_ORDER_STATUSES:
                continue
            for line in _lines_by_id(lines).values():
                if line.delivered < line.ordered:
                    totals[line.item] = totals.get(line.item, Decimal(0)) + line.ordered - line.delivered
    return totals


def goods_receipt(lines: Iterable[OrderLine], receipt: Iterable[ReceiptLine],
                  tolerance: Decimal | int = DEFAULT_OVER_DELIVERY_TOLERANCE) -> Fulfilment:
    """The moves receiving goods against a purchase order, at each line's unit cost; refused beyond the
    over-delivery tolerance (a fraction: 0.05 = 5 %). `lines` are all the order's lines, as received so far."""
    by_line = _lines_by_id(lines)
    receipt = [r._replace(quantity=positive_quantity(r.quantity, f"quantity received on line {r.line}")) for r in receipt]
    delivered = _delivered_after(by_line, [(r.line, r.quantity) for r in receipt], tolerance, "receiving", "received")
    moves: list[PlannedMove] = []
    new_lots: dict[tuple[str, str], date | None] = {}
    for r in receipt:
        line = by_line[r.line]
        moves.append(PlannedMove(line.item, r.lot, None, _stock_location(r.location, "goods are received into"),
                                 r.quantity, GOODS_RECEIPT, _line_cost(line)))
        if r.lot is None:
            if r.expires is not None:
                raise ValueError(f"line {r.line} ({line.item}) gives an expiry without a lot: the expiry belongs to a lot")
            continue
        if new_lots.setdefault((line.item, r.lot), r.expires) != r.expires:
            raise ValueError(f"lot {r.lot} of {line.item} is received with two different expiry dates")
    fully = all(delivered[line_id] >= line.ordered for line_id, line in by_line.items())
    action = PurchaseOrderAction.RECEIVE_FULLY if fully else PurchaseOrderAction.RECEIVE_PARTLY
    return Fulfilment(moves, delivered, action, new_lots)


def shipment(lines: Iterable[OrderLine], shipped: Iterable[ShipmentLine],
             tolerance: Decimal | int = DEFAULT_OVER_DELIVERY_TOLERANCE) -> Fulfilment:
    """The moves shipping goods against a sales order: issues out of the locations picked from; refused
    beyond the over-delivery tolerance. `lines` are all the order's lines, as shipped so far."""
    by_line = _lines_by_id(lines)
    shipped = [s._replace(quantity=positive_quantity(s.quantity, f"quantity shipped on line {s.line}")) for s in shipped]
    delivered = _delivered_after(by_line, [(s.line, s.quantity) for s in shipped], tolerance, "shipping", "shipped")
    moves = [PlannedMove(by_line[s.line].item, s.lot, _stock_location(s.location, "goods are shipped from"), None,
                         s.quantity, SHIPMENT) for s in shipped]
    fully = all(delivered[line_id] >= line.ordered for line_id, line in by_line.items())
    return Fulfilment(moves, delivered, SalesOrderAction.SHIP_FULLY if fully else SalesOrderAction.SHIP_PARTLY, {})


def most_deliverable(ordered: Decimal | int, tolerance: Decimal | int = DEFAULT_OVER_DELIVERY_TOLERANCE) -> Decimal:
    """The most a line may receive or ship in all: ordered × (1 + tolerance), exactly."""
    ordered = positive_quantity(ordered, "the quantity ordered")
    with localcontext(EXACT):
        return ordered * (1 + non_negative_quantity(tolerance, "the over-delivery tolerance"))


def _lines_by_id(lines: Iterable[OrderLine]) -> dict[str, OrderLine]:
    by_line: dict[str, OrderLine] = {}
    for line in lines:
        if line.line in by_line:
            raise ValueError(f"order line {line.line} appears twice")
        by_line[line.line] = line._replace(ordered=positive_quantity(line.ordered, f"quantity ordered on line {line.line}"),
                                           delivered=non_negative_quantity(line.delivered, f"quantity delivered on line {line.line}"))
    return by_line


def _delivered_after(by_line: Mapping[str, OrderLine], deliveries: Iterable[tuple[str, Decimal]], tolerance: Decimal | int,
                     verb: str, past: str) -> dict[str, Decimal]:
    delivered = {line_id: line.delivered for line_id, line in by_line.items()}
    now_delivered: dict[str, Decimal] = {}
    with localcontext(EXACT):
        for line_id, quantity in deliveries:
            if line_id not in by_line:
                raise ValueError(f"the order has no line {line_id}")
            now_delivered[line_id] = now_delivered.get(line_id, Decimal(0)) + quantity
        if not now_delivered:
            raise ValueError(f"nothing to record: {verb} needs at least one line")
        for line_id, quantity in now_delivered.items():
            line = by_line[line_id]
            most = most_deliverable(line.ordered, tolerance)
            if line.delivered + quantity > most:
                percent = format((non_negative_quantity(tolerance, "the over-delivery tolerance") * 100).normalize(), "f")
                raise ValueError(f"line {line_id} ({line.item}): {verb} {quantity} would make {line.delivered + quantity} "
                                 f"{past} of {line.ordered} ordered; at most {most} may be {past} "
                                 f"(over-delivery tolerance {percent} %)")
            delivered[line_id] = line.delivered + quantity
    return delivered


# --- returns ----------------------------------------------------------------------------------

def customer_return(item: str, lot: Lot, quantity: Decimal | int, location: str, reason: str) -> PlannedMove:
    """Goods a customer sends back, received into `location` with the reason they came back."""
    return PlannedMove(_name(item, "the item"), lot, None, _stock_location(location, "a customer return is received into"),
                       positive_quantity(quantity, "the quantity returned"), f"{CUSTOMER_RETURN}: {_name(reason, 'the reason')}")


def return_to_supplier(item: str, lot: Lot, quantity: Decimal | int, location: str, reason: str) -> PlannedMove:
    """Goods sent back to their supplier: an issue out of `location` with the reason."""
    return PlannedMove(_name(item, "the item"), lot, _stock_location(location, "goods are returned to a supplier from"), None,
                       positive_quantity(quantity, "the quantity returned"), f"{RETURN_TO_SUPPLIER}: {_name(reason, 'the reason')}")


# --- transfers --------------------------------------------------------------------------------

def transit_location(transfer_id: str) -> str:
    """The location a transfer's goods sit in between shipping and receiving: one per transfer."""
    return f"{TRANSIT_PREFIX}{_name(transfer_id, 'the transfer id')}"


def is_in_transit(location: str) -> bool:
    """Whether `location` is a transfer's transit location, which belongs to no warehouse."""
    return location.startswith(TRANSIT_PREFIX)


class Transfer(NamedTuple):
    transfer_id: str
    source: str
    destination: str
    requested: Mapping[str, Decimal]  # item → quantity requested (and approved)


class TransitUpdate(NamedTuple):
    moves: list[PlannedMove]
    in_transit: dict[ItemLot, Decimal]  # what remains in transit afterwards, (item, lot) → quantity, zeros left out


def transfer_ship(transfer: Transfer, shipped: Mapping[ItemLot, Decimal]) -> list[PlannedMove]:
    """The moves shipping a transfer: from the source into the transfer's transit location, lot by lot.

    Refused beyond what was requested per item, and for an item not requested.
    """
    transit = _transit_of(transfer)
    requested = {item: positive_quantity(quantity, f"quantity of {item} requested") for item, quantity in transfer.requested.items()}
    shipping = _quantities(shipped, "shipped")
    if not shipping:
        raise ValueError(f"transfer {transfer.transfer_id} ships nothing: cancel it instead")
    per_item: dict[str, Decimal] = {}
    with localcontext(EXACT):
        for (item, _lot), quantity in shipping.items():
            per_item[item] = per_item.get(item, Decimal(0)) + quantity
    for item, quantity in per_item.items():
        if item not in requested:
            raise ValueError(f"transfer {transfer.transfer_id} did not request {item}")
        if quantity > requested[item]:
            raise ValueError(f"transfer {transfer.transfer_id}: shipping {quantity} of {item}, but only {requested[item]} "
                             "were requested and approved")
    return [PlannedMove(item, lot, transfer.source, transit, quantity, TRANSFER_SHIPPED)
            for (item, lot), quantity in shipping.items()]


def transfer_receive(transfer: Transfer, in_transit: Mapping[ItemLot, Decimal],
                     received: Mapping[ItemLot, Decimal]) -> TransitUpdate:
    """The moves receiving a transfer's goods at its destination, out of its transit location.

    `in_transit` is the transit location's balance. Receiving less leaves the rest in transit, for a
    further receipt or a write-off; receiving more than is in transit is refused.
    """
    transit = _transit_of(transfer)
    return _take_from_transit(transfer, in_transit, received, "receiving",
                              lambda item, lot, quantity: PlannedMove(item, lot, transit, transfer.destination, quantity,
                                                                      TRANSFER_RECEIVED))


def write_off_in_transit(transfer: Transfer, in_transit: Mapping[ItemLot, Decimal], lost: Mapping[ItemLot, Decimal],
                         reason: str) -> TransitUpdate:
    """The moves writing off goods lost in transit: issues out of the transit location, with the reason."""
    transit, reason = _transit_of(transfer), f"{IN_TRANSIT_WRITE_OFF}: {_name(reason, 'the reason')}"
    return _take_from_transit(transfer, in_transit, lost, "writing off",
                              lambda item, lot, quantity: PlannedMove(item, lot, transit, None, quantity, reason))


def check_transfer_can_post(transfer: Transfer, in_transit: Mapping[ItemLot, Decimal]) -> None:
    """Refuses to post a transfer while anything remains in its transit location."""
    left = {key: quantity for key, quantity in _balances(in_transit).items() if quantity != 0}
    if left:
        listed = ", ".join(f"{quantity} of {item}{_lot_text(lot)}" for (item, lot), quantity in _sorted_items(left))
        raise ValueError(f"transfer {transfer.transfer_id} cannot be posted: {listed} still in transit; "
                         "receive it or write it off with a reason")


def _take_from_transit(transfer: Transfer, in_transit: Mapping[ItemLot, Decimal], taking: Mapping[ItemLot, Decimal],
                       verb: str, move: Callable[[str, Lot, Decimal], PlannedMove]) -> TransitUpdate:
    balances = _balances(in_transit)
    quantities = _quantities(taking, verb)
    if not quantities:
        raise ValueError(f"nothing to record: {verb} needs at least one positive quantity")
    moves = []
    with localcontext(EXACT):
        for (item, lot), quantity in quantities.items():
            there = balances.get((item, lot), Decimal(0))
            if quantity > there:
                raise ValueError(f"transfer {transfer.transfer_id}: {verb} {quantity} of {item}{_lot_text(lot)}, but only "
                                 f"{there} {'is' if there == 1 else 'are'} in transit; {verb} more than is in transit is refused")
            balances[(item, lot)] = there - quantity
            moves.append(move(item, lot, quantity))
    return TransitUpdate(moves, {key: quantity for key, quantity in balances.items() if quantity != 0})


def _transit_of(transfer: Transfer) -> str:
    source = _stock_location(transfer.source, "a transfer ships from")
    destination = _stock_location(transfer.destination, "a transfer delivers to")
    if source == destination:
        raise ValueError(f"transfer {transfer.transfer_id} goes from {source} to itself")
    return transit_location(transfer.transfer_id)


def _balances(in_transit: Mapping[ItemLot, Decimal]) -> dict[ItemLot, Decimal]:
    return {key: exact_quantity(quantity, f"quantity of {key[0]} in transit") for key, quantity in in_transit.items()}


def _quantities(quantities: Mapping[ItemLot, Decimal], verb: str) -> dict[ItemLot, Decimal]:
    """The positive quantities, in a stable order; a zero records nothing, a negative is refused."""
    checked = {key: non_negative_quantity(quantity, f"quantity of {key[0]}{_lot_text(key[1])} {verb}")
               for key, quantity in quantities.items()}
    return {key: quantity for key, quantity in _sorted_items(checked) if quantity > 0}


# --- stocktake --------------------------------------------------------------------------------

def stocktake_adjustments(book: Mapping[StockKey, Decimal], counted: Mapping[StockKey, Decimal],
                          complete_locations: Iterable[str] = ()) -> list[PlannedMove]:
    """The moves that bring the book to the count: a gain received, a loss issued, per (item, location, lot).

    A book balance that was not counted is left alone, unless its location's count is complete.
    """
    complete = {_stock_location(location, "a stocktake counts") for location in complete_locations}
    counts = {}
    for (item, location, lot), quantity in counted.items():
        _stock_location(location, "a stocktake counts")
        counts[(item, location, lot)] = non_negative_quantity(quantity, f"count of {item}{_lot_text(lot)} at {location}")
    for (item, location, lot) in book:
        if location in complete:
            counts.setdefault((item, location, lot), Decimal(0))
    moves = []
    with localcontext(EXACT):
        for (item, location, lot), count in _sorted_items(counts):
            difference = count - exact_quantity(book.get((item, location, lot), 0), f"book quantity of {item} at {location}")
            if difference > 0:
                moves.append(PlannedMove(item, lot, None, location, difference, STOCKTAKE_GAIN))
            elif difference < 0:
                moves.append(PlannedMove(item, lot, location, None, -difference, STOCKTAKE_LOSS))
    return moves


# --- available stock --------------------------------------------------------------------------

def available(on_hand: Mapping[StockKey, Decimal],
              reserved: Mapping[tuple[str, str], Decimal] | None = None) -> dict[tuple[str, str], Decimal]:
    """Per (item, location): Σ on hand over its lots − reserved. Transit locations are left out.

    Not clamped at zero: a negative balance (a backflush shortage) or an over-reservation shows as it is.
    """
    totals: dict[tuple[str, str], Decimal] = {}
    with localcontext(EXACT):
        for (item, location, lot), quantity in on_hand.items():
            if not is_in_transit(location):
                totals[(item, location)] = (totals.get((item, location), Decimal(0))
                                            + exact_quantity(quantity, f"on hand of {item}{_lot_text(lot)} at {location}"))
        for (item, location), quantity in (reserved or {}).items():
            _stock_location(location, "stock is reserved at")
            totals[(item, location)] = (totals.get((item, location), Decimal(0))
                                        - non_negative_quantity(quantity, f"reserved quantity of {item} at {location}"))
    return totals


# --- checks -----------------------------------------------------------------------------------

def _stock_location(location: str, what: str) -> str:
    location = _name(location, "the location")
    if is_in_transit(location):
        raise ValueError(f"{location} is a transfer's transit location, which belongs to no warehouse: "
                         f"{what} a warehouse or line-side location")
    return location


def _name(value: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} is needed")
    return value.strip()





def _lot_text(lot: Lot) -> str:
    return "" if lot is None else f" lot {lot}"


_Key = TypeVar("_Key", bound=tuple[str | None, ...])
_Value = TypeVar("_Value")


def _sorted_items(quantities: Mapping[_Key, _Value]) -> list[tuple[_Key, _Value]]:
    """Items keyed by tuples that may hold a None lot, in a stable order (None before any lot)."""
    return sorted(quantities.items(), key=lambda kv: tuple((part is not None, part or "") for part in kv[0]))
