"""Purchasing: suppliers, purchase orders with approvals, goods receipts, returns to suppliers."""

# No `from __future__ import annotations`: FastAPI resolves the route annotations at definition time.
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, Field, field_validator

from inventory.rules.operations import PurchaseOrderStatus, ReceiptLine
from kernel.auth import Caller
from kernel.http import Db, EventOut, Id, In, NamedInBody, Out, Quantity, Reason
from inventory.api.stock import MoveOut
from inventory.services import purchasing

router = APIRouter()

# stock_moves.unit_cost keeps 6 decimals: a finer purchase price would be rounded on the receipt's moves
Money = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=6)]
Tolerance = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=6,
                                     description="over-delivery allowed, a fraction: 0.05 = 5 % more than ordered")]
Email = Annotated[str, Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]


class PartyIn(In):
    name: str = Field(min_length=1, max_length=200)
    email: Email | None = None


class SupplierIn(PartyIn):
    supplier_id: Id


class SupplierOut(Out):
    supplier_id: str
    name: str
    email: str | None


class PurchaseLineIn(In):
    line: Id
    item_id: Id
    quantity: Quantity
    unit_cost: Money


def unique_lines(document: str):
    """A validator: line ids unique on the order, else the request is malformed (422)."""
    def check(lines: list) -> list:
        purchasing.check_line_ids(lines, document)
        return lines
    return field_validator("lines")(check)


class PurchaseOrderIn(In):
    po_id: Id
    supplier_id: Id
    created_by: NamedInBody = None
    due: date | None = None
    tolerance: Tolerance = Decimal(0)
    lines: list[PurchaseLineIn] = Field(min_length=1)

    unique_line_ids = unique_lines("purchase order")


class ActorIn(In):
    actor: NamedInBody = None


class NoteIn(ActorIn):
    reason: Reason | None = None


class ApproveIn(In):
    approver: NamedInBody = None
    note: Reason | None = None


class RejectIn(In):
    actor: NamedInBody = None
    reason: Reason


class ReceiptLineIn(In):
    line: Id = Field(description="the purchase order line received against")
    location_id: Id
    quantity: Quantity
    lot: Id | None = Field(default=None, description="the supplier's lot; none for an item not tracked by lot")
    expires: date | None = None


class ReceiptIn(ActorIn):
    lines: list[ReceiptLineIn] = Field(min_length=1)


class ReturnIn(ActorIn):
    item_id: Id
    lot: Id | None = Field(default=None, description="the lot sent back; none for an item not tracked by lot")
    location_id: Id = Field(description="where the goods are taken from")
    quantity: Quantity
    reason: Reason


class PurchaseLineOut(BaseModel):
    line: str
    item_id: str
    quantity: Decimal
    unit_cost: Decimal
    received: Decimal
    outstanding: Decimal = Field(description="ordered − received, never below 0")


class ApprovalOut(BaseModel):
    approver: str
    ts: datetime


class PurchaseOrderOut(BaseModel):
    po_id: str
    supplier_id: str
    status: PurchaseOrderStatus
    created_by: str
    created_at: datetime
    due: date | None
    tolerance: Decimal
    value: Decimal = Field(description="Σ quantity × unit cost, exact")
    approvals_needed: int = Field(description="for this value under the plant's current approval thresholds")
    approvals: list[ApprovalOut] = Field(description="the approvals that count: since the last submit, none voided by a reject")
    lines: list[PurchaseLineOut]


class PurchaseStepOut(BaseModel):
    source_ref: str
    moves: list[MoveOut]
    purchase_order: PurchaseOrderOut


# --- suppliers ---------------------------------------------------------------------------------


@router.post("/suppliers", status_code=201, response_model=SupplierOut)
def create_supplier(body: SupplierIn, db: Db):
    return purchasing.create_supplier(db, body.supplier_id, body.name, body.email)


@router.get("/suppliers", response_model=list[SupplierOut])
def list_suppliers(db: Db):
    return purchasing.list_suppliers(db)


