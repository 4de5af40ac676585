"""Work orders: lifecycle, dispatch, progress, unassigned production, scrap reasons given."""

# No `from __future__ import annotations`: FastAPI resolves the route annotations at definition time.
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from kernel.auth import Caller
from kernel.http import Db, Id, In, NamedInBody, Out
from mes.models import WorkOrder
from kernel.db.unit_of_work import get
from mes.services import workorders

router = APIRouter()


class WorkOrderIn(In):
    work_order_id: Id
    item_id: Id
    quantity: int = Field(gt=0)
    due: date | None = None
    over_tolerance: Decimal = Field(default=Decimal(0), ge=0, description="0.05 = up to 5 % over quantity")
    auto_complete: bool = False


class ComponentOut(Out):
    component_item: str
    quantity_per_unit: Decimal


class WorkOrderOut(Out):
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


class ProgressOut(Out):
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


class DispatchOut(Out):
    source: Literal["api", "plc"]
    work_order_id: str | None
    reported_order: str | None
    rejected_reason: str | None
    start_ts: datetime
    end_ts: datetime | None


class ScrapClassificationIn(In):
    reason_code: str
    quantity: int = Field(description="units given this reason; negative to take units back from it")
    comment: str | None = None
    actor: NamedInBody = None


class ReassignIn(In):
    machine_id: str
    work_order_id: str
    start: datetime
    end: datetime
    actor: NamedInBody = None


class ReassignOut(BaseModel):
    intervals: int
    good: int
    scrap: int


class ReleaseHoldIn(In):
    force: bool = Field(default=False, description="consume what stock still does not cover from an unknown lot")
    actor: NamedInBody = None


class ActionIn(In):
    machine_id: str | None = Field(default=None, description="required for start and resume")
    actor: NamedInBody = None


@router.post("/work-orders", status_code=201, response_model=WorkOrderOut)
def create_work_order(body: WorkOrderIn, db: Db):
    fields = body.model_dump()
    return workorders.create_work_order(db, fields.pop("work_order_id"), fields.pop("item_id"), fields.pop("quantity"), **fields)


@router.get("/work-orders", response_model=list[WorkOrderOut])
def list_work_orders(db: Db, status: str | None = None):
    return workorders.list_work_orders(db, status)


@router.get("/work-orders/{work_order_id}", response_model=WorkOrderOut)
def get_work_order(work_order_id: str, db: Db):
    return get(db, WorkOrder, work_order_id, "work order")


@router.get("/work-orders/{work_order_id}/progress", response_model=ProgressOut)
def work_order_progress(work_order_id: str, db: Db):
    return workorders.live_progress(db, work_order_id)


@router.get("/machines/{machine_id}/dispatches", response_model=list[DispatchOut])
def machine_dispatches(machine_id: str, db: Db, limit: Annotated[int, Query(gt=0, le=10_000)] = 100):
    """What ran on the machine when, newest first: windows started through the API and order ids
    its PLC reported (with why an id counted for no order)."""
    return workorders.dispatches(db, machine_id, limit)


@router.get("/work-orders/{work_order_id}/scrap", response_model=dict[str, int])
def scrap(work_order_id: str, db: Db):
    """Scrapped units per reason; what no one has classified yet is under 'unclassified'."""
    return workorders.scrap_breakdown(db, work_order_id)


@router.post("/work-orders/{work_order_id}/scrap", response_model=dict[str, int])
def classify_scrap(work_order_id: str, body: ScrapClassificationIn, db: Db, caller: Caller):
    """Give counted scrap a reason. The machine counts scrap; this never changes how much."""
    return workorders.classify(db, work_order_id, **body.model_dump(exclude={"actor"}), actor=caller.name)


@router.get("/production/unassigned", response_model=list[UnassignedOut])
def unassigned(db: Db):
    return workorders.unassigned(db)


@router.post("/production/reassign", response_model=ReassignOut)
def reassign(body: ReassignIn, db: Db, caller: Caller):
    """Give a past period's unassigned production on a machine to a work order; backflushes it."""
    return workorders.reassign_unassigned(db, **body.model_dump(exclude={"actor"}), actor=caller.name)


@router.post("/work-orders/{work_order_id}/release-hold", response_model=WorkOrderOut)
def release_hold(work_order_id: str, db: Db, caller: Caller, body: ReleaseHoldIn | None = None):
    """Consume what a blocking location held back (stock received since) and lift the hold."""
    body = body or ReleaseHoldIn()
    return workorders.release_hold(db, work_order_id, force=body.force, actor=caller.name)


@router.post("/work-orders/{work_order_id}/{action}", response_model=WorkOrderOut)
def act(work_order_id: str, action: Literal["release", "start", "pause", "resume", "complete", "close"],
        db: Db, caller: Caller, body: ActionIn | None = None):
    body = body or ActionIn()
    return workorders.act(db, work_order_id, action, machine_id=body.machine_id, actor=caller.name)
