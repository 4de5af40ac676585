"""Sales: customers, sales orders, shipments with lot picking, customer returns.

A sales order is opened with its lines (item, quantity, unit price) and a due time, shipped in one or
several shipments, and closed; it may be cancelled before anything ships. The pure rules of
`inventory.rules.operations` decide every step: the lifecycle (`transition`), the shipment's moves
and the over-delivery tolerance (`shipment`), and a return's move (`customer_return`); the lots a
shipment takes come from `inventory.rules.lots.allocate` under the location's negative-stock policy.
Each step writes a `document_events` row and commits once; a refused step raises NotFound (404) or
Conflict (409) and writes nothing.

Moves. A shipment posts 'shipment' moves out of the locations named, with source_ref
`so:<id>/shipment:<n>`; a customer return posts a 'customer return: <reason>' move into the location,
without a unit cost (the costing rules value it), with source_ref `so:<id>/return:<n>`.

Lots. A shipment line naming a lot takes that lot; a line without one is picked first-expiry-first-
out, then first-in-first-out, from the location's lots (`allocate`), after the named lots of the same
shipment are taken. Stock booked without a lot (an item not tracked by lot) is picked after every
known lot. When the lots hold too little, the location's policy decides, as in backflush:
- 'block': the shipment is refused (409), saying what is on hand;
- 'allow': the shortfall ships from the unknown lot (lot None), whose balance goes negative for
  someone to reconcile; the shipment's event says how much.

Decisions, stated:
- Any item may be sold, made or bought.
- A named lot is held to the same policy as a picked one: under 'allow', what it lacks ships from the
  unknown lot rather than driving the named lot negative (its traceability would be falsified).
- The request is checked by the rule (lines, quantities, tolerance, locations) before lots are
  picked, so an over-shipment is refused with the rule's message whatever the stock.
- Customer returns are possible once something was shipped (partly shipped, shipped or closed), for
  an item on the order, into a lot the plant knows (or none, for an item not tracked by lot). They
  are not checked against the quantity shipped (the rules' stance: a return may come back without
  its paperwork) and change neither the shipped quantities nor the status.
- The order's value is Σ quantity × unit price, exact (nothing is divided).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal, localcontext
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from inventory.services.backflush import lot_balances
from kernel.rules.quantities import EXACT
from inventory.rules import operations
from inventory.rules.backflush import remaining_after
from inventory.rules.lots import UNKNOWN_LOT, LotBalance, NegativeStockPolicy, allocate
from inventory.rules.operations import SalesOrderAction, SalesOrderStatus, ShipmentLine, transition
from inventory.models import Customer, DocumentEvent, Item, Location, Lot, SalesOrder, SalesOrderLine
from kernel.rules.refusals import Conflict, NotFound, as_conflict
from inventory.services import stock as stock_service
from kernel.db.unit_of_work import create, get
from inventory.services.purchasing import (
    check_delivered_something,
    check_item_on_order,
    check_line_ids,
    described,
    moves_out,
    next_step_number,
)
from inventory.services.documents import add_event, document_events, change_status, locked

DOCUMENT = "sales_order"
CUSTOMER_RETURN = "customer_return"
SHIPMENT_ACTIONS = (SalesOrderAction.SHIP_PARTLY.value, SalesOrderAction.SHIP_FULLY.value)
RETURNABLE = (SalesOrderStatus.PARTIALLY_SHIPPED, SalesOrderStatus.SHIPPED, SalesOrderStatus.CLOSED)

# Stock booked without a lot, offered to `allocate` under an id no lot has (lot ids are never empty)
# and received last, so it is picked after every known lot and `remaining_after` keeps its balance.
_UNTRACKED = ""
_RECEIVED_LAST = datetime.max.replace(tzinfo=UTC)


class SalesLine(NamedTuple):
    line: str
    item_id: str
    quantity: Decimal
    unit_price: Decimal
    promised: date | None = None  # the day promised at entry, and by what (atp, make, buy, none)
    promise_source: str | None = None


# --- customers ---------------------------------------------------------------------------------

def create_customer(session: Session, customer_id: str, name: str, email: str | None = None) -> Customer:
    return create(session, Customer, customer_id, "customer", customer_id=customer_id, name=name, email=email)


def list_customers(session: Session) -> list[Customer]:
    return list(session.scalars(select(Customer).order_by(Customer.customer_id)))


def get_customer(session: Session, customer_id: str) -> Customer:
    return get(session, Customer, customer_id, "customer")


# --- the sales order lifecycle -----------------------------------------------------------------

def create_sales_order(session: Session, so_id: str, customer_id: str, due: datetime, lines: Sequence[SalesLine],
                       tolerance: Decimal = Decimal(0), actor: str | None = None) -> dict:
    if session.get(SalesOrder, so_id) is not None:
        raise Conflict(f"sales order {so_id!r} already exists")
    if due.tzinfo is None:
        raise Conflict("the due time needs a time zone")
    get(session, Customer, customer_id, "customer")
    check_line_ids(lines, "sales order")
    for line in lines:
        get(session, Item, line.item_id, "item")
    session.add(SalesOrder(so_id=so_id, customer_id=customer_id, status=SalesOrderStatus.OPEN.value, due=due,
                           tolerance=tolerance))
    session.flush()
    session.add_all(SalesOrderLine(so_id=so_id, line=line.line, item_id=line.item_id, quantity=line.quantity,
                                   unit_price=line.unit_price, shipped=Decimal(0), promised=line.promised,
                                   promise_source=line.promise_source) for line in lines)
    add_event(session, DOCUMENT, so_id, "create", None, SalesOrderStatus.OPEN.value, actor, f"value {_value(lines)}")
    session.commit()
    return sales_order_view(session, so_id)


def cancel_sales_order(session: Session, so_id: str, actor: str | None = None, reason: str | None = None) -> dict:
    """Only before anything shipped."""
    return _step(session, so_id, SalesOrderAction.CANCEL, actor, reason)


def close_sales_order(session: Session, so_id: str, actor: str | None = None, reason: str | None = None) -> dict:
    """Once something shipped: the rest will not go."""
    return _step(session, so_id, SalesOrderAction.CLOSE, actor, reason)


def ship(session: Session, so_id: str, lines: Sequence[ShipmentLine], actor: str | None = None) -> dict:
    """Goods out of the locations named, from the lots named or picked FEFO/FIFO under each location's policy."""
    order = locked(session, SalesOrder, so_id, DOCUMENT)
    with as_conflict():
        transition(SalesOrderStatus(order.status), SalesOrderAction.SHIP_PARTLY)
        operations.shipment(_rule_lines(order.lines), lines, order.tolerance)
    locations = {location_id: get(session, Location, location_id, "location")
                 for location_id in sorted({line.location for line in lines})}
    picked, unknown = _pick_lots(session, {line.line: line.item_id for line in order.lines}, locations, lines)
    with as_conflict():
        shipment = operations.shipment(_rule_lines(order.lines), picked, order.tolerance)
        after = transition(SalesOrderStatus(order.status), shipment.action)
    source_ref = f"so:{so_id}/shipment:{next_step_number(session, DOCUMENT, so_id, SHIPMENT_ACTIONS)}"
    moves = stock_service.post_moves(session, shipment.moves, source_ref=source_ref)
    for line in order.lines:
        line.shipped = shipment.delivered[line.line]
    note = f"{source_ref}: {described(shipment.moves)}"
    if unknown:
        note += f"; not on record, shipped from the unknown lot: {'; '.join(unknown)}"
    change_status(session, DOCUMENT, order, shipment.action, after, actor, note)
    session.commit()
    return {"source_ref": source_ref, "moves": moves_out(moves), "sales_order": sales_order_view(session, so_id)}


