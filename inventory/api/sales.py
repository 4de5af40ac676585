"""Sales: customers, sales orders, shipments, customer returns.

Entering a sales order answers a promise per line. Planning makes it, and planning sits above inventory: the
application puts planning's `promise_sales_lines` in `app.state.promise_sales_lines` (app/api.py), so inventory
imports no planning code (as `app.state.production_cost` for valuation).
"""

# No `from __future__ import annotations`: FastAPI resolves the route annotations at definition time.
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import AwareDatetime, BaseModel, Field, field_validator

from inventory.rules.operations import SalesOrderStatus, ShipmentLine
from kernel.auth import Caller
from kernel.http import Db, EventOut, Id, In, NamedInBody, Out, Quantity, Reason
from inventory.api.purchasing import ActorIn, Money, NoteIn, PartyIn, Tolerance, unique_lines
from inventory.api.stock import MoveOut
from inventory.services import sales

router = APIRouter()


class CustomerIn(PartyIn):
    customer_id: Id


class CustomerOut(Out):
    customer_id: str
    name: str
    email: str | None


class SalesLineIn(In):
    line: Id
    item_id: Id
    quantity: Quantity
    unit_price: Money


class SalesOrderIn(In):
    so_id: Id
    customer_id: Id
    due: AwareDatetime = Field(description="when the customer expects the goods, with its time zone")
    tolerance: Tolerance = Decimal(0)
    lines: list[SalesLineIn] = Field(min_length=1)
    actor: NamedInBody = None

    unique_line_ids = unique_lines("sales order")

    @field_validator("due")
    @classmethod
    def within_the_calendar(cls, due: datetime) -> datetime:
        try:
            due.astimezone(UTC)
        except OverflowError:
            raise ValueError("the due time falls after 9999-12-31 in UTC, beyond the calendar") from None
        return due


class ShipmentLineIn(In):
    line: Id = Field(description="the sales order line shipped against")
    location_id: Id = Field(description="shipped from")
    quantity: Quantity
    lot: Id | None = Field(default=None, description="none: picked first-expiry-first-out, then first-in-first-out")


class ShipmentIn(ActorIn):
    lines: list[ShipmentLineIn] = Field(min_length=1)


class CustomerReturnIn(ActorIn):
    item_id: Id
    lot: Id | None = Field(default=None, description="the lot coming back; none for an item not tracked by lot")
    location_id: Id = Field(description="received into")
    quantity: Quantity
    reason: Reason


Day = date  # the promise's field is named `date`


class LinePromiseOut(BaseModel):
    demand_id: str = Field(description="the line's demand in the plan: GET /planning/runs/live/pegging/{demand_id} "
                                       "walks to the planned and firm orders below it")
    date: Day | None = Field(description="none: not within the horizon, or no plan (see reasons)")
    source: Literal["atp", "make", "buy", "none"] = Field(
        description="atp: available to promise; make or buy: capable to promise beyond it")
    reasons: list[str]


class SalesLineOut(BaseModel):
    line: str
    item_id: str
    quantity: Decimal
    unit_price: Decimal
    shipped: Decimal
    outstanding: Decimal = Field(description="ordered − shipped, never below 0")
    promise: LinePromiseOut | None = Field(default=None, description=(
        "answered when the order is entered (ATP first, CTP beyond, from the plan as it stood without the order; "
        "nothing booked); none on later reads, which carry what was kept of it in `promised`"))
    promised: Day | None = Field(default=None, description="the day promised when the order was entered (none: no "
                                 "date could be promised, or the order was entered before promises were kept)")
    promise_source: Literal["atp", "make", "buy", "none"] | None = Field(default=None, description="what the promise rested on")


class SalesOrderOut(BaseModel):
    so_id: str
    customer_id: str
    status: SalesOrderStatus
    due: datetime
    created_at: datetime
    tolerance: Decimal
    value: Decimal = Field(description="Σ quantity × unit price, exact")
    lines: list[SalesLineOut]


