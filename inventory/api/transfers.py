"""Transfers between locations (request → approve → ship → receive → post), available stock, and stocktakes."""

# No `from __future__ import annotations`: FastAPI resolves the route annotations at definition time.
from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, Field

from kernel.auth import Caller
from kernel.http import Db, EventOut, Id, In, NamedInBody, Out, Person, Quantity, Reason
from inventory.services import stocktake, transfers

router = APIRouter()

CountedQuantity = Annotated[Decimal, Field(ge=0, max_digits=24, decimal_places=9)]


class TransferIn(In):
    transfer_id: Id
    from_location: Id
    to_location: Id
    lines: dict[Id, Quantity] = Field(min_length=1, description="item → quantity requested")
    requested_by: NamedInBody = None


class ApproveIn(In):
    approver: NamedInBody = None


class LineIn(In):
    item_id: Id
    quantity: Quantity
    lot: Id | None = None


class ShipIn(In):
    lines: list[LineIn] | None = Field(
        default=None, description="per item, the lots to ship (a line without a lot is picked FEFO/FIFO); "
                                  "none: every requested quantity, picked FEFO/FIFO")
    actor: NamedInBody = None


class ReceiveIn(In):
    lines: list[LineIn] = Field(min_length=1, description="the lot may be left out when the item is in transit in one lot")
    actor: NamedInBody = None


class WriteOffIn(ReceiveIn):
    reason: Reason


class ActorIn(In):
    actor: NamedInBody = None


class CancelIn(ActorIn):
    reason: Reason | None = None


class TransitLotOut(BaseModel):
    lot: str | None
    shipped: Decimal
    received: Decimal
    written_off: Decimal
    in_transit: Decimal


class TransferLineOut(BaseModel):
    item_id: str
    requested: Decimal
    shipped: Decimal
    received: Decimal
    written_off: Decimal
    in_transit: Decimal
    lots: list[TransitLotOut]


class TransferOut(BaseModel):
    transfer_id: str
    from_location: str
    to_location: str
    status: str
    requested_by: str
    created_at: datetime
    transit_location: str | None = Field(description="where the shipped goods sit until received or written off")
    lines: list[TransferLineOut]


class AvailableOut(BaseModel):
    item_id: str
    location_id: str
    quantity: Decimal


class StocktakeIn(In):
    stocktake_id: Id
    location_id: Id
    complete: bool = Field(default=False, description="the whole location is counted: what is not counted is zeroed")
    actor: NamedInBody = None


class CountIn(In):
    item_id: Id
    lot: Id | None = None
    quantity: CountedQuantity
    counted_by: Person | None = Field(default=None, description="who counted, as on the count sheet; none: the caller")


class PostStocktakeIn(ActorIn):
    reason: Reason


class CountOut(BaseModel):
    item_id: str
    lot: str | None
    counted: Decimal
    book: Decimal
    difference: Decimal = Field(description="counted − book")
    counted_by: str | None
    counted_at: datetime


class AdjustmentOut(BaseModel):
    item_id: str
    lot: str | None
    book: Decimal
    counted: Decimal
    quantity: Decimal = Field(description="+ a gain received into the location, − a loss issued from it")
    reason: str


class StocktakeSummaryOut(Out):
    stocktake_id: str
    location_id: str
    status: str
    complete: bool
    created_at: datetime


class StocktakeOut(StocktakeSummaryOut):
    counts: list[CountOut]
    adjustments: list[AdjustmentOut] = Field(description="while counting, what posting would do; once posted, what it did")


def _lines(lines: list[LineIn] | None) -> list[transfers.Line] | None:
    return None if lines is None else [transfers.Line(line.item_id, line.quantity, line.lot) for line in lines]


# --- transfers ---------------------------------------------------------------------------------


@router.post("/transfers", status_code=201, response_model=TransferOut)
def request_transfer(body: TransferIn, db: Db, caller: Caller):
    return transfers.request_transfer(db, body.transfer_id, body.from_location, body.to_location, body.lines,
                                      caller.name)


@router.get("/transfers", response_model=list[TransferOut])
def list_transfers(db: Db, status: str | None = None):
    return transfers.list_transfers(db, status)


@router.get("/transfers/{transfer_id}", response_model=TransferOut)
def get_transfer(transfer_id: str, db: Db):
    return transfers.transfer_view(db, transfer_id)


@router.get("/transfers/{transfer_id}/events", response_model=list[EventOut])
def transfer_events(transfer_id: str, db: Db):
    return transfers.transfer_events(db, transfer_id)


