"""Purchasing: suppliers, purchase orders with four-eyes approvals, goods receipts, returns to suppliers.

A purchase order is drafted with its lines (item, quantity, unit cost), submitted, approved as the
plant's thresholds ask, received (in one or several receipts), and closed; it may be rejected back to
draft while waiting for approvals, and cancelled before anything arrives. The pure rules of
`inventory.rules.operations` decide every step: the lifecycle (`transition`), how many approvals the
order's value needs (`approvals_needed`, the `approval_thresholds` rows as an `ApprovalPolicy`),
whether an approval counts (`approve`), the receipt's moves and the over-delivery tolerance
(`goods_receipt`), and a return's move (`return_to_supplier`). Each step writes a `document_events`
row and commits once; a refused step raises NotFound (404) or Conflict (409) and writes nothing.

Moves. A receipt posts 'goods receipt' moves into the locations named, at the line's unit cost, with
source_ref `po:<id>/receipt:<n>`; a return posts a 'return to supplier: <reason>' move out of the
location, with source_ref `po:<id>/return:<n>`; n counts the order's receipts (returns) from 1.

Decisions, stated:
- Only items of kind 'buy' may be ordered: a 'make' item is made here, from its BOM and routing.
- Approvals are `document_events` rows with action 'approve' and the approver as actor. Only those
  written after the order's last 'submit' and before any later 'reject' count: a rejection voids them
  and a resubmitted order needs all of them again. Each approval is its own event (from 'submitted'
  to 'submitted', the last one to 'approved'), so the trail shows who approved and in which order.
- An order needing no approval is approved as it is submitted: a 'submit' event, then an 'approve'
  event with no actor (no person approved it; its note says why). Having no actor, it is never
  listed among the approvals.
- The thresholds are read at each step, not frozen at submit. A plant that changes them while an
  order waits may find it needs more (or no more) approvals; rejecting and resubmitting settles it.
- Anyone may reject a submitted order (its creator withdrawing it too); a reason is required.
- Receipts are refused unless the order is approved or partly received, before anything is checked,
  so a closed or draft order says so rather than reporting an over-delivery.
- Returns to the supplier are possible once something was received (partly received, received or
  closed), for an item on the order only; the quantity may not exceed what the lot holds at the
  location, whatever its negative-stock policy: goods that are not there cannot be sent back. A
  return does not change the order's received quantities or status: what arrived did arrive.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal, localcontext
from typing import NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from kernel.rules.quantities import EXACT
from inventory.rules import operations
from inventory.rules.operations import PurchaseOrderAction, PurchaseOrderStatus, transition
from inventory.models import ApprovalThreshold, DocumentEvent, Item, Location, PurchaseOrder, PurchaseOrderLine, Supplier
from kernel.rules.refusals import Conflict, as_conflict
from inventory.services import stock as stock_service
from kernel.db.unit_of_work import create, get
from inventory.services.documents import add_event, describe, document_events, change_status, locked

DOCUMENT = "purchase_order"
RETURN_TO_SUPPLIER = "return_to_supplier"
RECEIPT_ACTIONS = (PurchaseOrderAction.RECEIVE_PARTLY.value, PurchaseOrderAction.RECEIVE_FULLY.value)
RETURNABLE = (PurchaseOrderStatus.PARTIALLY_RECEIVED, PurchaseOrderStatus.RECEIVED, PurchaseOrderStatus.CLOSED)


class PurchaseLine(NamedTuple):
    line: str
    item_id: str
    quantity: Decimal
    unit_cost: Decimal


# --- shared with the sales orders --------------------------------------------------------------

def next_step_number(session: Session, document: str, document_id: str, actions: Iterable[str]) -> int:
    """The number of the document's next receipt, shipment or return: one more than its events of those actions."""
    counted = session.scalar(select(func.count()).select_from(DocumentEvent).where(
        DocumentEvent.document == document, DocumentEvent.document_id == document_id,
        DocumentEvent.action.in_(list(actions))))
    return counted + 1


def check_delivered_something(status: str, returnable: Sequence, document: str, document_id: str, what: str) -> None:
    """Returns belong to orders that delivered something; 409 naming the statuses that allow them."""
    if status not in {s.value for s in returnable}:
        *others, last = (s.value.replace("_", " ") for s in returnable)
        allowed = f"{', '.join(others)} or {last}" if others else last
        raise Conflict(f"cannot {what} on {document} {document_id!r}: it is {status.replace('_', ' ')} and nothing "
                       f"was delivered on it (possible once it is {allowed})")