@router.get("/suppliers/{supplier_id}", response_model=SupplierOut)
def get_supplier(supplier_id: str, db: Db):
    return purchasing.get_supplier(db, supplier_id)


# --- purchase orders ---------------------------------------------------------------------------


@router.post("/purchase-orders", status_code=201, response_model=PurchaseOrderOut)
def create_purchase_order(body: PurchaseOrderIn, db: Db, caller: Caller):
    """A draft order of 'buy' items from a known supplier."""
    lines = [purchasing.PurchaseLine(line.line, line.item_id, line.quantity, line.unit_cost) for line in body.lines]
    return purchasing.create_purchase_order(db, body.po_id, body.supplier_id, caller.name, lines, body.due, body.tolerance)


@router.get("/purchase-orders", response_model=list[PurchaseOrderOut])
def list_purchase_orders(db: Db, status: PurchaseOrderStatus | None = None, supplier_id: str | None = None):
    return purchasing.list_purchase_orders(db, status.value if status else None, supplier_id)


@router.get("/purchase-orders/{po_id}", response_model=PurchaseOrderOut)
def get_purchase_order(po_id: str, db: Db):
    return purchasing.purchase_order_view(db, po_id)


@router.get("/purchase-orders/{po_id}/events", response_model=list[EventOut])
def purchase_order_events(po_id: str, db: Db):
    """The audit trail: every step, who took it, from which status to which."""
    return purchasing.purchase_order_events(db, po_id)


@router.post("/purchase-orders/{po_id}/submit", response_model=PurchaseOrderOut)
def submit_purchase_order(po_id: str, db: Db, caller: Caller, body: ActorIn | None = None):
    """To the approvers; approved at once when its value needs no approval."""
    return purchasing.submit_purchase_order(db, po_id, caller.name)


@router.post("/purchase-orders/{po_id}/approve", response_model=PurchaseOrderOut)
def approve_purchase_order(po_id: str, body: ApproveIn, db: Db, caller: Caller):
    """One approval; the order is approved once it has as many as its value needs."""
    return purchasing.approve_purchase_order(db, po_id, caller.name, body.note)


@router.post("/purchase-orders/{po_id}/reject", response_model=PurchaseOrderOut)
def reject_purchase_order(po_id: str, body: RejectIn, db: Db, caller: Caller):
    """Back to draft; its approvals are void."""
    return purchasing.reject_purchase_order(db, po_id, caller.name, body.reason)


@router.post("/purchase-orders/{po_id}/cancel", response_model=PurchaseOrderOut)
def cancel_purchase_order(po_id: str, db: Db, caller: Caller, body: NoteIn | None = None):
    """Only before anything was received."""
    body = body or NoteIn()
    return purchasing.cancel_purchase_order(db, po_id, caller.name, body.reason)


@router.post("/purchase-orders/{po_id}/close", response_model=PurchaseOrderOut)
def close_purchase_order(po_id: str, db: Db, caller: Caller, body: NoteIn | None = None):
    """Once something was received: the rest will not come."""
    body = body or NoteIn()
    return purchasing.close_purchase_order(db, po_id, caller.name, body.reason)


@router.post("/purchase-orders/{po_id}/receipts", status_code=201, response_model=PurchaseStepOut)
def receive_goods(po_id: str, body: ReceiptIn, db: Db, caller: Caller):
    """Goods received into locations at the lines' unit costs; refused beyond the order's tolerance."""
    lines = [ReceiptLine(line.line, line.location_id, line.quantity, line.lot, line.expires) for line in body.lines]
    return purchasing.receive_goods(db, po_id, lines, caller.name)


@router.post("/purchase-orders/{po_id}/returns", status_code=201, response_model=PurchaseStepOut)
def return_to_supplier(po_id: str, body: ReturnIn, db: Db, caller: Caller):
    """Goods sent back to the supplier from a lot at a location; never more than the lot holds there."""
    return purchasing.return_to_supplier(db, po_id, body.item_id, body.lot, body.location_id, body.quantity, body.reason,
                                         caller.name)