@router.post("/transfers/{transfer_id}/approve", response_model=TransferOut)
def approve_transfer(transfer_id: str, body: ApproveIn, db: Db, caller: Caller):
    return transfers.approve_transfer(db, transfer_id, caller.name)


@router.post("/transfers/{transfer_id}/ship", response_model=TransferOut)
def ship_transfer(transfer_id: str, db: Db, caller: Caller, body: ShipIn | None = None):
    """Goods leave the source for the transfer's transit location; never more than the source holds."""
    body = body or ShipIn()
    return transfers.ship_transfer(db, transfer_id, _lines(body.lines), caller.name)


@router.post("/transfers/{transfer_id}/receive", response_model=TransferOut)
def receive_transfer(transfer_id: str, body: ReceiveIn, db: Db, caller: Caller):
    """What is not received stays in transit, for a further receipt or a write-off."""
    return transfers.receive_transfer(db, transfer_id, _lines(body.lines), caller.name)


@router.post("/transfers/{transfer_id}/write-off", response_model=TransferOut)
def write_off_transfer(transfer_id: str, body: WriteOffIn, db: Db, caller: Caller):
    """Goods lost in transit leave the plant's stock, with the reason."""
    return transfers.write_off_transfer(db, transfer_id, _lines(body.lines), body.reason, caller.name)


@router.post("/transfers/{transfer_id}/post", response_model=TransferOut)
def post_transfer(transfer_id: str, db: Db, caller: Caller, body: ActorIn | None = None):
    """Refused while anything remains in transit."""
    return transfers.post_transfer(db, transfer_id, caller.name)


@router.post("/transfers/{transfer_id}/cancel", response_model=TransferOut)
def cancel_transfer(transfer_id: str, db: Db, caller: Caller, body: CancelIn | None = None):
    """Only before shipping."""
    body = body or CancelIn()
    return transfers.cancel_transfer(db, transfer_id, caller.name, body.reason)


# --- available stock ---------------------------------------------------------------------------


@router.get("/stock/available", response_model=list[AvailableOut])
def available(db: Db, item_id: str | None = None, location_id: str | None = None):
    """Per item and warehouse or line-side location, what is on hand there; goods in transit are available nowhere."""
    return transfers.available_stock(db, item_id, location_id)


# --- stocktakes --------------------------------------------------------------------------------


@router.post("/stocktakes", status_code=201, response_model=StocktakeOut)
def open_stocktake(body: StocktakeIn, db: Db, caller: Caller):
    return stocktake.open_stocktake(db, body.stocktake_id, body.location_id, body.complete, caller.name)


@router.get("/stocktakes", response_model=list[StocktakeSummaryOut])
def list_stocktakes(db: Db, status: str | None = None, location_id: str | None = None):
    return stocktake.list_stocktakes(db, status, location_id)


@router.get("/stocktakes/{stocktake_id}", response_model=StocktakeOut)
def get_stocktake(stocktake_id: str, db: Db):
    """Each count beside the book and the difference, and the adjustments posting makes."""
    return stocktake.stocktake_view(db, stocktake_id)


@router.get("/stocktakes/{stocktake_id}/events", response_model=list[EventOut])
def stocktake_events(stocktake_id: str, db: Db):
    return stocktake.stocktake_events(db, stocktake_id)


@router.put("/stocktakes/{stocktake_id}/counts", response_model=StocktakeOut)
def record_counts(stocktake_id: str, counts: list[CountIn], db: Db, caller: Caller):
    """A recount of an (item, lot) replaces its earlier count."""
    return stocktake.record_counts(db, stocktake_id, [stocktake.Count(c.item_id, c.lot, c.quantity, c.counted_by or caller.name)
                                                      for c in counts])


@router.post("/stocktakes/{stocktake_id}/post", response_model=StocktakeOut)
def post_stocktake(stocktake_id: str, body: PostStocktakeIn, db: Db, caller: Caller):
    """Post the moves that bring the book to the counts; once only."""
    return stocktake.post_stocktake(db, stocktake_id, body.reason, caller.name)


@router.post("/stocktakes/{stocktake_id}/cancel", response_model=StocktakeOut)
def cancel_stocktake(stocktake_id: str, db: Db, caller: Caller, body: CancelIn | None = None):
    body = body or CancelIn()
    return stocktake.cancel_stocktake(db, stocktake_id, caller.name, body.reason)