def check_item_on_order(item_id: str, lines: Iterable, document: str, document_id: str) -> None:
    if item_id not in {line.item_id for line in lines}:
        raise Conflict(f"{document} {document_id!r} has no line for {item_id}: a return names an item of the order")


def check_line_ids(lines: Sequence, document: str) -> None:
    if not lines:
        raise Conflict(f"a {document} needs at least one line")
    ids = [line.line for line in lines]
    twice = sorted({line_id for line_id in ids if ids.count(line_id) > 1})
    if twice:
        raise Conflict(f"line ids must be unique on a {document}: {', '.join(twice)} given more than once")


def described(moves: Iterable[operations.PlannedMove]) -> str:
    """"10 steel lot C-17, 4 screw": what the moves carry, for an event's note."""
    quantities: dict[tuple[str, str | None], Decimal] = {}
    with localcontext(EXACT):
        for move in moves:
            quantities[(move.item, move.lot)] = quantities.get((move.item, move.lot), Decimal(0)) + move.quantity
    return describe(quantities)


def moves_out(moves: Iterable) -> list[dict]:
    return [{"id": m.id, "ts": m.ts, "item_id": m.item_id, "lot": m.lot, "from_location": m.from_location,
             "to_location": m.to_location, "quantity": m.quantity, "unit_cost": m.unit_cost, "reason": m.reason,
             "source_ref": m.source_ref} for m in moves]


# --- suppliers ---------------------------------------------------------------------------------

def create_supplier(session: Session, supplier_id: str, name: str, email: str | None = None) -> Supplier:
    return create(session, Supplier, supplier_id, "supplier", supplier_id=supplier_id, name=name, email=email)


def list_suppliers(session: Session) -> list[Supplier]:
    return list(session.scalars(select(Supplier).order_by(Supplier.supplier_id)))


def get_supplier(session: Session, supplier_id: str) -> Supplier:
    return get(session, Supplier, supplier_id, "supplier")


# --- the purchase order lifecycle --------------------------------------------------------------

def create_purchase_order(session: Session, po_id: str, supplier_id: str, created_by: str, lines: Sequence[PurchaseLine],
                          due: date | None = None, tolerance: Decimal = Decimal(0)) -> dict:
    """A draft order; only 'buy' items."""
    add_draft_purchase_order(session, po_id, supplier_id, created_by, lines, due, tolerance)
    session.commit()
    return purchase_order_view(session, po_id)


def add_draft_purchase_order(session: Session, po_id: str, supplier_id: str, created_by: str, lines: Sequence[PurchaseLine],
                             due: date | None = None, tolerance: Decimal = Decimal(0)) -> None:
    """`create_purchase_order` in the caller's unit of work, for the caller to commit with the rest of its step."""
    if session.get(PurchaseOrder, po_id) is not None:
        raise Conflict(f"purchase order {po_id!r} already exists")
    get(session, Supplier, supplier_id, "supplier")
    check_line_ids(lines, "purchase order")
    for line in lines:
        item = get(session, Item, line.item_id, "item")
        if item.kind != "buy":
            raise Conflict(f"{item.item_id} is a '{item.kind}' item, made here: only 'buy' items are purchased")
    with as_conflict():
        value = operations.purchase_order_value(_rule_lines(lines))
    session.add(PurchaseOrder(po_id=po_id, supplier_id=supplier_id, status=PurchaseOrderStatus.DRAFT.value,
                              created_by=created_by, due=due, tolerance=tolerance))
    session.flush()
    session.add_all(PurchaseOrderLine(po_id=po_id, line=line.line, item_id=line.item_id, quantity=line.quantity,
                                      unit_cost=line.unit_cost, received=Decimal(0)) for line in lines)
    add_event(session, DOCUMENT, po_id, "create", None, PurchaseOrderStatus.DRAFT.value, created_by, f"value {value}")


def submit_purchase_order(session: Session, po_id: str, actor: str | None = None) -> dict:
    """To the approvers; straight to approved when its value needs no approval."""
    add_submission(session, po_id, actor)
    session.commit()
    return purchase_order_view(session, po_id)


def add_submission(session: Session, po_id: str, actor: str | None = None) -> None:
    """`submit_purchase_order` in the caller's unit of work, for the caller to commit with the rest of its step."""
    order = locked(session, PurchaseOrder, po_id, DOCUMENT)
    policy = _approval_policy(session)
    with as_conflict():
        submitted = transition(PurchaseOrderStatus(order.status), PurchaseOrderAction.SUBMIT)
        value = operations.purchase_order_value(_rule_lines(order.lines))
        needed = operations.approvals_needed(value, policy)
    change_status(session, DOCUMENT, order, PurchaseOrderAction.SUBMIT, submitted, actor,
                   f"value {value}: {needed} approval{'s' * (needed != 1)} needed")
    if needed == 0:
        with as_conflict():
            approved = transition(submitted, PurchaseOrderAction.APPROVE)
        change_status(session, DOCUMENT, order, PurchaseOrderAction.APPROVE, approved, None,
                       f"approved at submit: a value of {value} needs no approval")