def customer_return(session: Session, so_id: str, item_id: str, lot: str | None, location_id: str, quantity: Decimal,
                    reason: str, actor: str | None = None) -> dict:
    """Goods the customer sent back, into a location, with the reason."""
    order = locked(session, SalesOrder, so_id, DOCUMENT)
    check_delivered_something(order.status, RETURNABLE, "sales order", so_id, "take a customer return")
    get(session, Item, item_id, "item")
    get(session, Location, location_id, "location")
    if lot is not None and session.get(Lot, (item_id, lot)) is None:
        raise NotFound(f"lot {lot!r} of {item_id} does not exist")
    check_item_on_order(item_id, order.lines, "sales order", so_id)
    with as_conflict():
        move = operations.customer_return(item_id, lot, quantity, location_id, reason)
    source_ref = f"so:{so_id}/return:{next_step_number(session, DOCUMENT, so_id, (CUSTOMER_RETURN,))}"
    moves = stock_service.post_moves(session, [move], source_ref=source_ref)
    add_event(session, DOCUMENT, so_id, CUSTOMER_RETURN, order.status, order.status, actor,
              f"{source_ref}: {described([move])} into {location_id}: {reason.strip()}")
    session.commit()
    return {"source_ref": source_ref, "moves": moves_out(moves), "sales_order": sales_order_view(session, so_id)}


