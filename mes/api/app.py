"""The HTTP API (FastAPI; OpenAPI at /docs and /openapi.json).

Errors are 4xx with a message a person can act on: 404 for something that does not exist, 409 for
a request that contradicts what is stored (a lifecycle step out of order, a duplicate id), 422 for
a malformed request. Nothing is written by a request that fails.
"""

# No `from __future__ import annotations` here: FastAPI resolves the route annotations at
# definition time, and the `Db` dependency alias only exists inside create_app.
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from mes.models import Item, Location, Machine, MachineItem, ScrapReason, WorkCentre, WorkOrder, make_engine
from mes.rules.workorders import InvalidTransition
from mes.services import Conflict, NotFound, masterdata, stock, workorders

Id = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]
Quantity = Annotated[Decimal, Field(gt=0, max_digits=24, decimal_places=9)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ItemIn(_In):
    item_id: Id
    name: str = Field(min_length=1)
    kind: Literal["make", "buy"]
    uom: str = Field(min_length=1, max_length=16)
    shelf_life_days: int | None = Field(default=None, gt=0)
    standard_cost: Decimal | None = Field(default=None, ge=0)


class ItemOut(_Out):
    item_id: str
    name: str
    kind: str
    uom: str
    shelf_life_days: int | None
    standard_cost: Decimal | None


class ItemPatch(_In):
    name: str | None = Field(default=None, min_length=1)
    uom: str | None = Field(default=None, min_length=1, max_length=16)
    shelf_life_days: int | None = Field(default=None, gt=0)
    standard_cost: Decimal | None = Field(default=None, ge=0)


class WorkCentreIn(_In):
    work_centre_id: Id
    name: str = Field(min_length=1)
    hourly_rate: Decimal = Field(default=Decimal(0), ge=0, description="cost of one hour of machine time")


class WorkCentreOut(_Out):
    work_centre_id: str
    name: str
    hourly_rate: Decimal


class MachineIn(_In):
    work_centre_id: str | None = Field(description="the work centre the machine belongs to (null: none)")


class MachineOut(_Out):
    machine_id: str
    site: str
    area: str
    line: str
    protocol: str
    ideal_cycle_s: Decimal
    work_centre_id: str | None


class MachineItemIn(_In):
    ideal_cycle_s: Decimal = Field(gt=0, description="seconds per unit of this item on this machine at ideal speed")


class MachineItemOut(_Out):
    machine_id: str
    item_id: str
    ideal_cycle_s: Decimal


class BomLineIn(_In):
    component_item: Id
    quantity_per: Quantity
    scrap_factor: Decimal = Field(default=Decimal(0), ge=0)
    phantom: bool = False
    effective_from: date | None = None
    effective_to: date | None = None


class BomOut(BaseModel):
    item_id: str
    on: date
    lines: list[BomLineIn]
    per_unit: dict[str, Decimal] = Field(description="components one unit consumes on `on`, phantoms exploded")


class LocationIn(_In):
    location_id: Id
    name: str = Field(min_length=1)
    kind: Literal["warehouse", "line_side"]
    line: str | None = None
    negative_stock: Literal["allow", "block"] = "allow"


class LocationOut(_Out):
    location_id: str
    name: str
    kind: str
    line: str | None
    negative_stock: str


class ReceiptIn(_In):
    item_id: Id
    lot: Id
    to_location: Id
    quantity: Quantity
    expires: date | None = None
    unit_cost: Decimal | None = Field(default=None, ge=0)
    reason: str = "receipt"
    source_ref: str = Field(min_length=1, description="the document this receipt comes from, e.g. a goods receipt number")


class MoveOut(_Out):
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


class WorkOrderIn(_In):
    work_order_id: Id
    item_id: Id
    quantity: int = Field(gt=0)
    due: date | None = None
    over_tolerance: Decimal = Field(default=Decimal(0), ge=0, description="0.05 = up to 5 % over quantity")
    auto_complete: bool = False


class ComponentOut(_Out):
    component_item: str
    quantity_per_unit: Decimal


class WorkOrderOut(_Out):
    work_order_id: str
    item_id: str
    quantity: int
    due: date | None
    status: str
    over_tolerance: Decimal
    auto_complete: bool
    released_at: datetime | None
    held_reason: str | None = Field(description="set when backflush was blocked by a location's negative-stock policy")
    components: list[ComponentOut]


class ProgressOut(_Out):
    good: int
    scrap: int
    yield_fraction: Decimal | None = Field(description="good / (good + scrap); none before the first unit")
    percent_complete: Decimal
    rate_per_hour: Decimal | None = Field(description="good units per hour over the last 10 minutes run")
    projected_finish: datetime | None
    most_good_allowed: int
    over_tolerance: bool


class UnassignedOut(BaseModel):
    machine_id: str
    good: int
    scrap: int
    energy_wh: int
    first_ts: datetime
    last_ts: datetime
    plc_reported: list[str] = Field(description="order ids the PLC reported meanwhile that could not count")


class DispatchOut(_Out):
    source: Literal["api", "plc"]
    work_order_id: str | None
    reported_order: str | None
    rejected_reason: str | None
    start_ts: datetime
    end_ts: datetime | None


class ScrapReasonIn(_In):
    code: Id
    description: str = Field(min_length=1)
    active: bool = True


class ScrapReasonOut(_Out):
    code: str
    description: str
    active: bool


class ScrapClassificationIn(_In):
    reason_code: str
    quantity: int = Field(description="units given this reason; negative to take units back from it")
    comment: str | None = None
    actor: str | None = None


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


class ReassignIn(_In):
    machine_id: str
    work_order_id: str
    start: datetime
    end: datetime
    actor: str | None = None


class ReassignOut(BaseModel):
    intervals: int
    good: int
    scrap: int


class ReleaseHoldIn(_In):
    force: bool = Field(default=False, description="consume what stock still does not cover from an unknown lot")
    actor: str | None = None


class ActionIn(_In):
    machine_id: str | None = Field(default=None, description="required for start and resume")
    actor: str | None = Field(default=None, description="who did it, for the audit trail")


def create_app(database_url: str) -> FastAPI:
    app = FastAPI(title="Open MES", version="0.1.0",
                  description="Master data, work orders and stock of the Open MES. Errors: 404 unknown, 409 conflict, 422 malformed.")
    sessions = sessionmaker(make_engine(database_url), expire_on_commit=False)

    def session() -> Iterator[Session]:
        with sessions() as opened:
            yield opened

    Db = Annotated[Session, Depends(session)]

    @app.exception_handler(NotFound)
    async def not_found(_: Request, error: NotFound) -> JSONResponse:
        return JSONResponse(status_code=404, content={"detail": str(error)})

    @app.exception_handler(Conflict)
    @app.exception_handler(InvalidTransition)
    async def conflict(_: Request, error: ValueError) -> JSONResponse:
        return JSONResponse(status_code=409, content={"detail": str(error)})

    @app.exception_handler(IntegrityError)
    async def refused(_: Request, error: IntegrityError) -> JSONResponse:
        return JSONResponse(status_code=409, content={"detail": f"refused by the database: {error.orig}".strip()})

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.post("/items", status_code=201, response_model=ItemOut)
    def create_item(body: ItemIn, db: Db):
        return masterdata.create(db, Item, body.item_id, "item", **body.model_dump())

    @app.get("/items", response_model=list[ItemOut])
    def list_items(db: Db):
        return db.scalars(select(Item).order_by(Item.item_id)).all()

    @app.get("/items/{item_id}", response_model=ItemOut)
    def get_item(item_id: str, db: Db):
        return masterdata.get(db, Item, item_id, "item")

    @app.patch("/items/{item_id}", response_model=ItemOut)
    def update_item(item_id: str, body: ItemPatch, db: Db):
        """Change an item's description; kind and id never change (they are referenced everywhere)."""
        item = masterdata.get(db, Item, item_id, "item")
        for field, value in body.model_dump(exclude_unset=True).items():
            setattr(item, field, value)
        db.commit()
        return item

    @app.post("/work-centres", status_code=201, response_model=WorkCentreOut)
    def create_work_centre(body: WorkCentreIn, db: Db):
        return masterdata.create(db, WorkCentre, body.work_centre_id, "work centre", **body.model_dump())

    @app.get("/work-centres", response_model=list[WorkCentreOut])
    def list_work_centres(db: Db):
        return db.scalars(select(WorkCentre).order_by(WorkCentre.work_centre_id)).all()

    @app.get("/machines", response_model=list[MachineOut])
    def list_machines(db: Db):
        """Machines come from the plant file (registered by the core); their work centre is set here."""
        return db.scalars(select(Machine).order_by(Machine.machine_id)).all()

    @app.patch("/machines/{machine_id}", response_model=MachineOut)
    def update_machine(machine_id: str, body: MachineIn, db: Db):
        machine = masterdata.get(db, Machine, machine_id, "machine")
        if body.work_centre_id is not None:
            masterdata.get(db, WorkCentre, body.work_centre_id, "work centre")
        machine.work_centre_id = body.work_centre_id
        db.commit()
        return machine

    @app.put("/machines/{machine_id}/items/{item_id}", response_model=MachineItemOut)
    def set_machine_item(machine_id: str, item_id: str, body: MachineItemIn, db: Db):
        """The ideal cycle time of an item on a machine: what its performance is measured against."""
        masterdata.get(db, Machine, machine_id, "machine")
        masterdata.get(db, Item, item_id, "item")
        row = db.merge(MachineItem(machine_id=machine_id, item_id=item_id, ideal_cycle_s=body.ideal_cycle_s))
        db.commit()
        return row

    @app.get("/machines/{machine_id}/items", response_model=list[MachineItemOut])
    def machine_items(machine_id: str, db: Db):
        masterdata.get(db, Machine, machine_id, "machine")
        return db.scalars(select(MachineItem).where(MachineItem.machine_id == machine_id).order_by(MachineItem.item_id)).all()

    @app.post("/items/{item_id}/bom", status_code=201, response_model=BomOut)
    def add_bom_line(item_id: str, body: BomLineIn, db: Db):
        masterdata.add_bom_line(db, item_id, **body.model_dump())
        return bom(item_id, db)

    @app.get("/items/{item_id}/bom", response_model=BomOut)
    def bom(item_id: str, db: Db, on: Annotated[date | None, Query(description="default: today")] = None):
        on = on or date.today()
        per_unit = masterdata.exploded(db, item_id, on)
        lines = [BomLineIn(component_item=line.component, quantity_per=line.quantity_per, scrap_factor=line.scrap_factor,
                           phantom=line.phantom, effective_from=line.effective_from, effective_to=line.effective_to)
                 for line in masterdata.bom_structure(db).get(item_id, [])]
        return BomOut(item_id=item_id, on=on, lines=lines, per_unit=per_unit)

    @app.post("/locations", status_code=201, response_model=LocationOut)
    def create_location(body: LocationIn, db: Db):
        return masterdata.create_location(db, **body.model_dump())

    @app.get("/locations", response_model=list[LocationOut])
    def list_locations(db: Db):
        return db.scalars(select(Location).order_by(Location.location_id)).all()

    @app.post("/stock/receipts", status_code=201, response_model=MoveOut)
    def receive(body: ReceiptIn, db: Db):
        return stock.receive(db, **body.model_dump())

    @app.get("/stock/on-hand", response_model=list[OnHandOut])
    def on_hand(db: Db, item_id: str | None = None, location_id: str | None = None):
        return stock.on_hand(db, item_id, location_id)

    @app.get("/stock/moves", response_model=list[MoveOut])
    def moves(db: Db, item_id: str | None = None, location_id: str | None = None, source_ref: str | None = None,
              limit: Annotated[int, Query(gt=0, le=10_000)] = 500):
        return stock.ledger(db, item_id=item_id, location_id=location_id, source_ref=source_ref, limit=limit)

    @app.get("/lots/{item_id}/{lot}/trace", response_model=TraceOut)
    def trace(item_id: str, lot: str, db: Db, direction: Literal["back", "forward"] = "back"):
        """back: which component lots went into this lot; forward: which lots were made from it."""
        return TraceOut(item_id=item_id, lot=lot, direction=direction, lots=stock.trace(db, item_id, lot, direction))

    @app.get("/backflush/exceptions", response_model=list[BackflushExceptionOut])
    def exceptions(db: Db, work_order_id: str | None = None, only_open: bool = True):
        """Shortages consumed from an unknown lot, consumption blocked by a location, lines without a line side."""
        return stock.backflush_exceptions(db, work_order_id, only_open)

    @app.post("/work-orders", status_code=201, response_model=WorkOrderOut)
    def create_work_order(body: WorkOrderIn, db: Db):
        fields = body.model_dump()
        return workorders.create_work_order(db, fields.pop("work_order_id"), fields.pop("item_id"), fields.pop("quantity"), **fields)

    @app.get("/work-orders", response_model=list[WorkOrderOut])
    def list_work_orders(db: Db, status: str | None = None):
        return workorders.list_work_orders(db, status)

    @app.get("/work-orders/{work_order_id}", response_model=WorkOrderOut)
    def get_work_order(work_order_id: str, db: Db):
        return masterdata.get(db, WorkOrder, work_order_id, "work order")

    @app.get("/work-orders/{work_order_id}/progress", response_model=ProgressOut)
    def work_order_progress(work_order_id: str, db: Db):
        return workorders.live_progress(db, work_order_id)

    @app.get("/machines/{machine_id}/dispatches", response_model=list[DispatchOut])
    def machine_dispatches(machine_id: str, db: Db, limit: Annotated[int, Query(gt=0, le=10_000)] = 100):
        """What ran on the machine when, newest first: windows started through the API and order ids
        its PLC reported (with why an id counted for no order)."""
        return workorders.dispatches(db, machine_id, limit)

    @app.post("/scrap-reasons", status_code=201, response_model=ScrapReasonOut)
    def create_scrap_reason(body: ScrapReasonIn, db: Db):
        return masterdata.create(db, ScrapReason, body.code, "scrap reason", **body.model_dump())

    @app.get("/scrap-reasons", response_model=list[ScrapReasonOut])
    def list_scrap_reasons(db: Db):
        return db.scalars(select(ScrapReason).order_by(ScrapReason.code)).all()

    @app.get("/work-orders/{work_order_id}/scrap", response_model=dict[str, int])
    def scrap(work_order_id: str, db: Db):
        """Scrapped units per reason; what no one has classified yet is under 'unclassified'."""
        return workorders.scrap_breakdown(db, work_order_id)

    @app.post("/work-orders/{work_order_id}/scrap", response_model=dict[str, int])
    def classify_scrap(work_order_id: str, body: ScrapClassificationIn, db: Db):
        """Give counted scrap a reason. The machine counts scrap; this never changes how much."""
        return workorders.classify(db, work_order_id, **body.model_dump())

    @app.get("/production/unassigned", response_model=list[UnassignedOut])
    def unassigned(db: Db):
        return workorders.unassigned(db)

    @app.post("/production/reassign", response_model=ReassignOut)
    def reassign(body: ReassignIn, db: Db):
        """Give a past period's unassigned production on a machine to a work order; backflushes it."""
        return workorders.reassign_unassigned(db, **body.model_dump())

    @app.post("/work-orders/{work_order_id}/release-hold", response_model=WorkOrderOut)
    def release_hold(work_order_id: str, db: Db, body: ReleaseHoldIn | None = None):
        """Consume what a blocking location held back (stock received since) and lift the hold."""
        body = body or ReleaseHoldIn()
        return workorders.release_hold(db, work_order_id, force=body.force, actor=body.actor)

    @app.post("/work-orders/{work_order_id}/{action}", response_model=WorkOrderOut)
    def act(work_order_id: str, action: Literal["release", "start", "pause", "resume", "complete", "close"],
            db: Db, body: ActionIn | None = None):
        body = body or ActionIn()
        return workorders.act(db, work_order_id, action, machine_id=body.machine_id, actor=body.actor)

    return app