class SalesStepOut(BaseModel):
    source_ref: str
    moves: list[MoveOut]
    sales_order: SalesOrderOut


# --- customers ---------------------------------------------------------------------------------


@router.post("/customers", status_code=201, response_model=CustomerOut)
def create_customer(body: CustomerIn, db: Db):
    return sales.create_customer(db, body.customer_id, body.name, body.email)


@router.get("/customers", response_model=list[CustomerOut])
def list_customers(db: Db):
    return sales.list_customers(db)


@router.get("/customers/{customer_id}", response_model=CustomerOut)
def get_customer(customer_id: str, db: Db):
    return sales.get_customer(db, customer_id)


# --- sales orders ------------------------------------------------------------------------------


@router.post("/sales-orders", status_code=201, response_model=SalesOrderOut)
def create_sales_order(body: SalesOrderIn, db: Db, caller: Caller, request: Request):
    """Entered, with a promise per line (see `promise`)."""
    promises = request.app.state.promise_sales_lines(
        db, body.so_id, body.due, [(line.line, line.item_id, line.quantity) for line in body.lines], datetime.now(UTC))
    lines = [sales.SalesLine(line.line, line.item_id, line.quantity, line.unit_price, promises[line.line]["date"],
                             promises[line.line]["source"]) for line in body.lines]
    order = sales.create_sales_order(db, body.so_id, body.customer_id, body.due, lines, body.tolerance, caller.name)
    return {**order, "lines": [{**line, "promise": promises.get(line["line"])} for line in order["lines"]]}


@router.get("/sales-orders", response_model=list[SalesOrderOut])
def list_sales_orders(db: Db, status: SalesOrderStatus | None = None, customer_id: str | None = None):
    """By due time."""
    return sales.list_sales_orders(db, status.value if status else None, customer_id)


@router.get("/sales-orders/{so_id}", response_model=SalesOrderOut)
def get_sales_order(so_id: str, db: Db):
    return sales.sales_order_view(db, so_id)


@router.get("/sales-orders/{so_id}/events", response_model=list[EventOut])
def sales_order_events(so_id: str, db: Db):
    """The audit trail: every step, who took it, from which status to which."""
    return sales.sales_order_events(db, so_id)


@router.post("/sales-orders/{so_id}/cancel", response_model=SalesOrderOut)
def cancel_sales_order(so_id: str, db: Db, caller: Caller, body: NoteIn | None = None):
    """Only before anything shipped."""
    body = body or NoteIn()
    return sales.cancel_sales_order(db, so_id, caller.name, body.reason)


@router.post("/sales-orders/{so_id}/close", response_model=SalesOrderOut)
def close_sales_order(so_id: str, db: Db, caller: Caller, body: NoteIn | None = None):
    """Once something shipped: the rest will not go."""
    body = body or NoteIn()
    return sales.close_sales_order(db, so_id, caller.name, body.reason)


@router.post("/sales-orders/{so_id}/shipments", status_code=201, response_model=SalesStepOut)
def ship(so_id: str, body: ShipmentIn, db: Db, caller: Caller):
    """Goods out of locations, from the lots named or picked FEFO/FIFO; a 'block' location never ships
    more than it holds, an 'allow' one ships the shortfall from the unknown lot."""
    lines = [ShipmentLine(line.line, line.location_id, line.quantity, line.lot) for line in body.lines]
    return sales.ship(db, so_id, lines, caller.name)


@router.post("/sales-orders/{so_id}/returns", status_code=201, response_model=SalesStepOut)
def customer_return(so_id: str, body: CustomerReturnIn, db: Db, caller: Caller):
    """Goods the customer sent back, into a location, with the reason."""
    return sales.customer_return(db, so_id, body.item_id, body.lot, body.location_id, body.quantity, body.reason,
                                 caller.name)