def approve_purchase_order(session: Session, po_id: str, approver: str, note: str | None = None) -> dict:
    """One approval, by someone other than the creator and the earlier approvers; the last one approves the order."""
    order = locked(session, PurchaseOrder, po_id, DOCUMENT)
    policy = _approval_policy(session)
    with as_conflict():
        approved = transition(PurchaseOrderStatus(order.status), PurchaseOrderAction.APPROVE)
        needed = operations.approvals_needed(operations.purchase_order_value(_rule_lines(order.lines)), policy)
        approval = operations.approve(_approvers(document_events(session, DOCUMENT, po_id)), approver,
                                      order.created_by, needed)
    after = approved if approval.complete else PurchaseOrderStatus.SUBMITTED
    counted = needed - approval.still_needed
    change_status(session, DOCUMENT, order, PurchaseOrderAction.APPROVE, after, approval.approvers[-1],
                   "; ".join(filter(None, (f"approval {counted} of {needed}", note))))
    session.commit()
    return purchase_order_view(session, po_id)


def reject_purchase_order(session: Session, po_id: str, actor: str, reason: str) -> dict:
    """Back to draft; the approvals it had are void."""
    return _step(session, po_id, PurchaseOrderAction.REJECT, actor, reason)


def cancel_purchase_order(session: Session, po_id: str, actor: str | None = None, reason: str | None = None) -> dict:
    """Only before anything was received."""
    return _step(session, po_id, PurchaseOrderAction.CANCEL, actor, reason)


def close_purchase_order(session: Session, po_id: str, actor: str | None = None, reason: str | None = None) -> dict:
    """Once something was received: the rest will not come."""
    return _step(session, po_id, PurchaseOrderAction.CLOSE, actor, reason)


def receive_goods(session: Session, po_id: str, lines: Sequence[operations.ReceiptLine], actor: str | None = None) -> dict:
    """Goods into the locations named, at each line's unit cost; refused beyond the order's tolerance."""
    order = locked(session, PurchaseOrder, po_id, DOCUMENT)
    with as_conflict():
        transition(PurchaseOrderStatus(order.status), PurchaseOrderAction.RECEIVE_PARTLY)
    for location_id in sorted({line.location for line in lines}):
        get(session, Location, location_id, "location")
    with as_conflict():
        receipt = operations.goods_receipt(_rule_lines(order.lines, with_received=True), lines, order.tolerance)
        after = transition(PurchaseOrderStatus(order.status), receipt.action)
    source_ref = f"po:{po_id}/receipt:{next_step_number(session, DOCUMENT, po_id, RECEIPT_ACTIONS)}"
    moves = stock_service.post_moves(session, receipt.moves, source_ref=source_ref, expires=receipt.new_lots)
    for line in order.lines:
        line.received = receipt.delivered[line.line]
    change_status(session, DOCUMENT, order, receipt.action, after, actor, f"{source_ref}: {described(receipt.moves)}")
    session.commit()
    return {"source_ref": source_ref, "moves": moves_out(moves), "purchase_order": purchase_order_view(session, po_id)}


def return_to_supplier(session: Session, po_id: str, item_id: str, lot: str | None, location_id: str, quantity: Decimal,
                       reason: str, actor: str | None = None) -> dict:
    """Goods sent back to the order's supplier, out of a lot at a location that holds them."""
    order = locked(session, PurchaseOrder, po_id, DOCUMENT)
    check_delivered_something(order.status, RETURNABLE, "purchase order", po_id, "return goods to the supplier")
    get(session, Item, item_id, "item")
    get(session, Location, location_id, "location")
    check_item_on_order(item_id, order.lines, "purchase order", po_id)
    with as_conflict():
        move = operations.return_to_supplier(item_id, lot, quantity, location_id, reason)
    held = stock_service.lot_balances_at(session, location_id, item_id, for_update=True).get((item_id, lot), Decimal(0))
    if quantity > held:
        raise Conflict(f"cannot return {quantity} {item_id}{'' if lot is None else f' lot {lot}'} from {location_id}: "
                       f"it holds {max(held, Decimal(0))}; goods that are not there cannot be sent back")
    source_ref = f"po:{po_id}/return:{next_step_number(session, DOCUMENT, po_id, (RETURN_TO_SUPPLIER,))}"
    moves = stock_service.post_moves(session, [move], source_ref=source_ref)
    add_event(session, DOCUMENT, po_id, RETURN_TO_SUPPLIER, order.status, order.status, actor,
              f"{source_ref}: {described([move])} from {location_id}: {reason.strip()}")
    session.commit()
    return {"source_ref": source_ref, "moves": moves_out(moves), "purchase_order": purchase_order_view(session, po_id)}


