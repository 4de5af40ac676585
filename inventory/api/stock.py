"""Stock: receipts, on hand, the ledger, lot genealogy, backflush exceptions."""

# No `from __future__ import annotations`: FastAPI resolves the route annotations at definition time.
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from kernel.http import Db, Id, In, Out, Quantity
from inventory.services import stock

router = APIRouter()


class ReceiptIn(In):
    item_id: Id
    lot: Id
    to_location: Id
    quantity: Quantity
    expires: date | None = None
    unit_cost: Decimal | None = Field(default=None, ge=0)
    reason: str = "receipt"
    source_ref: str = Field(min_length=1, description="the document this receipt comes from, e.g. a goods receipt number")


class MoveOut(Out):
    id: int
    ts: datetime
    item_id: str
    lot: str | None
    from_location: str | None
    to_location: str | None
    quantity: Decimal
    unit_cost: Decimal | None
    reason: str
    source_ref: str


class OnHandOut(BaseModel):
    item_id: str
    location_id: str
    lot: str | None
    expires: date | None
    quantity: Decimal


class TracedLot(BaseModel):
    item_id: str
    lot: str | None = Field(description="null: material consumed beyond the recorded stock")
    quantity: Decimal


class TraceOut(BaseModel):
    item_id: str
    lot: str
    direction: Literal["back", "forward"]
    lots: list[TracedLot]


class BackflushExceptionOut(BaseModel):
    id: int
    ts: datetime
    source_ref: str
    work_order_id: str
    item_id: str
    location_id: str | None
    quantity: Decimal
    kind: Literal["shortage", "blocked", "no_location"]
    reason: str
    resolved: bool


@router.post("/stock/receipts", status_code=201, response_model=MoveOut)
def receive(body: ReceiptIn, db: Db):
    return stock.receive(db, **body.model_dump())


@router.get("/stock/on-hand", response_model=list[OnHandOut])
def on_hand(db: Db, item_id: str | None = None, location_id: str | None = None):
    return stock.on_hand(db, item_id, location_id)


@router.get("/stock/moves", response_model=list[MoveOut])
def moves(db: Db, item_id: str | None = None, location_id: str | None = None, source_ref: str | None = None,
          limit: Annotated[int, Query(gt=0, le=10_000)] = 500):
    return stock.ledger(db, item_id=item_id, location_id=location_id, source_ref=source_ref, limit=limit)


@router.get("/lots/{item_id}/{lot}/trace", response_model=TraceOut)
def trace(item_id: str, lot: str, db: Db, direction: Literal["back", "forward"] = "back"):
    """back: which component lots went into this lot; forward: which lots were made from it."""
    return TraceOut(item_id=item_id, lot=lot, direction=direction, lots=stock.trace(db, item_id, lot, direction))


@router.get("/backflush/exceptions", response_model=list[BackflushExceptionOut])
def exceptions(db: Db, work_order_id: str | None = None, only_open: bool = True):
    """Shortages consumed from an unknown lot, consumption blocked by a location, lines without a line side."""
    return stock.backflush_exceptions(db, work_order_id, only_open)