# --- views -------------------------------------------------------------------------------------

def list_sales_orders(session: Session, status: str | None = None, customer_id: str | None = None) -> list[dict]:
    query = select(SalesOrder).options(selectinload(SalesOrder.lines)).order_by(SalesOrder.due, SalesOrder.so_id)
    if status:
        query = query.where(SalesOrder.status == status)
    if customer_id:
        query = query.where(SalesOrder.customer_id == customer_id)
    return [_view(order) for order in session.scalars(query)]


def sales_order_view(session: Session, so_id: str) -> dict:
    return _view(get(session, SalesOrder, so_id, "sales order"))


def sales_order_events(session: Session, so_id: str) -> list[DocumentEvent]:
    get(session, SalesOrder, so_id, "sales order")
    return document_events(session, DOCUMENT, so_id)


def _view(order: SalesOrder) -> dict:
    lines = [{"line": line.line, "item_id": line.item_id, "quantity": line.quantity, "unit_price": line.unit_price,
              "shipped": line.shipped, "outstanding": max(line.quantity - line.shipped, Decimal(0)),
              "promised": line.promised, "promise_source": line.promise_source}
             for line in order.lines]
    return {"so_id": order.so_id, "customer_id": order.customer_id, "status": order.status, "due": order.due,
            "created_at": order.created_at, "tolerance": order.tolerance, "value": _value(order.lines), "lines": lines}


# --- helpers -----------------------------------------------------------------------------------


def _step(session: Session, so_id: str, action: SalesOrderAction, actor: str | None, note: str | None) -> dict:
    order = locked(session, SalesOrder, so_id, DOCUMENT)
    with as_conflict():
        after = transition(SalesOrderStatus(order.status), action)
    change_status(session, DOCUMENT, order, action, after, actor, note)
    session.commit()
    return sales_order_view(session, so_id)



def _pick_lots(session: Session, items: dict[str, str], locations: dict[str, Location],
               requested: Sequence[ShipmentLine]) -> tuple[list[ShipmentLine], list[str]]:
    """The shipment split into lots, and what shipped from the unknown lot; 409 when a 'block' location runs short."""
    balances = _lot_balances(session, sorted({(items[r.line], r.location) for r in requested}))
    picked: list[ShipmentLine] = []
    short, unknown = [], []
    for r in sorted(requested, key=lambda r: r.lot is None):  # named lots first, then FEFO/FIFO picks
        item, location = items[r.line], locations[r.location]
        lots = balances[(item, r.location)]
        candidates = [lot for lot in lots if r.lot is None or lot.lot == r.lot]
        with as_conflict():
            allocation = allocate(r.quantity, candidates, NegativeStockPolicy(location.negative_stock))
        asked = f"{r.quantity} {item}{'' if r.lot is None else f' lot {r.lot}'}"
        if allocation.held:
            held = sum((lot.quantity for lot in candidates if lot.quantity > 0), Decimal(0))
            short.append(f"{asked} asked at {r.location}, {held} on hand")
            continue
        balances[(item, r.location)] = remaining_after(lots, allocation)
        if allocation.shortage:
            unknown.append(f"{allocation.shortage} of {asked} at {r.location}")
        picked += [r._replace(quantity=pick.quantity, lot=None if pick.lot in (UNKNOWN_LOT, _UNTRACKED) else pick.lot)
                   for pick in allocation.picks]
    if short:
        raise Conflict(f"cannot ship: {'; '.join(short)}. The location's negative-stock policy is 'block': "
                       "goods that are not on record there cannot be shipped")
    return picked, unknown


def _lot_balances(session: Session, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], list[LotBalance]]:
    """Per (item, location): its known lots with expiry and receipt time, and what is booked without a lot."""
    pairs = list(pairs)
    known = lot_balances(session, sorted({location for _, location in pairs}),
                                      sorted({item for item, _ in pairs}))
    balances = {}
    for item, location in pairs:
        untracked = stock_service.lot_balances_at(session, location, item).get((item, None), Decimal(0))
        balances[(item, location)] = [*known.get((item, location), []),
                                      *([LotBalance(_UNTRACKED, untracked, None, _RECEIVED_LAST)] if untracked > 0 else [])]
    return balances


def _rule_lines(lines: Iterable[SalesOrderLine]) -> list[operations.OrderLine]:
    return [operations.OrderLine(line.line, line.item_id, line.quantity, line.shipped) for line in lines]


def _value(lines: Iterable) -> Decimal:
    with localcontext(EXACT):
        return sum((line.quantity * line.unit_price for line in lines), Decimal(0))