# --- views -------------------------------------------------------------------------------------

def list_purchase_orders(session: Session, status: str | None = None, supplier_id: str | None = None) -> list[dict]:
    query = (select(PurchaseOrder).options(selectinload(PurchaseOrder.lines))
             .order_by(PurchaseOrder.created_at, PurchaseOrder.po_id))
    if status:
        query = query.where(PurchaseOrder.status == status)
    if supplier_id:
        query = query.where(PurchaseOrder.supplier_id == supplier_id)
    orders = list(session.scalars(query))
    events: dict[str, list[DocumentEvent]] = {}
    for event in session.scalars(select(DocumentEvent).where(
            DocumentEvent.document == DOCUMENT, DocumentEvent.document_id.in_([o.po_id for o in orders]),
            DocumentEvent.action.in_(("submit", "reject", "approve"))).order_by(DocumentEvent.id)):
        events.setdefault(event.document_id, []).append(event)
    policy = _approval_policy(session)
    return [_view(order, events.get(order.po_id, []), policy) for order in orders]


def purchase_order_view(session: Session, po_id: str) -> dict:
    order = get(session, PurchaseOrder, po_id, "purchase order")
    return _view(order, document_events(session, DOCUMENT, po_id), _approval_policy(session))


def purchase_order_events(session: Session, po_id: str) -> list[DocumentEvent]:
    get(session, PurchaseOrder, po_id, "purchase order")
    return document_events(session, DOCUMENT, po_id)


def _view(order: PurchaseOrder, events: Sequence[DocumentEvent], policy: operations.ApprovalPolicy) -> dict:
    """The order, its lines with what was received, its value and its approvals (those still counting)."""
    value = operations.purchase_order_value(_rule_lines(order.lines))
    needed = operations.approvals_needed(value, policy)
    approvals = _approval_events(events)
    lines = [{"line": line.line, "item_id": line.item_id, "quantity": line.quantity, "unit_cost": line.unit_cost,
              "received": line.received, "outstanding": max(line.quantity - line.received, Decimal(0))}
             for line in order.lines]
    return {"po_id": order.po_id, "supplier_id": order.supplier_id, "status": order.status,
            "created_by": order.created_by, "created_at": order.created_at, "due": order.due,
            "tolerance": order.tolerance, "value": value, "approvals_needed": needed,
            "approvals": [{"approver": event.actor, "ts": event.ts} for event in approvals], "lines": lines}


# --- helpers -----------------------------------------------------------------------------------


def _step(session: Session, po_id: str, action: PurchaseOrderAction, actor: str | None, note: str | None) -> dict:
    order = locked(session, PurchaseOrder, po_id, DOCUMENT)
    with as_conflict():
        after = transition(PurchaseOrderStatus(order.status), action)
    change_status(session, DOCUMENT, order, action, after, actor, note)
    session.commit()
    return purchase_order_view(session, po_id)



def _approval_policy(session: Session) -> operations.ApprovalPolicy:
    rows = session.execute(select(ApprovalThreshold.above_value, ApprovalThreshold.approvals)
                           .where(ApprovalThreshold.document == DOCUMENT))
    with as_conflict():
        return operations.ApprovalPolicy(tuple((value, approvals) for value, approvals in rows))


def _approval_events(events: Iterable[DocumentEvent]) -> list[DocumentEvent]:
    """The approvals that count: by a person, after the last submit, not voided by a later reject."""
    counting: list[DocumentEvent] = []
    for event in events:
        if event.action in (PurchaseOrderAction.SUBMIT.value, PurchaseOrderAction.REJECT.value):
            counting = []
        elif event.action == PurchaseOrderAction.APPROVE.value and event.actor is not None:
            counting.append(event)
    return counting


def _approvers(events: Iterable[DocumentEvent]) -> list[str]:
    return [event.actor for event in _approval_events(events)]


def _rule_lines(lines: Iterable, with_received: bool = False) -> list[operations.OrderLine]:
    return [operations.OrderLine(line.line, line.item_id, line.quantity, line.received if with_received else Decimal(0),
                                 line.unit_cost) for line in lines]
